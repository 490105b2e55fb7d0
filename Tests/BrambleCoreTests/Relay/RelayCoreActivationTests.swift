import Crypto
import Testing

@testable import BrambleCore

/// Over-the-air activation through the relay core: a device's request is handed to the
/// mailer, the answering server's response and result reach the device, the device's
/// confirmation reaches that server.
@Suite struct RelayCoreActivationTests {
    let key = SymmetricKey(size: .bits256)
    let otherKey = SymmetricKey(size: .bits256)
    let nonce = Array(repeating: UInt8(1), count: 32)
    let pin = PIN(0x2A00_F00D)
    let device: ConnectionID = 100
    let body = Array(repeating: UInt8(0xE7), count: 120)

    func relay(domains: Set<String> = ["example.com"], _ configure: (inout RelayConfiguration) -> Void = { _ in }) -> RelayCore {
        var config = RelayConfiguration()
        config.activationDomains = domains
        configure(&config)
        return RelayCore(configuration: config, keys: ["bramble": key, "other": otherKey])
    }

    /// Connects a server on `conn` and registers `srpID` at `epoch`.
    @discardableResult
    func register(_ r: inout RelayCore, conn: ConnectionID, srpID: String = "bramble", epoch: UInt64 = 1, at now: UInt64 = 0) -> [RelayCore.Action] {
        _ = r.serverConnected(conn, nonce: nonce, nowMs: now)
        let proof = SRPProof.compute(key: srpID == "bramble" ? key : otherKey, nonce: nonce, srpID: srpID, epoch: epoch)
        return r.frameReceived(.register(srpID: srpID, epoch: epoch, proof: proof), on: conn, nowMs: now)
    }

    func requestFrame(pin: PIN? = nil, email: String = "ann@example.com") -> ActivationFrame {
        ActivationFrame(phase: .request, pin: pin ?? self.pin, email: email, body: body)
    }

    /// A device connects on `conn` and asks to be activated.
    @discardableResult
    func request(_ r: inout RelayCore, conn: ConnectionID? = nil, pin: PIN? = nil, email: String = "ann@example.com",
                 source: String = "10.0.0.1", at now: UInt64 = 0) -> [RelayCore.Action] {
        let conn = conn ?? device
        let challenge = r.deviceConnected(conn, source: source, nonce: nonce, nowMs: now)
        guard challenge == [.send(conn, .challenge(nonce: nonce))] else { return challenge }
        return r.frameReceived(.activation(requestFrame(pin: pin, email: email)), on: conn, nowMs: now)
    }

    func answer(_ phase: ActivationFrame.Phase, pin: PIN? = nil, srpID: String = "bramble") -> Frame {
        .activation(ActivationFrame(phase: phase, pin: pin ?? self.pin, srpID: srpID, body: Array("\(phase)".utf8)))
    }

    func confirm(pin: PIN? = nil, srpID: String = "bramble") -> Frame {
        .activation(ActivationFrame(phase: .confirm, pin: pin ?? self.pin, srpID: srpID, body: Array(repeating: 0x7A, count: 90)))
    }

    func sentFrames(_ actions: [RelayCore.Action], to conn: ConnectionID) -> [Frame] {
        actions.compactMap { if case .send(conn, let f) = $0 { f } else { nil } }
    }

    func errorCodes(_ actions: [RelayCore.Action], to conn: ConnectionID) -> [Frame.ErrorCode] {
        sentFrames(actions, to: conn).compactMap { if case .error(let code, _) = $0 { code } else { nil } }
    }

    func closes(_ actions: [RelayCore.Action]) -> [ConnectionID] {
        actions.compactMap { if case .close(let c) = $0 { c } else { nil } }
    }

    // MARK: Requests

    @Test func aRequestForAnOfferedDomainIsHandedToTheMailerAndTheConnectionStays() {
        var r = relay()
        let actions = request(&r)
        #expect(actions == [.event(.activationRequested(device, requestFrame()))])
        #expect(r.activatingDevices == 1)
        #expect(r.connections == 1)
        #expect(r.connectedDevices == 0, "an activating device is not an online device")
    }

