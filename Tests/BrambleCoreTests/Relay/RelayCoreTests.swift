import Crypto
import Testing

@testable import BrambleCore

@Suite struct RelayCoreTests {
    let key = SymmetricKey(size: .bits256)
    let nonce = Array(repeating: UInt8(1), count: 32)
    let device: ConnectionID = 100
    let pin = PIN(0x2A00_F00D)

    func relay(_ configure: (inout RelayConfiguration) -> Void = { _ in }) -> RelayCore {
        var config = RelayConfiguration()
        configure(&config)
        return RelayCore(configuration: config, keys: ["bramble": key])
    }

    /// Connects a server on `conn` and registers it at `epoch` with a proof made with `key`.
    func register(_ r: inout RelayCore, conn: ConnectionID, epoch: UInt64, key: SymmetricKey? = nil, srpID: String = "bramble", at now: UInt64 = 0) -> [RelayCore.Action] {
        _ = r.serverConnected(conn, nonce: nonce, nowMs: now)
        let proof = SRPProof.compute(key: key ?? self.key, nonce: nonce, srpID: srpID, epoch: epoch)
        return r.frameReceived(.register(srpID: srpID, epoch: epoch, proof: proof), on: conn, nowMs: now)
    }

    /// The device's master key; the relay sees only the relay key derived from it.
    let master = SymmetricKey(size: .bits256)

    /// The server on `conn` registers relay keys for `pins` (the test's master key unless
    /// `keyOf` says otherwise), as a whole sync unless `phase` says otherwise.
    @discardableResult
    func sendKeys(_ r: inout RelayCore, conn: ConnectionID = 1, pins: [PIN], phase: DeviceKeyUpdate.Phase = .syncEnd,
                  keyOf: (PIN) -> SymmetricKey? = { _ in nil }, at now: UInt64 = 0) -> [RelayCore.Action] {
        let entries = pins.map { p in DeviceKeyUpdate.Entry(pin: p, master: keyOf(p) ?? master) }
        return r.frameReceived(.deviceKeys(DeviceKeyUpdate(phase: phase, entries: entries)), on: conn, nowMs: now)
    }

    /// A server at epoch 1 on conn 1 that registered the key of `pins`.
    func relayWithKeys(_ pins: [PIN]? = nil, _ configure: (inout RelayConfiguration) -> Void = { _ in }) -> RelayCore {
        var r = relay(configure)
        _ = register(&r, conn: 1, epoch: 1)
        sendKeys(&r, pins: pins ?? [pin])
        return r
    }

    /// A device connects on `conn` and answers the challenge with a proof under `master`.
    func hello(_ r: inout RelayCore, conn: ConnectionID? = nil, pin: PIN? = nil, srpID: String = "bramble", master: SymmetricKey? = nil,
               source: String = "10.0.0.1", at now: UInt64 = 0) -> [RelayCore.Action] {
        let (conn, pin) = (conn ?? device, pin ?? self.pin)
        let challenge = r.deviceConnected(conn, source: source, nonce: nonce, nowMs: now)
        guard challenge == [.send(conn, .challenge(nonce: nonce))] else { return challenge }
        let proof = DeviceProof.compute(relayKey: DeviceProof.relayKey(master: master ?? self.master, pin: pin), nonce: nonce, pin: pin, srpID: srpID)
        return r.frameReceived(.deviceHello(pin: pin, srpID: srpID, proof: proof), on: conn, nowMs: now)
    }

    func item(_ ref: UInt64, fromDevice: Bool = false) -> DataFrame {
        DataFrame(pin: pin, service: fromDevice ? .ack : .push, ref: ref, flags: fromDevice ? [.fromDevice] : [],
                  body: Array(repeating: 0, count: Envelope.minimumSealedLength))
    }

    func sentFrames(_ actions: [RelayCore.Action], to conn: ConnectionID) -> [Frame] {
        actions.compactMap { if case .send(conn, let f) = $0 { f } else { nil } }
    }

