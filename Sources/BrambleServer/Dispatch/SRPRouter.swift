import BrambleCore
import BrambleNet
@preconcurrency import Crypto
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle

/// The BES Router: holds the SRP link to the relay, registers `(srpID, epoch)` with the
/// challenge–response proof, passes inbound frames to the Dispatcher, and reconnects
/// with back-off that stays under the relay's lockout.
public struct SRPRouter: Service {
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
        private let box = NIOLockedValueBox<(up: Bool, epoch: UInt64?, lastError: String?)>((false, nil, nil))
        public init() {}
        public var snapshot: (up: Bool, epoch: UInt64?, lastError: String?) { box.withLockedValue { $0 } }
        func set(up: Bool, epoch: UInt64?, error: String?) { box.withLockedValue { $0 = (up, epoch, error) } }
    }

    let configuration: Configuration
    let epoch: @Sendable () async throws -> UInt64
    let dispatcher: Dispatcher
    let status: Status
    let metrics: NodeMetrics
    let logger: Logger

    public init(configuration: Configuration, epoch: @escaping @Sendable () async throws -> UInt64,
                dispatcher: Dispatcher, status: Status, metrics: NodeMetrics, logger: Logger) {
        self.configuration = configuration
        self.epoch = epoch
        self.dispatcher = dispatcher
        self.status = status
        self.metrics = metrics
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var backoff = ReconnectBackoff()
            while !Task.isCancelled {
                backoff.attempted(nowMs: Monotonic.nowMs())
                metrics.srpConnects.increment()
                do {
                    try await session(onRegistered: { backoff.succeeded() })
                    status.set(up: false, epoch: nil, error: "relay closed the link")
                    logger.notice("srp link closed by relay")
                } catch is CancellationError {
                    break
                } catch {
                    status.set(up: false, epoch: nil, error: "\(error)")
                    logger.warning("srp link failed", metadata: ["error": "\(error)", "relay": "\(configuration.relay)"])
                }
                metrics.srpLinkUp.set(Int64(0))
                await dispatcher.linkDown()
                let delay = backoff.nextDelay(nowMs: Monotonic.nowMs())
                try? await Task.sleep(for: .milliseconds(delay))
            }
        }
        status.set(up: false, epoch: nil, error: "stopped")
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
    private func session(onRegistered: () -> Void) async throws {
        let epoch = try await self.epoch()
        let connection = try await FrameConnection.connect(to: configuration.relay)
        defer { connection.close() }
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
        metrics.epoch.set(Double(epoch))
        logger.info("srp registered", metadata: ["srp.id": "\(configuration.srpID)", "srp.epoch": "\(epoch)", "relay": "\(configuration.relay)"])
        await dispatcher.linkUp(connection)

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
                        if code == .displaced { throw RefusedError(code: code, message: message) }
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
