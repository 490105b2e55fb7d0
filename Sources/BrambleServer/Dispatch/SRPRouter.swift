import BrambleCore
import BrambleNet
@preconcurrency import Crypto
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// The BES Router: holds the SRP link to the relay while its node is primary, registers
/// `(srpID, epoch)` with the challenge–response proof, passes inbound frames to the
/// Dispatcher, and reconnects with back-off that stays under the relay's lockout. The HA
/// controller runs it at the lease's epoch and cancels it on demotion, which closes the
/// link first, as BES does. When the relay says a higher epoch holds the SRP ID, the
/// Router tells the HA controller, whose state machine decides to demote.
public struct SRPRouter: Sendable {
    public struct Configuration: Sendable {
        public var relay: HostPort
        public var srpID: String
        public var key: SymmetricKey
        /// The link counts as lost when the relay has sent nothing for this long; the
        /// Router pings every third of it and the relay answers each ping at once. A
        /// partition drops packets silently, and TCP alone would notice only minutes later.
        public var linkTimeoutMs: UInt64 = 600
        public init(relay: HostPort, srpID: String, key: SymmetricKey) {
            self.relay = relay
            self.srpID = srpID
            self.key = key
        }
    }

    /// What the node's health check reports about the link.
    public final class Status: Sendable {
        public struct Snapshot: Sendable {
            public var up = false
            public var epoch: UInt64?
            public var lastError: String?
            /// Monotonic ms when the link last changed between up and down.
            public var sinceMs: UInt64 = 0
            /// While down: why, which decides how the health check counts it.
            public var cause = DownCause.relayAnswered
        }
        public enum DownCause: Sendable {
            /// The relay's end said so (closed the link, refused the connection, answered
            /// with an error), as a restarting relay does: a grace period applies.
            case relayAnswered
            /// The relay went silent or could not be reached at all: this node is cut off,
            /// and its standby may not be.
            case relaySilent
            /// The relay locked the SRP ID out for too many connects in its window: it
            /// would refuse the standby just the same, so a failover cannot help.
            case lockedOut
        }
        private let box = NIOLockedValueBox(Snapshot())
        public init() {}
        public var snapshot: Snapshot { box.withLockedValue { $0 } }
        func set(up: Bool, epoch: UInt64?, error: String?, cause: DownCause = .relayAnswered) {
            box.withLockedValue {
                if $0.up != up || $0.sinceMs == 0 { $0.sinceMs = Monotonic.nowMs() }
                $0.up = up
                $0.epoch = epoch
                $0.lastError = error
                $0.cause = cause
            }
        }
    }

    /// What the Router tells the HA controller while it holds the link.
    public enum Report: Sendable {
        /// The relay refused or displaced us: it holds this higher epoch for our SRP ID.
        case relayHolds(UInt64)
        /// The registered link went down (the health score may have changed).
        case linkLost
    }

    let configuration: Configuration
    let dispatcher: Dispatcher
    let status: Status
    let metrics: NodeMetrics
    let logger: Logger

    public init(configuration: Configuration, dispatcher: Dispatcher, status: Status, metrics: NodeMetrics, logger: Logger) {
        self.configuration = configuration
        self.dispatcher = dispatcher
        self.status = status
        self.metrics = metrics
        self.logger = logger
    }

    /// Holds the link at `epoch` until cancelled, telling `report` what the HA
    /// controller must know.
    public func run(epoch: UInt64, report: @escaping @Sendable (Report) -> Void) async {
        status.set(up: false, epoch: epoch, error: "registering")
        var backoff = ReconnectBackoff()
        while !Task.isCancelled {
            metrics.srpConnects.increment()
            var registered = false
            do {
                try await session(epoch: epoch, onRegistered: { registered = true; backoff.registered(nowMs: Monotonic.nowMs()) })
                if Task.isCancelled { break }
                status.set(up: false, epoch: epoch, error: "relay closed the link")
                logger.notice("srp link closed by relay")
            } catch is CancellationError {
                break
            } catch let refused as EpochRefused {
                let held = refused.heldEpoch
                status.set(up: false, epoch: epoch, error: "\(refused)")
                logger.warning("relay holds another epoch for our srp id", metadata: [
                    "srp.epoch": "\(epoch)", "relay.epoch": "\(held)", "error": "\(refused)"])
                report(.relayHolds(held))
                if held > epoch {
                    // Fenced for good: the HA controller demotes and cancels us. Trying again
                    // would only spend the SRP ID's connects in the relay's lockout window,
                    // which the new primary may need.
                    metrics.srpLinkUp.set(Int64(0))
                    while !Task.isCancelled { try? await Task.sleep(for: .seconds(1)) }
                    break
                }
            } catch {
                if Task.isCancelled { break }
                status.set(up: false, epoch: epoch, error: "\(error)", cause: Self.cause(of: error))
                logger.warning("srp link failed", metadata: ["error": "\(error)", "relay": "\(configuration.relay)"])
            }
            metrics.srpLinkUp.set(Int64(0))
            if registered { report(.linkLost) }
            let delay = backoff.nextDelay(nowMs: Monotonic.nowMs())
            try? await Task.sleep(for: .milliseconds(delay))
        }
        metrics.srpLinkUp.set(Int64(0))
        status.set(up: false, epoch: nil, error: "not primary")
    }

