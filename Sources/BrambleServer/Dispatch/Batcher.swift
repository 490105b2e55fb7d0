import NIOConcurrencyHelpers

/// Group commit: callers append from anywhere; `run` hands everything appended since
/// the last batch (up to `maxBatch`) to one handler call, so one transaction carries
/// many requests while the previous one is committing.
final class Batcher<Element: Sendable>: Sendable {
    private let pending = NIOLockedValueBox<[Element]>([])
    private let signal: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation
    let maxBatch: Int

    init(maxBatch: Int = 1000) {
        self.maxBatch = maxBatch
        (signal, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    func append(_ element: Element) {
        pending.withLockedValue { $0.append(element) }
        wake.yield()
    }

    func append(contentsOf elements: [Element]) {
        guard !elements.isEmpty else { return }
        pending.withLockedValue { $0.append(contentsOf: elements) }
        wake.yield()
    }

    /// Runs until the task is cancelled, then drains what is left once more.
    func run(_ handle: ([Element]) async -> Void) async {
        for await _ in signal {
            while case let batch = take(), !batch.isEmpty { await handle(batch) }
            if Task.isCancelled { break }
        }
        while case let batch = take(), !batch.isEmpty { await handle(batch) }
    }

    func finish() { wake.finish() }

    private func take() -> [Element] {
        pending.withLockedValue { p in
            let n = min(p.count, maxBatch)
            let batch = Array(p.prefix(n))
            p.removeFirst(n)
            return batch
        }
    }
}