    @Test func theDomainIsComparedWithoutCase() {
        var r = relay()
        let actions = request(&r, email: "Ann@EXAMPLE.Com")
        #expect(actions == [.event(.activationRequested(device, requestFrame(email: "Ann@EXAMPLE.Com")))])
    }

    @Test(arguments: ["ann@example.org", "ann@mail.example.com", "ann@example.com.evil.test", "ann@notexample.com"])
    func aRequestForAnotherDomainIsRefusedAndClosed(_ email: String) throws {
        var r = relay()
        let actions = request(&r, email: email)
        #expect(errorCodes(actions, to: device) == [.activationRefused])
        #expect(closes(actions) == [device])
        #expect(actions.contains(.event(.activationRefused(pin))))
        #expect(!actions.contains { if case .event(.activationRequested) = $0 { true } else { false } })
        let message = try #require(sentFrames(actions, to: device).first.flatMap { if case .error(_, let m) = $0 { m } else { nil } })
        #expect(message.contains(String(email.split(separator: "@").last!)))
        #expect(r.activatingDevices == 0 && r.connections == 0 && r.unauthenticatedConnections == 0)
    }

    @Test func withNoActivationDomainsEveryRequestIsRefused() {
        var r = relay(domains: [])
        let actions = request(&r)
        #expect(errorCodes(actions, to: device) == [.activationRefused])
        #expect(closes(actions) == [device])
        #expect(sentFrames(actions, to: device) == [.error(code: .activationRefused, message: "this relay does not offer activation over the air")])
        #expect(r.activatingDevices == 0 && r.connections == 0)
    }

    @Test(arguments: ["example.com", "ann@example.com@", "ann smith@example.com", "ann@example.com\r\nBcc: victim@evil.test@example.com",
                      "victim@evil.test>\r\nRCPT TO:<x@example.com", "a@evil.test,b@example.com", "@evil.test:ann@example.com"])
    func aRequestWhoseAddressIsNoAddressIsRefused(_ email: String) {
        // The relay mails to the frame's address (`To:` and `RCPT TO:`), so only an address
        // in an offered domain may pass: one '@' (`Activation.isAcceptableEmail`, as the
        // request inside the body must have), no control characters, no spaces. (The SMTP
        // session refuses CR/LF, spaces and angle brackets itself, but not a source route or
        // a list, and the relay would have asked the mailer for it all the same.)
        var r = relay()
        let actions = request(&r, email: email)
        #expect(errorCodes(actions, to: device) == [.activationRefused], "\(email.debugDescription)")
    }

    @Test func aSecondRequestForThePINDisplacesTheFirstConnection() {
        var r = relay()
        request(&r, conn: 100)
        let actions = request(&r, conn: 101)
        #expect(errorCodes(actions, to: 100) == [.displaced])
        #expect(closes(actions) == [100])
        #expect(actions.contains(.event(.activationRequested(101, requestFrame()))))
        #expect(r.activatingDevices == 1 && r.connections == 1)
        // The displaced connection's close, reported by the shell, leaves the new one in place.
        #expect(r.disconnected(100) == [])
        #expect(r.activatingDevices == 1)
        // The server's answer goes to the new connection.
        register(&r, conn: 1)
        #expect(r.frameReceived(answer(.response), on: 1, nowMs: 0) == [.send(101, answer(.response))])
    }

    @Test func requestsForTwoPINsAreIndependent() {
        var r = relay()
        request(&r, conn: 100, pin: PIN(1))
        let actions = request(&r, conn: 101, pin: PIN(2))
        #expect(closes(actions).isEmpty)
        #expect(r.activatingDevices == 2)
        register(&r, conn: 1)
        #expect(r.frameReceived(answer(.response, pin: PIN(2)), on: 1, nowMs: 0) == [.send(101, answer(.response, pin: PIN(2)))])
        #expect(r.frameReceived(answer(.response, pin: PIN(1)), on: 1, nowMs: 0) == [.send(100, answer(.response, pin: PIN(1)))])
    }

