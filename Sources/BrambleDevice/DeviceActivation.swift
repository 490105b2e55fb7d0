import BrambleCore
import BrambleNet
import Crypto
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOSSL

/// Enterprise Activation on a simulated device (seeds 001 and 002): the user's address
/// and activation password in, a device credential out.
///
/// 1. The device sends its request (CPace share, PIN, address) to the relay, which mails
///    it to the user's mailbox as `etp.dat`: "Activating".
/// 2. The BES answers through the relay with its share and key confirmation; the device
///    checks it (a wrong password fails here, and the BES counts the run), and sends its
///    own confirmation, again every `confirmRetryMs` until the BES answers (a failover may
///    be under way): "Encryption Verified. Waiting for Services" once accepted.
/// 3. With the master key both sides derived, the device connects as any device does,
///    verifies and applies its IT policy (signed by the domain key the BES named in step 2,
///    bound by CPace), confirms it, and receives its service books: "Services Received",
///    the credential written, then "Activation Complete" once they are acknowledged.
public struct DeviceActivation: Sendable {
    public struct Configuration: Sendable {
        public var email: String
        public var password: String
        public var pin: PIN
        public var relay: HostPort
        public var tls: NIOSSLContext?
        /// The whole activation must end by then.
        public var timeoutMs: UInt64 = 120_000
        /// The key confirmation is sent again this often until the BES answers.
        public var confirmRetryMs: UInt64 = 2_000
        public init(email: String, password: String, pin: PIN, relay: HostPort, tls: NIOSSLContext?) {
            (self.email, self.password, self.pin, self.relay, self.tls) = (ActivationPassword.canonicalEmail(email), password, pin, relay, tls)
        }
    }

    /// BES's words on the device's screen, in order.
    public enum Stage: String, Sendable {
        case activating = "Activating"
        case encryptionVerified = "Encryption Verified. Waiting for Services"
        case servicesReceived = "Services Received"
        case complete = "Activation Complete"
    }

    public struct Failed: Error, CustomStringConvertible, Sendable {
        public let description: String
        public init(_ description: String) { self.description = description }
    }

    public let configuration: Configuration

    public init(configuration: Configuration) { self.configuration = configuration }

    /// Steps 1 and 2: the credential the key exchange gave, once the BES accepted it.
    public func exchangeKeys(stage: @Sendable (Stage) -> Void) async throws -> DeviceCredential {
        let c = configuration
        let sid = CPace.randomSessionID()
        let secret = ActivationPassword.secret(password: c.password, email: c.email)
        // ADa is the PIN and the address, not the share: the request is made around it.
        var request = ActivationRequest(sessionID: sid, pin: c.pin, email: c.email, share: [])
        let bound = try CPace.Initiator(password: secret, channelIdentifier: Activation.channelIdentifier(email: c.email, pin: c.pin),
                                        sessionID: sid, associatedData: request.associatedData)
        request.share = bound.share
        return try await FrameLink.connect(to: c.relay, tls: c.tls) { link, frames in
            guard case .challenge? = try await frames.next() else { throw Failed("the relay did not greet the device") }
            try await link.outbound.write(.activation(ActivationFrame(phase: .request, pin: c.pin, email: c.email, body: request.encoded())))
            stage(.activating)
            // The confirmation once sent, again every confirmRetryMs until the BES answers.
            let pending = NIOLockedValueBox<Frame?>(nil)
            return try await withThrowingTaskGroup(of: Void.self, returning: DeviceCredential.self) { group in
                group.addTask {
                    while true {
                        try await Task.sleep(for: .milliseconds(c.confirmRetryMs))
                        if let frame = pending.withLockedValue({ $0 }) { try await link.outbound.write(frame) }
                    }
                }
                defer { group.cancelAll() }
                var credential: DeviceCredential?
                while let next = try await frames.next() {
                    switch next {
                    case .activation(let a) where a.phase == .response && a.pin == c.pin && credential == nil:
                        let response: ActivationResponse
                        do { response = try ActivationResponse.decode(a.body) } catch { throw Failed("the server's answer cannot be read: \(error)") }
                        // An answer to an earlier request of this PIN (still in the mailbox) is not ours.
                        guard response.sessionID == sid, response.srpID == a.srpID else { continue }
                        let (isk, ta): ([UInt8], [UInt8])
                        do {
                            (isk, ta) = try bound.finish(responderShare: response.share, responderAssociatedData: response.associatedData,
                                                         responderConfirmation: response.confirmation)
                        } catch {
                            // End the run at once (the BES counts it failed) rather than leave it waiting.
                            try? await link.outbound.write(.activation(ActivationFrame(phase: .confirm, pin: c.pin, srpID: response.srpID,
                                body: ActivationConfirm(sessionID: sid, confirmation: [UInt8](repeating: 0, count: 64)).encoded())))
                            throw Failed("the server could not prove it knows the activation password: check the password and the address")
                        }
                        let master = Activation.masterKey(isk: isk, request: request, response: response)
                        let frame = Frame.activation(ActivationFrame(phase: .confirm, pin: c.pin, srpID: response.srpID,
                                                                     body: ActivationConfirm(sessionID: sid, confirmation: ta).encoded()))
                        credential = DeviceCredential(pin: c.pin, email: c.email, srpID: response.srpID, masterKey: master, domainKey: response.domainKey)
                        pending.withLockedValue { $0 = frame }
                        try await link.outbound.write(frame)
                    case .activation(let a) where a.phase == .result && a.pin == c.pin:
                        guard let result = try? ActivationResult.decode(a.body), result.sessionID == sid else { continue }
                        guard result.accepted else { throw Failed(result.reason.isEmpty ? "the server refused the activation" : result.reason) }
                        guard let credential else { continue }
                        stage(.encryptionVerified)
                        return credential
                    case .error(_, let message):
                        throw Failed("the relay refused the activation: \(message)")
                    case .ping(let n):
                        try await link.outbound.write(.pong(n))
                    default:
                        continue
                    }
                }
                throw Failed("the relay closed the connection before the activation ended")
            }
        }
    }

