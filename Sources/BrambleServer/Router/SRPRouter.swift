import BrambleCore
import BrambleNet
@preconcurrency import Crypto
import Logging
import NIOSSL
import ServiceLifecycle

/// The BES Router: while its node is primary it holds the SRP link to the relay — the only
/// owner of that connection, reading and writing — registers `(srpID, epoch)` with the
/// challenge–response proof, passes inbound frames to the Dispatcher, writes what the
/// Dispatcher queues in `SRPOutbound`, and reconnects with back-off that stays under the
/// relay's lockout. When the relay says a higher epoch holds the SRP ID it tells the HA
/// manager (whose state machine demotes) and stops trying. On demotion it closes the link
/// first, as BES does.
public final class SRPRouter: Service, LeaseFollower {
    public struct Configuration: Sendable {
        public var relay: HostPort
        public var srpID: String
        public var key: SymmetricKey
        /// The link counts as lost when the relay has sent nothing for this long; the
        /// Router pings every third of it and the relay answers each ping at once. A
        /// partition drops packets silently, and TCP alone would notice only minutes later.
        public var linkTimeoutMs: UInt64 = 600
        /// TLS to the relay (mutual); nil: plain.
        public var tls: NIOSSLContext?
        public init(relay: HostPort, srpID: String, key: SymmetricKey) {
            (self.relay, self.srpID, self.key) = (relay, srpID, key)
        }
    }

    /// What the Router is asked to do and what it does.
    struct Holding: Sendable {
        /// The epoch to hold the link at (nil: hold none).
        var wanted: UInt64?
        /// The epoch the link loop runs at now.
        var running: UInt64?
        var shuttingDown = false
    }

    let configuration: Configuration
    let delegate: any SRPLinkDelegate
    let outbound: SRPOutbound
    let status: LinkStatus
    let inbox: HAInbox
    let clock: any NodeClock
    let metrics: NodeMetrics
    let logger: Logger
    /// Activation frames from devices (their key confirmations), for the activation service.
    let onActivation: @Sendable (ActivationFrame) -> Void
    let holding = Watched(Holding())
    public let followerName = "router"

    public init(configuration: Configuration, delegate: any SRPLinkDelegate, outbound: SRPOutbound, status: LinkStatus,
                inbox: HAInbox, clock: any NodeClock = SystemClock(), metrics: NodeMetrics, logger: Logger,
                onActivation: @escaping @Sendable (ActivationFrame) -> Void = { _ in }) {
        (self.configuration, self.delegate, self.outbound, self.status) = (configuration, delegate, outbound, status)
        self.onActivation = onActivation
        (self.inbox, self.clock, self.metrics, self.logger) = (inbox, clock, metrics, logger)
    }

    public func serve(epoch: UInt64) async { holding.update { $0.wanted = epoch } }

    public func stopServing(epoch: UInt64) async {
        holding.update { if $0.wanted == epoch { $0.wanted = nil } }
        _ = await holding.wait { $0.running != epoch }
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            while let epoch = await holding.wait(until: { $0.wanted != nil || $0.shuttingDown }).wanted, !Task.isCancelled {
                holding.update { $0.running = epoch }
                await withTaskGroup(of: Void.self) { group in
                    group.addTask { await self.hold(epoch: epoch) }
                    group.addTask { _ = await self.holding.wait { $0.wanted != epoch || $0.shuttingDown } }
                    await group.next()
                    group.cancelAll()
                }
                status.set(up: false, epoch: nil, error: "not primary")
                holding.update { $0.running = nil }
            }
        } onGracefulShutdown: {
            self.holding.update { ($0.shuttingDown, $0.wanted) = (true, nil) }
        }
    }

    /// Holds the link at `epoch` until cancelled: connect, register, serve, and after a
    /// failure wait the back-off and try again.
    private func hold(epoch: UInt64) async {
        status.set(up: false, epoch: epoch, error: "registering")
        var backoff = ReconnectBackoff()
        while !Task.isCancelled {
            metrics.srpConnect()
            var registered = false
            do {
                try await session(epoch: epoch) { registered = true; backoff.registered(nowMs: self.clock.nowMs()) }
                if Task.isCancelled { break }
                status.set(up: false, epoch: epoch, error: "relay closed the link")
                logger.notice("srp link closed by relay")
            } catch let refused as EpochRefused {
                status.set(up: false, epoch: epoch, error: "\(refused)")
                logger.warning("relay holds another epoch for our srp id", metadata: ["srp.epoch": "\(epoch)", "relay.epoch": "\(refused.heldEpoch)"])
                inbox.reportRelayHolds(epoch: refused.heldEpoch)
                if refused.heldEpoch > epoch {
                    // Fenced for good: the HA manager demotes and stops us. Trying again would
                    // only spend the SRP ID's connects in the relay's lockout window, which
                    // the new primary may need.
                    metrics.srpLink(up: false)
                    _ = await holding.wait { $0.wanted != epoch || $0.shuttingDown }
                    break
                }
            } catch {
                if Task.isCancelled { break }
                status.set(up: false, epoch: epoch, error: "\(error)", cause: Self.cause(of: error))
                logger.warning("srp link failed", metadata: ["error": "\(error)", "relay": "\(configuration.relay)"])
            }
            metrics.srpLink(up: false)
            if registered { inbox.wake() }  // a heartbeat now publishes the lower score
            guard (try? await clock.sleep(ms: backoff.nextDelay(nowMs: clock.nowMs()))) != nil else { break }
        }
        metrics.srpLink(up: false)
    }
}