    @Test func aServerWithTheKeyRegisters() {
        var r = relay()
        let actions = register(&r, conn: 1, epoch: 1)
        #expect(sentFrames(actions, to: 1) == [.registered(srpID: "bramble", epoch: 1)])
        #expect(r.registeredSessions == ["bramble": 1])
    }

    @Test func aWrongSRPKeyIsRefusedAndClosed() {
        var r = relay()
        let actions = register(&r, conn: 1, epoch: 1, key: SymmetricKey(size: .bits256))
        #expect(actions.contains(.close(1)))
        #expect(actions.contains(.event(.refused(srpID: "bramble", epoch: 1, reason: .authenticationFailed))))
        #expect(r.registeredSessions.isEmpty)
    }

    @Test func anUnknownSRPIDIsRefused() {
        var r = relay()
        let actions = register(&r, conn: 1, epoch: 1, srpID: "other")
        #expect(actions.contains(.close(1)))
        #expect(r.registeredSessions.isEmpty)
    }

    @Test func aHigherEpochDisplacesTheCurrentSession() {
        var r = relay()
        _ = register(&r, conn: 1, epoch: 1)
        let actions = register(&r, conn: 2, epoch: 2)
        #expect(actions.contains(.close(1)))
        #expect(actions.contains(.event(.displaced(srpID: "bramble", oldEpoch: 1, newEpoch: 2))))
        #expect(r.registeredSessions == ["bramble": 2])
        #expect(sentFrames(actions, to: 1) == [.epochRefused(reason: .displaced, heldEpoch: 2)],
                "the displaced server learns the new epoch")
        #expect(actions.contains(.event(.registered(srpID: "bramble", epoch: 2, displacedEpoch: 1))),
                "the registration names the session it took over in the same step")
    }

    @Test func aRegistrationWithNoSessionToTakeOverDisplacesNothing() {
        var r = relay()
        let first = register(&r, conn: 1, epoch: 1)
        #expect(first.contains(.event(.registered(srpID: "bramble", epoch: 1, displacedEpoch: nil))))
        _ = r.disconnected(1)
        let again = register(&r, conn: 2, epoch: 2)
        #expect(again.contains(.event(.registered(srpID: "bramble", epoch: 2, displacedEpoch: nil))))
    }

    @Test func aLowerEpochIsRefusedAndTheCurrentSessionStays() {
        var r = relay()
        _ = register(&r, conn: 1, epoch: 5)
        let actions = register(&r, conn: 2, epoch: 4)
        #expect(actions.contains(.close(2)))
        #expect(!actions.contains(.close(1)))
        #expect(actions.contains(.event(.refused(srpID: "bramble", epoch: 4, reason: .staleEpoch))))
        #expect(r.registeredSessions == ["bramble": 5])
        #expect(sentFrames(actions, to: 2) == [.epochRefused(reason: .stale, heldEpoch: 5)],
                "the refused server learns the epoch that fences it")
    }

    @Test func aLowerEpochIsRefusedEvenAfterTheHigherOneDisconnected() {
        var r = relay()
        _ = register(&r, conn: 1, epoch: 5)
        _ = r.disconnected(1)
        let actions = register(&r, conn: 2, epoch: 4)
        #expect(actions.contains(.close(2)))
        #expect(sentFrames(actions, to: 2) == [.epochRefused(reason: .stale, heldEpoch: 5)])
        #expect(r.registeredSessions.isEmpty)
    }

    @Test func theLockoutTripsAfterFiveConnectsAndClearsAfterTheWindow() {
        var r = relay()
        for n in 0..<5 {
            let actions = register(&r, conn: ConnectionID(n + 1), epoch: 1, at: UInt64(n) * 1000)
            #expect(sentFrames(actions, to: ConnectionID(n + 1)) == [.registered(srpID: "bramble", epoch: 1)])
        }
        let locked = register(&r, conn: 10, epoch: 1, at: 10_000)
        #expect(locked.contains(.event(.refused(srpID: "bramble", epoch: 1, reason: .lockedOut))))
        #expect(r.registeredSessions == ["bramble": 1], "the live session is untouched")
        // Refused attempts do not extend the lockout; it clears once the first connect is 60 s old.
        #expect(register(&r, conn: 11, epoch: 1, at: 59_999).contains(.close(11)))
        let cleared = register(&r, conn: 12, epoch: 1, at: 60_000)
        #expect(sentFrames(cleared, to: 12) == [.registered(srpID: "bramble", epoch: 1)])
    }

    @Test func aFencedNodesAttemptsCannotLockTheCurrentPrimaryOut() {
        var r = relay()
        _ = register(&r, conn: 1, epoch: 2, at: 0)
        for n in 0..<10 {
            let stale = register(&r, conn: ConnectionID(10 + n), epoch: 1, at: UInt64(n) * 100)
            #expect(stale.contains(.event(.refused(srpID: "bramble", epoch: 1, reason: .staleEpoch))))
        }
        // The primary reconnecting (same epoch) still gets in: one of its five connects used.
        for n in 0..<4 {
            let again = register(&r, conn: ConnectionID(30 + n), epoch: 2, at: 2_000 + UInt64(n) * 100)
            #expect(sentFrames(again, to: ConnectionID(30 + n)).contains(.registered(srpID: "bramble", epoch: 2)))
        }
    }

    @Test func itemsRouteByPINAndAcksBySRPID() {
        var r = relayWithKeys()
        let welcome = hello(&r)
        #expect(sentFrames(welcome, to: device) == [.deviceWelcome])
        #expect(sentFrames(welcome, to: 1) == [.presence(pin: pin, online: true)])
        #expect(sentFrames(r.frameReceived(.data(item(1)), on: 1, nowMs: 0), to: device) == [.data(item(1))])
        let ack = item(1, fromDevice: true)
        #expect(sentFrames(r.frameReceived(.data(ack), on: device, nowMs: 0), to: 1) == [.data(ack)])
    }

    // MARK: Device authentication

    @Test func aHelloWithoutTheDevicesKeyIsRefusedAndTheDeviceStaysConnected() {
        var r = relayWithKeys()
        _ = hello(&r)
        let forged = hello(&r, conn: 200, master: SymmetricKey(size: .bits256))
        #expect(sentFrames(forged, to: 200).map(\.type) == [.error])
        #expect(forged.contains(.close(200)))
        #expect(forged.contains(.event(.helloRefused(pin, reason: .authenticationFailed))))
        #expect(!forged.contains(.close(device)), "a failed hello displaces nobody")
        #expect(sentFrames(r.frameReceived(.data(item(1)), on: 1, nowMs: 0), to: device) == [.data(item(1))],
                "items still go to the real device")
    }

    @Test func aProofIsBoundToItsNonceAndPIN() {
        // A proof captured on one connection is worthless on the next (a new nonce) and for another PIN.
        let relayKey = DeviceProof.relayKey(master: master, pin: pin)
        let proof = DeviceProof.compute(relayKey: relayKey, nonce: nonce, pin: pin, srpID: "bramble")
        #expect(DeviceProof.verify(proof, relayKey: relayKey, nonce: nonce, pin: pin, srpID: "bramble"))
        #expect(!DeviceProof.verify(proof, relayKey: relayKey, nonce: Array(repeating: 2, count: 32), pin: pin, srpID: "bramble"))
        #expect(!DeviceProof.verify(proof, relayKey: relayKey, nonce: nonce, pin: PIN(7), srpID: "bramble"))
        #expect(!DeviceProof.verify(proof, relayKey: relayKey, nonce: nonce, pin: pin, srpID: "other"))
        #expect(DeviceProof.relayKey(master: master, pin: pin) != DeviceProof.relayKey(master: master, pin: PIN(7)))
        #expect(DeviceProof.relayKey(master: master, pin: pin) != master, "the relay never holds the master key")
    }

    @Test func onePINPerConnection() {
        var r = relayWithKeys([pin, PIN(7)])
        _ = hello(&r)
        let proof = DeviceProof.compute(relayKey: DeviceProof.relayKey(master: master, pin: PIN(7)), nonce: nonce, pin: PIN(7), srpID: "bramble")
        let second = r.frameReceived(.deviceHello(pin: PIN(7), srpID: "bramble", proof: proof), on: device, nowMs: 0)
        #expect(second.contains(.close(device)))
        #expect(r.connectedDevices == 0, "the binding is cleared with the connection")
    }

    @Test func anUnknownSRPIDOrPINIsRefusedAtHello() {
        var r = relayWithKeys()
        #expect(hello(&r, srpID: "nobody").contains(.event(.helloRefused(pin, reason: .unknownSRPID))))
        #expect(hello(&r, conn: 201, pin: PIN(0xDEAD)).contains(.event(.helloRefused(PIN(0xDEAD), reason: .unknownDevice))))
        #expect(r.connections == 1, "only the server is left")
    }

    @Test func aHelloBeforeTheKeysArriveIsHeldUntilTheSync() {
        // The relay restarted: devices say hello before their BES has registered again.
        var r = relay()
        #expect(hello(&r).isEmpty, "held, not refused")
        #expect(hello(&r, conn: 201, pin: PIN(0xDEAD)).isEmpty)
        _ = register(&r, conn: 1, epoch: 1)
        let part = sendKeys(&r, pins: [pin], phase: .sync)
        #expect(sentFrames(part, to: device) == [.deviceWelcome], "verified as soon as its key arrives")
        let end = sendKeys(&r, pins: [], phase: .syncEnd)
        #expect(end.contains(.close(201)), "a PIN the sync left out is refused at its end")
        #expect(end.contains(.event(.helloRefused(PIN(0xDEAD), reason: .unknownDevice))))
        #expect(r.connectedDevices == 1)
    }

    @Test func aHeldHelloTimesOut() {
        var r = relay { $0.helloTimeoutMs = 10_000 }
        _ = hello(&r, at: 0)
        _ = r.deviceConnected(201, source: "10.0.0.9", nonce: nonce, nowMs: 0)  // never answers
        _ = r.frameReceived(.ping(1), on: 201, nowMs: 9_000)  // pings do not stretch the hello's time
        #expect(r.tick(nowMs: 9_999).isEmpty)
        let actions = r.tick(nowMs: 10_000)
        #expect(actions.contains(.close(device)) && actions.contains(.close(201)))
        #expect(r.connections == 0 && r.unauthenticatedConnections == 0)
    }

    @Test func anIdleDeviceIsClosedAndAPingKeepsItOpen() {
        var r = relayWithKeys { ($0.deviceIdleMs, $0.serverSilenceMs) = (180_000, .max / 2) }
        _ = hello(&r, at: 0)
        _ = r.frameReceived(.ping(1), on: device, nowMs: 100_000)
        #expect(!r.tick(nowMs: 279_999).contains(.close(device)))
        let actions = r.tick(nowMs: 280_000)
        #expect(actions.contains(.close(device)) && actions.contains(.event(.deviceIdle(pin))))
        #expect(sentFrames(actions, to: 1) == [.presence(pin: pin, online: false)])
    }

    @Test func aSyncForgetsPINsItLeavesOutAndClosesTheirDevices() {
        var r = relayWithKeys([pin, PIN(7)])
        _ = hello(&r)
        _ = register(&r, conn: 2, epoch: 2)  // a new primary sends its own set
        let keep = sendKeys(&r, conn: 2, pins: [PIN(7)])
        #expect(keep.contains(.close(device)), "the device removed since is closed")
        #expect(r.registeredDeviceKeys == 1)
        #expect(hello(&r, conn: 202).contains(.event(.helloRefused(pin, reason: .unknownDevice))))
        #expect(sentFrames(hello(&r, conn: 203, pin: PIN(7)), to: 203) == [.deviceWelcome])
    }

    @Test func anUpdateRemovesOrChangesAKey() {
        var r = relayWithKeys()
        _ = hello(&r)
        let other = SymmetricKey(size: .bits256)
        let changed = sendKeys(&r, pins: [pin], phase: .update, keyOf: { _ in other })
        #expect(changed.contains(.close(device)), "a device provisioned again proves its new key")
        #expect(hello(&r, conn: 202).contains(.close(202)))
        #expect(sentFrames(hello(&r, conn: 203, master: other), to: 203) == [.deviceWelcome])
        let removed = r.frameReceived(.deviceKeys(DeviceKeyUpdate(phase: .update, entries: [.revoked(pin)])), on: 1, nowMs: 0)
        #expect(removed.contains(.close(203)))
        #expect(r.registeredDeviceKeys == 0)
    }

    @Test func anotherSRPIDCannotClaimARegisteredPIN() {
        let labKey = SymmetricKey(size: .bits256)
        var r = RelayCore(keys: ["bramble": key, "lab": labKey])
        _ = register(&r, conn: 1, epoch: 1)
        sendKeys(&r, pins: [pin])
        _ = register(&r, conn: 2, epoch: 1, key: labKey, srpID: "lab")
        let evil = SymmetricKey(size: .bits256)
        let claim = sendKeys(&r, conn: 2, pins: [pin], phase: .update, keyOf: { _ in evil })
        #expect(claim.contains(.event(.deviceKeysRefused(srpID: "lab", count: 1))))
        #expect(hello(&r, srpID: "lab", master: evil).contains(.close(device)))
        #expect(sentFrames(r.frameReceived(.data(item(1)), on: 2, nowMs: 0), to: 2).map(\.type) == [.error],
                "lab cannot send to bramble's PIN")
    }

    @Test func presenceReachesTheServerAtMostOncePerInterval() {
        var r = relayWithKeys { $0.presenceMinIntervalMs = 2_000 }
        #expect(sentFrames(hello(&r, at: 0), to: 1) == [.presence(pin: pin, online: true)])
        _ = r.disconnected(device)
        let again = hello(&r, conn: 202, at: 500)
        #expect(sentFrames(again, to: 202) == [.deviceWelcome], "welcomed at once")
        #expect(sentFrames(again, to: 1).isEmpty && again.contains(.event(.presenceDeferred(pin))))
        #expect(sentFrames(r.tick(nowMs: 1_999), to: 1).isEmpty)
        #expect(sentFrames(r.tick(nowMs: 2_000), to: 1) == [.presence(pin: pin, online: true)], "told once the interval passed")
    }

    // MARK: Caps

    @Test func connectionsAreCappedInAllPerSourceAndUnauthenticated() {
        var r = relay {
            ($0.maxConnections, $0.maxConnectionsPerSource, $0.maxUnauthenticated, $0.maxUnauthenticatedPerSource) = (10, 6, 8, 3)
        }
        func connect(_ conn: ConnectionID, _ source: String) -> Bool {
            r.deviceConnected(conn, source: source, nonce: nonce, nowMs: 0).contains(.send(conn, .challenge(nonce: nonce)))
        }
        #expect((1...3).allSatisfy { connect($0, "a") })
        #expect(!connect(4, "a"), "three unauthenticated from one source")
        #expect((5...7).allSatisfy { connect($0, "b") })
        #expect((8...9).allSatisfy { connect($0, "c") })
        #expect(!connect(10, "d"), "eight unauthenticated in all")
        _ = r.disconnected(1)
        #expect(connect(11, "a"), "a closed connection frees its place")
        #expect(r.connections == 8 && r.unauthenticatedConnections == 8)
    }

    @Test func aFloodOnTheDevicePortCannotKeepNodesOut() {
        var r = relay { ($0.maxConnections, $0.maxUnauthenticated, $0.maxUnauthenticatedPerSource, $0.serverSilenceMs) = (3, 3, 3, 3_000) }
        for conn in ConnectionID(10)..<13 { _ = r.deviceConnected(conn, source: "x", nonce: nonce, nowMs: 0) }
        #expect(r.deviceConnected(13, source: "x", nonce: nonce, nowMs: 0).contains(.close(13)), "the device caps are full")
        #expect(sentFrames(register(&r, conn: 1, epoch: 1), to: 1) == [.registered(srpID: "bramble", epoch: 1)],
                "the SRP listener has its own cap")
        // An SRP connection that never registers is closed from its connect, pings or not.
        _ = r.serverConnected(2, nonce: nonce, nowMs: 0)
        _ = r.frameReceived(.ping(1), on: 2, nowMs: 2_900)
        _ = r.frameReceived(.ping(1), on: 1, nowMs: 2_900)
        #expect(r.tick(nowMs: 3_000).contains(.close(2)))
    }

    @Test func authenticatedDevicesNoLongerCountAsUnauthenticated() {
        var r = relayWithKeys((0..<5).map { PIN(UInt32($0)) }) { ($0.maxUnauthenticatedPerSource, $0.maxConnectionsPerSource) = (2, 4) }
        for n in 0..<3 {
            #expect(sentFrames(hello(&r, conn: ConnectionID(300 + n), pin: PIN(UInt32(n)), source: "x"), to: ConnectionID(300 + n)) == [.deviceWelcome])
        }
        #expect(r.unauthenticatedConnections == 0)
        #expect(sentFrames(hello(&r, conn: 303, pin: PIN(3), source: "x"), to: 303) == [.deviceWelcome])
        #expect(hello(&r, conn: 304, pin: PIN(4), source: "x").contains(.event(.connectionRefused(.perSource))))
    }

    @Test func theStoreIsCappedInBytes() {
        var r = relayWithKeys((0..<10).map { PIN(UInt32($0)) }) { ($0.storeMaxBytes, $0.storeMaxItems) = (3 * (Envelope.minimumSealedLength + 32), 5) }
        for n in 0..<10 {
            var d = item(1)
            d.pin = PIN(UInt32(n))
            _ = r.frameReceived(.data(d), on: 1, nowMs: 0)
        }
        #expect(r.storedForDevices == 3)
        #expect(r.storedBytesTotal == 3 * (Envelope.minimumSealedLength + 32))
        var d = item(1)
        d.pin = PIN(0)
        _ = hello(&r, pin: PIN(0))
        #expect(r.storedBytesTotal == 2 * (Envelope.minimumSealedLength + 32), "forwarded items leave the count")
    }

    @Test func dataForAPINTheServerDidNotRegisterIsRefused() {
        var r = relayWithKeys()
        var d = item(1)
        d.pin = PIN(0xDEAD)
        let actions = r.frameReceived(.data(d), on: 1, nowMs: 0)
        #expect(actions.contains(.event(.refusedData(srpID: "bramble", pin: PIN(0xDEAD)))))
        #expect(r.storedForDevices == 0)
    }

    // MARK: Storing and sessions

    @Test func anOfflineDevicesItemsAreStoredBoundedAndForwardedOnHello() {
        var r = relayWithKeys { $0.storeMaxItems = 5 }
        for ref in 1...7 { _ = r.frameReceived(.data(item(UInt64(ref))), on: 1, nowMs: 0) }
        #expect(r.storedForDevices == 5)
        let welcome = hello(&r, at: 1)
        #expect(sentFrames(welcome, to: device) == [.deviceWelcome] + (3...7).map { .data(item(UInt64($0))) })
        #expect(r.storedForDevices == 0 && r.storedBytesTotal == 0)
    }

    @Test func storedItemsExpireWithAge() {
        var r = relayWithKeys { ($0.storeMaxAgeMs, $0.serverSilenceMs) = (1000, .max / 2) }
        _ = r.frameReceived(.data(item(1)), on: 1, nowMs: 0)
        _ = r.tick(nowMs: 999)
        #expect(r.storedForDevices == 1)
        _ = r.tick(nowMs: 1000)
        #expect(r.storedForDevices == 0 && r.storedBytesTotal == 0)
    }

    @Test func aSilentServerSessionIsClosedAndItsDevicesDataWaits() {
        var r = relayWithKeys { $0.serverSilenceMs = 3_000 }
        _ = register(&r, conn: 2, epoch: 1, srpID: "bramble", at: 0)  // a reconnect at the same epoch displaces conn 1
        _ = hello(&r, at: 0)
        // A ping keeps a session alive; a device is closed only after `deviceIdleMs`.
        _ = r.frameReceived(.ping(1), on: 2, nowMs: 2_000)
        #expect(r.tick(nowMs: 4_999).isEmpty)
        let actions = r.tick(nowMs: 5_000)
        #expect(actions.contains(.close(2)))
        #expect(actions.contains(.event(.serverSilent(srpID: "bramble", silentMs: 3_000))))
        #expect(actions.contains(.event(.unregistered(srpID: "bramble", epoch: 1))))
        #expect(!actions.contains(.close(device)))
        #expect(r.registeredSessions.isEmpty)
        _ = r.frameReceived(.data(item(1, fromDevice: true)), on: device, nowMs: 5_001)
        #expect(r.storedForServers == 1)
        // A connection that never registers is closed for silence too.
        _ = r.serverConnected(3, nonce: nonce, nowMs: 6_000)
        #expect(r.tick(nowMs: 9_000).contains(.close(3)))
    }

    @Test func deviceDataWaitsWhileNoServerIsRegistered() {
        var r = relayWithKeys()
        _ = r.disconnected(1)  // the keys outlive the session
        #expect(sentFrames(hello(&r), to: device) == [.deviceWelcome])
        let ack = item(1, fromDevice: true)
        _ = r.frameReceived(.data(ack), on: device, nowMs: 0)
        #expect(r.storedForServers == 1)
        let actions = register(&r, conn: 2, epoch: 2)
        #expect(sentFrames(actions, to: 2).contains(.data(ack)))
        #expect(r.storedForServers == 0)
    }

    @Test func aDisplacedServerCanNoLongerReachDevices() {
        var r = relayWithKeys()
        _ = hello(&r)
        _ = register(&r, conn: 2, epoch: 2)
        let stale = r.frameReceived(.data(item(9)), on: 1, nowMs: 0)
        #expect(sentFrames(stale, to: device).isEmpty)
        #expect(r.connections == 2, "the displaced session is forgotten")
    }

    @Test func aDeviceCannotSendAsAnotherPIN() {
        var r = relayWithKeys()
        _ = hello(&r)
        var forged = item(1, fromDevice: true)
        forged.pin = PIN(7)
        let actions = r.frameReceived(.data(forged), on: device, nowMs: 0)
        #expect(sentFrames(actions, to: 1) == [.presence(pin: pin, online: false)], "nothing forwarded; the device is gone")
        #expect(actions.contains(.close(device)))
    }

    @Test func anUnauthenticatedConnectionCannotSendData() {
        var r = relay()
        _ = r.serverConnected(1, nonce: nonce, nowMs: 0)
        #expect(r.frameReceived(.data(item(1)), on: 1, nowMs: 0).contains(.close(1)))
        _ = r.deviceConnected(2, nonce: nonce, nowMs: 0)
        #expect(r.frameReceived(.data(item(1, fromDevice: true)), on: 2, nowMs: 0).contains(.close(2)))
        _ = r.deviceConnected(3, nonce: nonce, nowMs: 0)
        #expect(r.frameReceived(.deviceKeys(DeviceKeyUpdate(phase: .syncEnd, entries: [])), on: 3, nowMs: 0).contains(.close(3)),
                "only a registered server registers keys")
    }
}

@Suite struct ReconnectBackoffTests {
    @Test func delaysGrowAndAreCapped() {
        var b = ReconnectBackoff()
        b.maxConnectsPerWindow = 1000
        let delays = (0..<10).map { _ in b.nextDelay(nowMs: 0) }
        #expect(delays.prefix(4) == [100, 200, 400, 800])
        #expect(delays.last == 1000)
        b.registered(nowMs: 0)
        #expect(b.nextDelay(nowMs: 0) == 100)
    }

    @Test func itNeverConnectsMoreOftenThanTheLockoutAllows() {
        var b = ReconnectBackoff()
        var now: UInt64 = 0
        var attempts: [UInt64] = []
        for _ in 0..<30 {
            b.registered(nowMs: now)  // a link that registers and drops at once: the worst case
            attempts.append(now)
            now += b.nextDelay(nowMs: now)
        }
        for (i, t) in attempts.enumerated() {
            let inWindow = attempts[i...].prefix { $0 < t + b.windowMs }.count
            #expect(inWindow <= b.maxConnectsPerWindow)
        }
    }
}