    /// Step 3: runs the device with its new credential until its service books are
    /// acknowledged ("Services Received", then "Activation Complete"); throws if the IT
    /// policy is refused (not signed by the domain the exchange named), or if the device
    /// was wiped meanwhile (a wipe still open from before it was activated again: its
    /// credential, at `credentialPath`, goes with the rest).
    public func receiveServices(credential: DeviceCredential, credentialPath: String? = nil, statePath: String?, logPath: String? = nil,
                                printJSON: Bool = false, stage: @escaping @Sendable (Stage) -> Void) async throws {
        var config = DeviceAgent.Configuration(credential: credential, relay: configuration.relay, tls: configuration.tls)
        config.statePath = statePath
        config.logPath = logPath
        config.printJSON = printJSON
        config.credentialPath = credentialPath
        enum Progress: Sendable { case refused(String), servicesReceived, acknowledged, wiped(ITCommand.Kind) }
        let events = AsyncStream.makeStream(of: Progress.self)
        let books = NIOLockedValueBox<UInt64?>(nil)
        let agent = try DeviceAgent(configuration: config, logger: Logger(label: "bramble-device"), onShown: { item in
            if item.service == "policy", item.state == "refused" { events.continuation.yield(.refused(item.reason ?? "the IT policy was refused")) }
            if item.service == "service-books" {
                books.withLockedValue { $0 = item.ref }
                events.continuation.yield(.servicesReceived)
            }
        }, onAcknowledged: { refs in
            if let seq = books.withLockedValue({ $0 }), refs.contains(seq) { events.continuation.yield(.acknowledged) }
        })
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                await agent.run()
                if let wiped = agent.wiped { events.continuation.yield(.wiped(wiped)) }
            }
            for await event in events.stream {
                switch event {
                case .refused(let reason): throw Failed(reason)
                case .wiped(let kind):
                    throw Failed("the device was wiped (\(kind == .wipe ? "all data" : "work data")) by its administrator as it activated")
                case .servicesReceived: stage(.servicesReceived)
                case .acknowledged:
                    stage(.complete)
                    group.cancelAll()
                    return
                }
            }
        }
    }
}

/// An activation asked of a running simulator (`bramble-device control --state STATE
/// activate`), as the user types address and password into a device waiting to be
/// activated (`bramble-device run --await-activation`): a file `NAME.activation` in the
/// device's control spool, mode 0600 from its creation (it holds the password), removed
/// by the device as it reads it.
public struct SpooledActivation: Codable, Sendable, Equatable {
    public var email: String
    public var password: String
    static let maxFileBytes = 4_096

    public init(email: String, password: String) { (self.email, self.password) = (email, password) }

    /// Writes it into the spool of the device whose state file is `statePath`.
    public func submit(statePath: String) throws -> String {
        try DeviceOutbox.spool(try JSONEncoder().encode(self), statePath: statePath, suffix: "activation", what: "activation request")
    }

    /// The oldest activation in the spool, removed from it; one that cannot be read is
    /// removed too and said as `.failure`.
    public static func take(statePath: String) -> Result<SpooledActivation, DeviceActivation.Failed>? {
        let spool = DeviceOutbox.spoolDirectory(statePath: statePath)
        guard let name = (try? FileManager.default.contentsOfDirectory(atPath: spool))?.filter({ $0.hasSuffix(".activation") }).sorted().first else {
            return nil
        }
        let path = spool + "/" + name
        defer { try? FileManager.default.removeItem(atPath: path) }
        guard let data = DeviceOutbox.readSmallRegularFile(path, max: maxFileBytes),
              let request = try? JSONDecoder().decode(SpooledActivation.self, from: data) else {
            return .failure(DeviceActivation.Failed("the activation request \(name) cannot be read"))
        }
        guard request.email.contains("@"), !request.password.isEmpty else {
            return .failure(DeviceActivation.Failed("the activation request \(name) has no address or no password"))
        }
        return .success(request)
    }
}
