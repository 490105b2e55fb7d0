import BrambleCore
@preconcurrency import Crypto
import BrambleNet
import Logging
import ServiceLifecycle

/// Writes the Dispatcher's delivery transitions (sent, acknowledged, expired) to the
/// outbound queue in batches, each fenced by the epoch it happened under. A failed batch
/// is retried, so the queue catches up once the database answers; a fenced one is dropped
/// (the new primary resends, devices drop the repeats) and the HA manager hears that the
/// lease has moved on. Bounded: when the database is away long enough for 100,000
/// transitions to wait, newer ones are dropped and counted — the cost is a resend.
public final class DeliveryRecorder: Service {
    /// A delivery transition and the epoch under which it happened.
    struct Recorded: Sendable {
        var epoch: UInt64
        var transition: DeliveryTransition
    }

    let store: any DeliveryStore
    let pair: String
    let node: String
    let inbox: HAInbox
    let clock: any NodeClock
    let metrics: NodeMetrics
    let logger: Logger
    private let batcher = Batcher<Recorded>()

    public init(store: any DeliveryStore, pair: String, node: String, inbox: HAInbox, clock: any NodeClock = SystemClock(),
                metrics: NodeMetrics, logger: Logger) {
        (self.store, self.pair, self.node, self.inbox, self.clock, self.metrics, self.logger) = (store, pair, node, inbox, clock, metrics, logger)
    }

    func record(_ transitions: [DeliveryTransition], epoch: UInt64) {
        guard !transitions.isEmpty else { return }
        if !batcher.append(contentsOf: transitions.map { Recorded(epoch: epoch, transition: $0) }) {
            metrics.transitionsDropped(transitions.count)
        }
    }

    /// Returns once what was handed over is written (or after `timeoutMs`).
    func drained(timeoutMs: UInt64) async {
        let deadline = clock.nowMs() &+ timeoutMs
        while !batcher.isIdle, clock.nowMs() < deadline, (try? await clock.sleep(ms: 5)) != nil {}
    }

    /// Records device requests now (the device hears of them only after this returns);
    /// returns the repeats and the refused, or nil when none could be recorded (the
    /// device retries).
    func recordRequests(_ requests: [PendingRequest], epoch: UInt64) async -> (repeats: Set<PendingRequest.Key>, refused: Set<PendingRequest.Key>)? {
        do {
            return try await withDeadline(ms: 2_000, clock: clock) { [store, pair, node] in
                try await store.recordRequests(requests, pair: pair, node: node, epoch: epoch)
            }
        } catch let fenced as ConfigStore.FencedError {
            metrics.fencedWrites(requests.count)
            inbox.reportFenced(epoch: epoch)
            logger.warning("device requests not recorded: fenced", metadata: ["error": "\(fenced)"])
        } catch {
            logger.warning("recording device requests failed; the devices will retry", metadata: ["error": "\(String(reflecting: error))"])
        }
        return nil
    }

    public func run() async throws {
        let unwritten = await withGracefulShutdownHandler {
            await batcher.run { [self] batch in
                for (epoch, recorded) in Dictionary(grouping: batch, by: \.epoch) {
                    await write(recorded.map(\.transition), epoch: epoch)
                }
            }
        } onGracefulShutdown: { [batcher] in batcher.finish() }
        if !unwritten.isEmpty { metrics.transitionsDropped(unwritten.count) }
    }

    private func write(_ batch: [DeliveryTransition], epoch: UInt64) async {
        var attempt = 0
        while true {
            do {
                // Bounded: a call on a session the server ended (a node paused inside the
                // transaction) may never return; the next attempt takes a fresh connection.
                try await withDeadline(ms: 5_000, clock: clock) { [store, pair, node] in
                    try await store.recordDelivery(batch, pair: pair, node: node, epoch: epoch)
                }
                return
            } catch let fenced as ConfigStore.FencedError {
                metrics.fencedWrites(batch.count)
                logger.warning("delivery state not recorded: fenced", metadata: ["error": "\(fenced)", "transitions": "\(batch.count)"])
                inbox.reportFenced(epoch: epoch)
                return
            } catch {
                attempt += 1
                if attempt == 1 || attempt % 20 == 0 {
                    logger.warning("recording delivery state failed, retrying", metadata: ["error": "\(String(reflecting: error))"])
                }
                // Once shutting down, give up after a few tries: the next primary resends.
                if (Task.isCancelled || Task.isShuttingDownGracefully) && attempt > 3 { return }
                guard (try? await clock.sleep(ms: 200)) != nil || attempt <= 3 else { return }
            }
        }
    }
}

/// Where delivery states and device requests are written (`ConfigStore`; an in-memory
/// queue in tests).
public protocol DeliveryStore: Sendable {
    /// Fenced: throws `ConfigStore.FencedError` unless this node holds the lease at `epoch`.
    func recordDelivery(_ transitions: [DeliveryTransition], pair: String, node: String, epoch: UInt64) async throws
    /// Records requests under (PIN, ref); returns those recorded before, and those refused
    /// (their device has too many waiting). Fenced likewise.
    func recordRequests(_ requests: [PendingRequest], pair: String, node: String, epoch: UInt64)
        async throws -> (repeats: Set<PendingRequest.Key>, refused: Set<PendingRequest.Key>)
}

/// What the Dispatcher reads from the outbound queue.
public protocol OutboundStore: Sendable {
    /// Every open item and the keys of their devices.
    func openItems() async throws -> (items: [OutboundItem], keys: [PIN: SymmetricKey])
    /// An active device's master key, or nil.
    func deviceKey(_ pin: PIN) async throws -> SymmetricKey?
    /// Every active device's key.
    func deviceKeys() async throws -> [PIN: SymmetricKey]
}