    @Test func anActivatingConnectionCannotAskAgainOrSayHello() {
        var r = relay()
        request(&r)
        let again = r.frameReceived(.activation(requestFrame()), on: device, nowMs: 0)
        #expect(errorCodes(again, to: device) == [.protocolViolation] && closes(again) == [device])

        var s = relay()
        request(&s)
        let hello = s.frameReceived(.deviceHello(pin: pin, srpID: "bramble", proof: Array(repeating: 0, count: 32)), on: device, nowMs: 0)
        #expect(errorCodes(hello, to: device) == [.protocolViolation] && closes(hello) == [device])
        #expect(s.activatingDevices == 0 && s.connectedDevices == 0)
    }

    @Test func onlyADeviceConnectionMayAsk() {
        var r = relay()
        register(&r, conn: 1)
        let fromServer = r.frameReceived(.activation(requestFrame()), on: 1, nowMs: 0)
        #expect(errorCodes(fromServer, to: 1) == [.protocolViolation])
        #expect(r.activatingDevices == 0)
    }

    // MARK: The exchange

    @Test func theAnsweringServersResponseReachesTheDeviceAndTheConfirmationReachesTheServer() {
        var r = relay()
        request(&r)
        register(&r, conn: 1)
        #expect(r.frameReceived(answer(.response), on: 1, nowMs: 10) == [.send(device, answer(.response))])
        #expect(r.frameReceived(confirm(), on: device, nowMs: 20) == [.send(1, confirm())])
        #expect(r.frameReceived(answer(.result), on: 1, nowMs: 30) == [.send(device, answer(.result))])
        // The device may send its confirmation again (a retry); the server's answer again too.
        #expect(r.frameReceived(confirm(), on: device, nowMs: 40) == [.send(1, confirm())])
        #expect(r.frameReceived(answer(.result), on: 1, nowMs: 50) == [.send(device, answer(.result))])
        #expect(r.activatingDevices == 1)
    }

    @Test func theConfirmationFollowsTheSRPIDToItsCurrentSession() {
        var r = relay()
        request(&r)
        register(&r, conn: 1, epoch: 1)
        _ = r.frameReceived(answer(.response), on: 1, nowMs: 0)
        // A failover: the pair's other node registers at a higher epoch.
        let takeover = register(&r, conn: 2, epoch: 2)
        #expect(closes(takeover) == [1])
        #expect(r.frameReceived(confirm(), on: device, nowMs: 0) == [.send(2, confirm())])
        #expect(r.frameReceived(answer(.result), on: 2, nowMs: 0) == [.send(device, answer(.result))])
    }

    @Test func aResponseForAPINNobodyIsActivatingIsUndeliverable() {
        var r = relay()
        register(&r, conn: 1)
        #expect(r.frameReceived(answer(.response), on: 1, nowMs: 0) == [.event(.activationUndeliverable(pin))])
        #expect(r.frameReceived(answer(.result), on: 1, nowMs: 0) == [.event(.activationUndeliverable(pin))])
        #expect(r.registeredSessions == ["bramble": 1], "the server is not closed for it")
        // Nor after the activating device left.
        request(&r)
        _ = r.disconnected(device)
        #expect(r.activatingDevices == 0)
        #expect(r.frameReceived(answer(.response), on: 1, nowMs: 0) == [.event(.activationUndeliverable(pin))])
    }

    @Test func aResultOrResponseFromAnotherSRPIDThanTheOneThatAnsweredIsNotDelivered() {
        var r = relay()
        request(&r)
        register(&r, conn: 1, srpID: "bramble")
        register(&r, conn: 2, srpID: "other")
        #expect(r.frameReceived(answer(.response), on: 1, nowMs: 0) == [.send(device, answer(.response))])
        #expect(r.frameReceived(answer(.result, srpID: "other"), on: 2, nowMs: 0) == [.event(.activationUndeliverable(pin))])
        #expect(r.frameReceived(answer(.response, srpID: "other"), on: 2, nowMs: 0) == [.event(.activationUndeliverable(pin))])
        #expect(r.registeredSessions == ["bramble": 1, "other": 1])
        // The one that answered still reaches the device, and the confirmation still goes to it.
        #expect(r.frameReceived(confirm(), on: device, nowMs: 0) == [.send(1, confirm())])
        #expect(r.frameReceived(answer(.result), on: 1, nowMs: 0) == [.send(device, answer(.result))])
    }

