import Logging
import PostgresNIO

/// Commits pushes in groups: every push waiting when a transaction starts goes into it,
/// so throughput grows with load while each caller still hears back only after its
/// own commit. Committed items go to the Dispatcher.
public final class PushCommitter: Sendable {
    struct Pending: Sendable {
        let request: PushRequest
        let reply: CheckedContinuation<PushOutcome, any Error>
    }

    private let batcher = Batcher<Pending>(maxBatch: 500)
    let store: ConfigStore
    let dispatcher: Dispatcher
    /// This node's name, which the commit's notification carries.
    let origin: String
    let logger: Logger

    init(store: ConfigStore, dispatcher: Dispatcher, origin: String, logger: Logger) {
        self.store = store
        self.dispatcher = dispatcher
        self.origin = origin
        self.logger = logger
    }

    func submit(_ request: PushRequest) async throws -> PushOutcome {
        try await withCheckedThrowingContinuation { reply in
            batcher.append(Pending(request: request, reply: reply))
        }
    }

    func run() async {
        // Two commits in flight: device rows are locked in PIN order, so they cannot
        // deadlock, and PostgreSQL flushes both with one WAL write.
        await batcher.run(concurrency: 2) { [store, dispatcher, origin, logger] batch in
            do {
                // Bounded: a commit on a primary whose Patroni died can hang waiting for a
                // standby that was promoted away; the caller then hears "not accepted".
                let requests = batch.map(\.request)
                let (outcomes, keys) = try await withDeadline(ms: 2_000) {
                    try await Self.retryingConflicts { try await store.commitPushes(requests, origin: origin) }
                }
                for (pending, outcome) in zip(batch, outcomes) { pending.reply.resume(returning: outcome) }
                var items: [OutboundItem] = []
                for case .accepted(_, let committed) in outcomes { items += committed }
                await dispatcher.committed(items, keys: keys)
            } catch {
                store.database.suspect(error)
                logger.error("push commit failed", metadata: ["error": "\(String(reflecting: error))", "pushes": "\(batch.count)"])
                for pending in batch { pending.reply.resume(throwing: APIError(.serviceUnavailable, "configuration database unavailable; push not accepted")) }
            }
        }
    }

    func finish() { batcher.finish() }

    /// Retries a transaction PostgreSQL aborted for a deadlock or a serialization
    /// conflict (SQLSTATE 40P01, 40001): nothing was committed, so trying again is safe.
    static func retryingConflicts<T>(_ body: () async throws -> T) async throws -> T {
        var attempt = 0
        while true {
            do {
                return try await body()
            } catch let error as PostgresTransactionError where attempt < 3 && isConflict(error.closureError) {
                attempt += 1
            } catch let error as PSQLError where attempt < 3 && isConflict(error) {
                attempt += 1
            }
        }
    }

    private static func isConflict(_ error: (any Error)?) -> Bool {
        guard let psql = error as? PSQLError, let state = psql.serverInfo?[.sqlState] else { return false }
        return state == "40P01" || state == "40001"
    }
}