    /// The relay went quiet on an open link (see `Configuration.linkTimeoutMs`).
    struct RelaySilent: Error, CustomStringConvertible {
        let silentMs: UInt64
        var description: String { "relay silent for \(silentMs) ms" }
    }

    /// Why a link or connect failed: a lockout; the relay's end alive enough to answer (a
    /// refused connection, a reset, an error frame); or silence: a timeout, an unreachable
    /// network, a blackholed route.
    static func cause(of error: any Error) -> Status.DownCause {
        func answered(_ error: any Error) -> Bool {
            switch error {
            case is RefusedError, is EpochRefused, is ProtocolError, is WireError: return true
            case let io as IOError: return [ECONNREFUSED, ECONNRESET, EPIPE].contains(io.errnoCode)
            case let connect as NIOConnectionError: return connect.connectionErrors.contains { answered($0.error) }
            default: return false
            }
        }
        if let refused = error as? RefusedError, refused.code == .lockedOut { return .lockedOut }
        return answered(error) ? .relayAnswered : .relaySilent
    }

    struct RefusedError: Error, CustomStringConvertible {
        let code: Frame.ErrorCode
        let message: String
        var description: String { "relay refused registration (\(code)): \(message)" }
    }

    struct EpochRefused: Error, CustomStringConvertible {
        let reason: EpochRefusal
        let heldEpoch: UInt64
        var description: String { "relay holds epoch \(heldEpoch) for our srp id (\(reason))" }
    }

    struct ProtocolError: Error, CustomStringConvertible {
        let description: String
    }

    /// One connection's life: challenge, register, then frames until it ends, with a
    /// watchdog beside it that pings and ends the link when the relay goes silent.
    private func session(epoch: UInt64, onRegistered: () -> Void) async throws {
        let connection = try await FrameConnection.connect(to: configuration.relay)
        defer { connection.close() }
        try Task.checkCancellation()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [timeout = configuration.linkTimeoutMs] in try await Self.watch(connection, timeoutMs: timeout) }
            defer { group.cancelAll() }
            try await converse(connection, epoch: epoch, onRegistered: onRegistered)
        }
    }

    /// Pings every third of the timeout; when nothing at all has come back for the whole
    /// timeout, closes the link so its reader fails with `RelaySilent`.
    private static func watch(_ connection: FrameConnection, timeoutMs: UInt64) async throws {
        let interval = max(timeoutMs / 3, 1)
        var n: UInt64 = 0
        while true {
            try await Task.sleep(for: .milliseconds(interval))
            let silent = Monotonic.msSince(connection.lastHeardMs)
            if silent >= timeoutMs {
                connection.close(failing: RelaySilent(silentMs: silent))
                return
            }
            n += 1
            connection.send(.ping(n))
        }
    }

    private func converse(_ connection: FrameConnection, epoch: UInt64, onRegistered: () -> Void) async throws {
        var frames = connection.reader()
        // Pongs to the watchdog's pings may arrive at any point; the handshake skips them.
        func nextAnswer() async throws -> Frame? {
            var frame = try await frames.next()
            while case .pong? = frame { frame = try await frames.next() }
            return frame
        }
        guard case .challenge(let nonce)? = try await nextAnswer() else {
            throw ProtocolError(description: "relay did not send a challenge")
        }
        let proof = SRPProof.compute(key: configuration.key, nonce: nonce, srpID: configuration.srpID, epoch: epoch)
        connection.send(.register(srpID: configuration.srpID, epoch: epoch, proof: proof))
        switch try await nextAnswer() {
        case .registered(let id, let e)? where id == configuration.srpID && e == epoch:
            break
        case .error(let code, let message)?:
            throw RefusedError(code: code, message: message)
        case .epochRefused(let reason, let held)?:
            throw EpochRefused(reason: reason, heldEpoch: held)
        case let other:
            throw ProtocolError(description: "unexpected answer to registration: \(String(describing: other?.type))")
        }
        onRegistered()
        status.set(up: true, epoch: epoch, error: nil)
        metrics.srpLinkUp.set(Int64(1))
        logger.info("srp registered", metadata: ["srp.id": "\(configuration.srpID)", "srp.epoch": "\(epoch)", "relay": "\(configuration.relay)"])
        await dispatcher.linkUp(connection, epoch: epoch)
        defer { Task { [dispatcher] in await dispatcher.linkDown(connection) } }

        while let batch = try await frames.nextBatch() {
            var data: [DataFrame] = []
            for frame in batch {
                switch frame {
                case .data(let d): data.append(d)
                case .presence(let pin, true): await dispatcher.deviceOnline(pin)
                case .presence(_, false), .pong, .registered: break
                case .ping(let n): connection.send(.pong(n))
                case .error(let code, let message):
                    logger.warning("relay error on srp link", metadata: ["code": "\(code)", "message": "\(message)"])
                case .epochRefused(let reason, let held):
                    throw EpochRefused(reason: reason, heldEpoch: held)
                case .deviceHello, .deviceWelcome, .challenge, .register:
                    throw ProtocolError(description: "unexpected \(frame.type) frame on srp link")
                }
            }
            if !data.isEmpty { await dispatcher.received(data) }
        }
    }
}
