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
        var r = relay()
        _ = register(&r, conn: 1, epoch: 1)
        let hello = r.frameReceived(.deviceHello(pin: pin, srpID: "bramble"), on: device, nowMs: 0)
        #expect(sentFrames(hello, to: device) == [.deviceWelcome])
        #expect(sentFrames(hello, to: 1) == [.presence(pin: pin, online: true)])
        #expect(sentFrames(r.frameReceived(.data(item(1)), on: 1, nowMs: 0), to: device) == [.data(item(1))])
        let ack = item(1, fromDevice: true)
        #expect(sentFrames(r.frameReceived(.data(ack), on: device, nowMs: 0), to: 1) == [.data(ack)])
    }

    @Test func anOfflineDevicesItemsAreStoredBoundedAndForwardedOnHello() {
        var r = relay { $0.storeMaxItems = 5 }
        _ = register(&r, conn: 1, epoch: 1)
        for ref in 1...7 { _ = r.frameReceived(.data(item(UInt64(ref))), on: 1, nowMs: 0) }
        #expect(r.storedForDevices == 5)
        let hello = r.frameReceived(.deviceHello(pin: pin, srpID: "bramble"), on: device, nowMs: 1)
        #expect(sentFrames(hello, to: device) == [.deviceWelcome] + (3...7).map { .data(item(UInt64($0))) })
        #expect(r.storedForDevices == 0)
    }

    @Test func storedItemsExpireWithAge() {
        var r = relay { $0.storeMaxAgeMs = 1000 }
        _ = register(&r, conn: 1, epoch: 1)
        _ = r.frameReceived(.data(item(1)), on: 1, nowMs: 0)
        _ = r.tick(nowMs: 999)
        #expect(r.storedForDevices == 1)
        _ = r.tick(nowMs: 1000)
        #expect(r.storedForDevices == 0)
    }

    @Test func aSilentServerSessionIsClosedAndItsDevicesDataWaits() {
        var r = relay { $0.serverSilenceMs = 3_000 }
        _ = register(&r, conn: 1, epoch: 1, at: 0)
        _ = register(&r, conn: 2, epoch: 1, srpID: "bramble", at: 0)  // a reconnect at the same epoch displaces conn 1
        _ = r.frameReceived(.deviceHello(pin: pin, srpID: "bramble"), on: device, nowMs: 0)
        // A ping keeps a session alive; devices are never closed for silence.
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
        var r = relay()
        _ = r.frameReceived(.deviceHello(pin: pin, srpID: "bramble"), on: device, nowMs: 0)
        let ack = item(1, fromDevice: true)
        _ = r.frameReceived(.data(ack), on: device, nowMs: 0)
        #expect(r.storedForServers == 1)
        let actions = register(&r, conn: 1, epoch: 1)
        #expect(sentFrames(actions, to: 1).contains(.data(ack)))
        #expect(r.storedForServers == 0)
    }

    @Test func aDisplacedServerCanNoLongerReachDevices() {
        var r = relay()
        _ = register(&r, conn: 1, epoch: 1)
        _ = r.frameReceived(.deviceHello(pin: pin, srpID: "bramble"), on: device, nowMs: 0)
        _ = register(&r, conn: 2, epoch: 2)
        let stale = r.frameReceived(.data(item(9)), on: 1, nowMs: 0)
        #expect(sentFrames(stale, to: device).isEmpty)
        #expect(stale.contains(.close(1)))
    }

    @Test func aDeviceCannotSendAsAnotherPIN() {
        var r = relay()
        _ = register(&r, conn: 1, epoch: 1)
        _ = r.frameReceived(.deviceHello(pin: pin, srpID: "bramble"), on: device, nowMs: 0)
        var forged = item(1, fromDevice: true)
        forged.pin = PIN(7)
        let actions = r.frameReceived(.data(forged), on: device, nowMs: 0)
        #expect(sentFrames(actions, to: 1).isEmpty)
        #expect(actions.contains(.close(device)))
    }

    @Test func anUnauthenticatedConnectionCannotSendData() {
        var r = relay()
        _ = r.serverConnected(1, nonce: nonce, nowMs: 0)
        let actions = r.frameReceived(.data(item(1)), on: 1, nowMs: 0)
        #expect(actions.contains(.close(1)))
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
