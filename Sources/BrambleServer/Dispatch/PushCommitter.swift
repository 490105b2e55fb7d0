import BrambleAPI
import BrambleCore
import BrambleNet
import Logging
import ServiceLifecycle

/// Commits pushes in groups: every push waiting when a transaction starts goes into it,
/// so throughput grows with load while each caller still hears back only after its own
/// commit. Committed items go to the Dispatcher. Each caller learns the truth of a failure:
/// `notAccepted` only when nothing can have been committed (COMMIT never sent, or the
/// server rolled it back), `outcomeUnknown` when it may have been.
public final class PushCommitter: Service {
    struct Pending: Sendable {
        let request: PushRequest
        let reply: CheckedContinuation<PushOutcome, any Error>
    }

    /// A commit bound: a commit on a primary whose Patroni died can hang waiting for a
    /// standby that was promoted away.
    static let commitDeadlineMs = 2_000

    private let batcher = Batcher<Pending>(maxBatch: 500, maxPending: 10_000)
    let store: ConfigStore
    let dispatcher: Dispatcher
    /// This node's name, which the commit's notification carries.
    let origin: String
    /// Where commits of unknown outcome are noted for the pair listener.
    let uncertain: UncertainCommits
    let logger: Logger

    init(store: ConfigStore, dispatcher: Dispatcher, origin: String, uncertain: UncertainCommits, logger: Logger) {
        (self.store, self.dispatcher, self.origin, self.uncertain, self.logger) = (store, dispatcher, origin, uncertain, logger)
    }

    /// The push's outcome, or an `APIErrorBody` (`notAccepted`, `outcomeUnknown`).
    func submit(_ request: PushRequest) async throws -> PushOutcome {
        try await withCheckedThrowingContinuation { reply in
            if !batcher.append(Pending(request: request, reply: reply)) {
                reply.resume(throwing: APIErrorBody(.notAccepted, "this node is stopping or overloaded; push not accepted (send it again, to either node)"))
            }
        }
    }

    public func run() async throws {
        let unanswered = await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.pruneKeys() }
                // Two commits in flight: device rows are locked in PIN order, so they cannot
                // deadlock, and PostgreSQL flushes both with one WAL write.
                let left = await batcher.run(concurrency: 2) { [self] batch in await commit(batch) }
                group.cancelAll()
                return left
            }
        } onGracefulShutdown: { [batcher] in batcher.finish() }
        for pending in unanswered { pending.reply.resume(throwing: APIErrorBody(.notAccepted, "this node stopped; push not accepted")) }
    }

    private func commit(_ batch: [Pending]) async {
        let gate = CommitGate()
        let requests = batch.map(\.request)
        do {
            let committed = try await withDeadline(ms: Self.commitDeadlineMs) { [store, origin] in
                try await Self.retrying(database: store.database) { try await store.commitPushes(requests, origin: origin, gate: gate) }
            }
            for (pending, outcome) in zip(batch, committed.outcomes) { pending.reply.resume(returning: outcome) }
            await dispatcher.committed(committed.items, keys: committed.keys)
        } catch {
            store.database.suspect(error)
            let answer: APIErrorBody
            if gate.abandon() || TransactionFailure.facts(error, stage: .beforeCommit).verdict == .notCommitted {
                answer = APIErrorBody(.notAccepted, "configuration database unavailable; push not accepted (send it again, to either node)")
            } else {
                if let payload = gate.notification { uncertain.add(payload, nowMs: Monotonic.nowMs()) }
                answer = APIErrorBody(.outcomeUnknown, "the commit's outcome is unknown; send the push again with the same Idempotency-Key, which never commits twice")
            }
            logger.error("push commit failed", metadata: ["error": "\(String(reflecting: error))", "pushes": "\(batch.count)", "answer": "\(answer.code.rawValue)"])
            for pending in batch { pending.reply.resume(throwing: answer) }
        }
    }

    /// Retries a transaction that provably committed nothing (`DatabaseFailure.verdict`):
    /// a deadlock or serialization conflict at once, up to 3 times; a host that is not (or
    /// no longer) the primary after the search for it, every 100 ms until the caller's
    /// deadline. A failure at COMMIT itself is never retried.
    static func retrying<T>(database: DatabaseHosts, _ body: () async throws -> T) async throws -> T {
        var conflicts = 0
        while true {
            do {
                return try await body()
            } catch {
                let verdict = TransactionFailure.facts(error, stage: .beforeCommit).verdict
                switch verdict {
                case .conflict where conflicts < 3:
                    conflicts += 1
                case .primaryMoved where database.hosts.count > 1:
                    database.suspect(error)
                    try await Task.sleep(for: .milliseconds(100))
                case .conflict, .primaryMoved, .notCommitted, .outcomeUnknown:
                    throw error
                }
            }
        }
    }

    /// Forgets Idempotency-Keys past their retention, every minute.
    private func pruneKeys() async {
        while (try? await Task.sleep(for: .seconds(60))) != nil {
            do {
                try await withDeadline(ms: 10_000) { [store] in try await store.pruneIdempotencyKeys(olderThanHours: PushAPI.idempotencyRetentionHours) }
            } catch {
                logger.debug("pruning idempotency keys failed", metadata: ["error": "\(error)"])
            }
        }
    }
}