    @Test func aServerCannotAnswerInAnotherSRPIDsName() {
        var r = relay()
        request(&r)
        register(&r, conn: 2, srpID: "other")
        let actions = r.frameReceived(answer(.response, srpID: "bramble"), on: 2, nowMs: 0)
        #expect(errorCodes(actions, to: 2) == [.protocolViolation])
        #expect(closes(actions) == [2])
        #expect(sentFrames(actions, to: device).isEmpty)
    }

    @Test func aServerCannotSendADevicesConfirmation() {
        var r = relay()
        request(&r)
        register(&r, conn: 1)
        let actions = r.frameReceived(confirm(), on: 1, nowMs: 0)
        #expect(errorCodes(actions, to: 1) == [.protocolViolation])
        #expect(sentFrames(actions, to: device).isEmpty)
    }

    @Test func aDeviceCannotSendAResponseOrResult() {
        for phase in [ActivationFrame.Phase.response, .result] {
            var r = relay()
            request(&r)
            let actions = r.frameReceived(answer(phase), on: device, nowMs: 0)
            #expect(errorCodes(actions, to: device) == [.protocolViolation] && closes(actions) == [device])
        }
    }

    @Test(arguments: [(PIN(0x2A00_F00E), "bramble"), (PIN(0x2A00_F00D), "other")])
    func aConfirmationNamingAnotherPINOrSRPIDIsAProtocolViolation(_ named: PIN, _ srpID: String) {
        var r = relay()
        request(&r)
        register(&r, conn: 1, srpID: "bramble")
        register(&r, conn: 2, srpID: "other")
        _ = r.frameReceived(answer(.response), on: 1, nowMs: 0)
        let actions = r.frameReceived(confirm(pin: named, srpID: srpID), on: device, nowMs: 0)
        #expect(errorCodes(actions, to: device) == [.protocolViolation])
        #expect(closes(actions) == [device])
        #expect(sentFrames(actions, to: 1).isEmpty && sentFrames(actions, to: 2).isEmpty)
        #expect(r.activatingDevices == 0 && r.connections == 2)
    }

    @Test func aConfirmationBeforeAnyServerAnsweredIsAProtocolViolation() {
        var r = relay()
        request(&r)
        register(&r, conn: 1)
        let actions = r.frameReceived(confirm(), on: device, nowMs: 0)
        #expect(errorCodes(actions, to: device) == [.protocolViolation] && closes(actions) == [device])
        #expect(sentFrames(actions, to: 1).isEmpty)
    }

    @Test func aConfirmationWhileNoSessionIsRegisteredIsUndeliverableAndSendsNothing() {
        var r = relay()
        request(&r)
        register(&r, conn: 1)
        _ = r.frameReceived(answer(.response), on: 1, nowMs: 0)
        _ = r.disconnected(1)
        #expect(r.registeredSessions.isEmpty)
        #expect(r.frameReceived(confirm(), on: device, nowMs: 0) == [.event(.activationUndeliverable(pin))])
        #expect(r.activatingDevices == 1, "the device stays to send it again")
        // The retry reaches the session registered since.
        register(&r, conn: 3, epoch: 2)
        #expect(r.frameReceived(confirm(), on: device, nowMs: 0) == [.send(3, confirm())])
    }

    // MARK: Failures, timeouts, bookkeeping

    @Test func aFailedMailClosesTheDeviceWithActivationRefused() throws {
        var r = relay()
        request(&r)
        let actions = r.activationMailFailed(device, reason: "the mail server answered 550")
        #expect(errorCodes(actions, to: device) == [.activationRefused])
        #expect(closes(actions) == [device])
        let message = try #require(sentFrames(actions, to: device).first.flatMap { if case .error(_, let m) = $0 { m } else { nil } })
        #expect(message.contains("550"))
        #expect(r.activatingDevices == 0 && r.connections == 0 && r.unauthenticatedConnections == 0)
        #expect(r.activationMailFailed(device, reason: "again") == [], "a connection already gone")
    }

