import BrambleCore
import BrambleNet
@preconcurrency import Crypto
import Logging
import NIOConcurrencyHelpers

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
        }
        private let box = NIOLockedValueBox(Snapshot())
        public init() {}
        public var snapshot: Snapshot { box.withLockedValue { $0 } }
        func set(up: Bool, epoch: UInt64?, error: String?) {
            box.withLockedValue {
                if $0.up != up || $0.sinceMs == 0 { $0.sinceMs = Monotonic.nowMs() }
                $0.up = up
                $0.epoch = epoch
                $0.lastError = error
            }
        }
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

    /// Holds the link at `epoch` until cancelled. `relayHolds` hears the epoch the relay
    /// holds whenever it refuses or displaces us.
    public func run(epoch: UInt64, relayHolds: @escaping @Sendable (UInt64) -> Void) async {
        status.set(up: false, epoch: epoch, error: "registering")
        var backoff = ReconnectBackoff()
        while !Task.isCancelled {
            backoff.attempted(nowMs: Monotonic.nowMs())
            metrics.srpConnects.increment()
            do {
                try await session(epoch: epoch, onRegistered: { backoff.succeeded() })
                if Task.isCancelled { break }
                status.set(up: false, epoch: epoch, error: "relay closed the link")
                logger.notice("srp link closed by relay")
            } catch is CancellationError {
                break
            } catch let refused as RefusedError where refused.code == .staleEpoch || refused.code == .displaced {
                // Only a newer lease holder can register above us; the message names its
                // epoch (if it does not, assume the next one).
                let held = RelayCore.registeredEpoch(inRefusal: refused.message) ?? epoch + 1
                status.set(up: false, epoch: epoch, error: "\(refused)")
                logger.warning("relay holds another epoch for our srp id", metadata: [
                    "srp.epoch": "\(epoch)", "relay.epoch": "\(held)", "error": "\(refused)"])
                relayHolds(held)
            } catch {
                status.set(up: false, epoch: epoch, error: "\(error)")
                logger.warning("srp link failed", metadata: ["error": "\(error)", "relay": "\(configuration.relay)"])
            }
            metrics.srpLinkUp.set(Int64(0))
            let delay = backoff.nextDelay(nowMs: Monotonic.nowMs())
            try? await Task.sleep(for: .milliseconds(delay))
        }
        metrics.srpLinkUp.set(Int64(0))
        status.set(up: false, epoch: nil, error: "not primary")
    }

    struct RefusedError: Error, CustomStringConvertible {
        let code: Frame.ErrorCode
        let message: String
        var description: String { "relay refused registration (\(code)): \(message)" }
    }

    struct ProtocolError: Error, CustomStringConvertible {
        let description: String
    }

    /// One connection's life: challenge, register, then frames until it ends.
    private func session(epoch: UInt64, onRegistered: () -> Void) async throws {
        let connection = try await FrameConnection.connect(to: configuration.relay)
        defer { connection.close() }
        try Task.checkCancellation()
        var frames = connection.reader()
        guard case .challenge(let nonce)? = try await frames.next() else {
            throw ProtocolError(description: "relay did not send a challenge")
        }
        let proof = SRPProof.compute(key: configuration.key, nonce: nonce, srpID: configuration.srpID, epoch: epoch)
        connection.send(.register(srpID: configuration.srpID, epoch: epoch, proof: proof))
        switch try await frames.next() {
        case .registered(let id, let e)? where id == configuration.srpID && e == epoch:
            break
        case .error(let code, let message)?:
            throw RefusedError(code: code, message: message)
        case let other:
            throw ProtocolError(description: "unexpected answer to registration: \(String(describing: other?.type))")
        }
        onRegistered()
        status.set(up: true, epoch: epoch, error: nil)
        metrics.srpLinkUp.set(Int64(1))
        logger.info("srp registered", metadata: ["srp.id": "\(configuration.srpID)", "srp.epoch": "\(epoch)", "relay": "\(configuration.relay)"])
        await dispatcher.linkUp(connection, epoch: epoch)
        defer { Task { [dispatcher] in await dispatcher.linkDown(connection) } }

        // Keep the link's liveness visible: a ping every 5 s; the relay answers pong.
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                var n: UInt64 = 0
                while !Task.isCancelled {
                    try await Task.sleep(for: .seconds(5))
                    n += 1
                    connection.send(.ping(n))
                }
            }
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
                        if code == .displaced || code == .staleEpoch { throw RefusedError(code: code, message: message) }
                    case .deviceHello, .deviceWelcome, .challenge, .register:
                        throw ProtocolError(description: "unexpected \(frame.type) frame on srp link")
                    }
                }
                if !data.isEmpty { await dispatcher.received(data) }
            }
            group.cancelAll()
        }
    }
}
