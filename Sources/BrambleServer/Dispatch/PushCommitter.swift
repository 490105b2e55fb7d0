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
                    try await Self.retrying(database: store.database) { try await store.commitPushes(requests, origin: origin) }
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

    /// Retries a transaction that provably committed nothing:
    /// - PostgreSQL aborted it for a deadlock or a serialization conflict (SQLSTATE 40P01,
    ///   40001): at once, up to 3 times;
    /// - it failed before COMMIT was sent because the host is not (or no longer) the
    ///   writable primary — read-only (25006), starting up or shutting down (57P0x), or the
    ///   connection failed: after the search for the primary, every 100 ms until the
    ///   caller's deadline cancels it. A failure at COMMIT itself is never retried: the
    ///   transaction may have committed, and a second one would deliver the push twice.
    static func retrying<T>(database: DatabaseHosts, _ body: () async throws -> T) async throws -> T {
        var conflicts = 0
        while true {
            do {
                return try await body()
            } catch {
                switch classify(error) {
                case .conflict where conflicts < 3:
                    conflicts += 1
                case .primaryMoved where database.hosts.count > 1:
                    database.suspect(error)
                    try await Task.sleep(for: .milliseconds(100))
                default:
                    throw error
                }
            }
        }
    }

    enum FailureKind { case conflict, primaryMoved, other }

    static func classify(_ error: any Error) -> FailureKind {
        if error is DatabaseHosts.PrimaryMoved { return .primaryMoved }
        if let tx = error as? PostgresTransactionError {
            if tx.commitError != nil { return .other }
            return (tx.closureError ?? tx.beginError).map(classify) ?? .other
        }
        guard let psql = error as? PSQLError else { return .other }
        if let state = psql.serverInfo?[.sqlState] {
            if state == "40P01" || state == "40001" { return .conflict }
            if state == "25006" || state.hasPrefix("57P") || state.hasPrefix("08") { return .primaryMoved }
            return .other
        }
        switch psql.code {
        case .connectionError, .serverClosedConnection, .uncleanShutdown: return .primaryMoved
        default: return .other
        }
    }
}