    @Test func aMailFailureForAConnectionThatIsNotActivatingDoesNothing() {
        var r = relay()
        _ = r.deviceConnected(device, nonce: nonce, nowMs: 0)
        #expect(r.activationMailFailed(device, reason: "x") == [])
        #expect(r.activationMailFailed(999, reason: "x") == [])
        register(&r, conn: 1)
        #expect(r.activationMailFailed(1, reason: "x") == [])
        #expect(r.connections == 2)
    }

    @Test func anActivatingConnectionIsClosedAfterTheActivationTimeout() {
        var r = relay { $0.activationTimeoutMs = 60_000 }
        request(&r, at: 1_000)
        // Past the hello timeout it stays: it is activating, not saying hello.
        #expect(r.tick(nowMs: 1_000 + r.configuration.helloTimeoutMs + 1).isEmpty)
        // Frames do not extend it.
        _ = r.frameReceived(.ping(1), on: device, nowMs: 50_000)
        #expect(r.tick(nowMs: 60_999).isEmpty)
        let actions = r.tick(nowMs: 61_000)
        #expect(actions == [.close(device), .event(.activationTimedOut(pin))])
        #expect(r.activatingDevices == 0 && r.connections == 0 && r.unauthenticatedConnections == 0)
        #expect(r.tick(nowMs: 120_000).isEmpty)
    }

    @Test func aDeviceThatNeverAsksIsClosedAtTheHelloTimeout() {
        var r = relay()
        _ = r.deviceConnected(device, nonce: nonce, nowMs: 0)
        #expect(r.tick(nowMs: r.configuration.helloTimeoutMs) == [.close(device), .event(.helloTimedOut)])
    }

    @Test func activatingConnectionsCountAsUnauthenticated() {
        var r = relay { ($0.maxUnauthenticated, $0.maxUnauthenticatedPerSource) = (3, 2) }
        request(&r, conn: 100, pin: PIN(1), source: "a")
        request(&r, conn: 101, pin: PIN(2), source: "a")
        #expect(r.activatingDevices == 2 && r.unauthenticatedConnections == 2)
        #expect(r.deviceConnected(102, source: "a", nonce: nonce, nowMs: 0).contains(.event(.connectionRefused(.unauthenticatedPerSource))))
        request(&r, conn: 103, pin: PIN(3), source: "b")
        #expect(r.deviceConnected(104, source: "c", nonce: nonce, nowMs: 0).contains(.event(.connectionRefused(.unauthenticated))))
        #expect(r.unauthenticatedConnections == 3)
    }

    @Test func aDisconnectCleansTheActivationUp() {
        var r = relay { $0.maxUnauthenticatedPerSource = 1 }
        request(&r, source: "a")
        #expect(r.activatingDevices == 1 && r.unauthenticatedConnections == 1)
        #expect(r.disconnected(device) == [])
        #expect(r.activatingDevices == 0 && r.connections == 0 && r.unauthenticatedConnections == 0)
        #expect(r.disconnected(device) == [], "once")
        // The source's unauthenticated slot is free again.
        #expect(request(&r, conn: 101, source: "a") == [.event(.activationRequested(101, requestFrame()))])
        #expect(r.activatingDevices == 1 && r.unauthenticatedConnections == 1)
    }

    @Test func aRefusedOrDisplacedRequestFreesItsSlots() {
        var r = relay { $0.maxUnauthenticatedPerSource = 1 }
        _ = request(&r, email: "ann@example.org", source: "a")
        #expect(r.unauthenticatedConnections == 0 && r.connections == 0)
        request(&r, conn: 101, source: "a")
        request(&r, conn: 102, source: "b")
        #expect(r.activatingDevices == 1 && r.unauthenticatedConnections == 1 && r.connections == 1)
    }
}
