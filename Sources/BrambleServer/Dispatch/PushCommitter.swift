import Logging

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
    let logger: Logger

    init(store: ConfigStore, dispatcher: Dispatcher, logger: Logger) {
        self.store = store
        self.dispatcher = dispatcher
        self.logger = logger
    }

    func submit(_ request: PushRequest) async throws -> PushOutcome {
        try await withCheckedThrowingContinuation { reply in
            batcher.append(Pending(request: request, reply: reply))
        }
    }

    func run() async {
        await batcher.run { batch in
            do {
                let (outcomes, keys) = try await store.commitPushes(batch.map(\.request))
                for (pending, outcome) in zip(batch, outcomes) { pending.reply.resume(returning: outcome) }
                var items: [OutboundItem] = []
                for case .accepted(_, let committed) in outcomes { items += committed }
                await dispatcher.committed(items, keys: keys)
            } catch {
                logger.error("push commit failed", metadata: ["error": "\(String(reflecting: error))", "pushes": "\(batch.count)"])
                for pending in batch { pending.reply.resume(throwing: APIError(.serviceUnavailable, "configuration database unavailable; push not accepted")) }
            }
        }
    }

    func finish() { batcher.finish() }
}
