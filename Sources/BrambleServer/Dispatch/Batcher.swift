import NIOConcurrencyHelpers

/// Group commit: callers append from anywhere; `run` hands everything appended since
/// the last batch (up to `maxBatch`) to one handler call, so one transaction carries
/// many requests while the previous one is committing.
final class Batcher<Element: Sendable>: Sendable {
    private let pending = NIOLockedValueBox<[Element]>([])
    /// Batches being handled right now.
    private let handling = NIOLockedValueBox(0)
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

    /// Runs until `finish()`, then drains what is left. Up to `concurrency` batches are
    /// handled at once; while they are, new elements gather into the next batch.
    func run(concurrency: Int = 1, _ handle: @escaping @Sendable ([Element]) async -> Void) async {
        await withTaskGroup(of: Void.self) { group in
            var inFlight = 0
            func dispatchAll() async {
                while case let batch = take(), !batch.isEmpty {
                    if inFlight == concurrency {
                        await group.next()
                        inFlight -= 1
                    }
                    group.addTask { [handling] in
                        await handle(batch)
                        handling.withLockedValue { $0 -= 1 }
                    }
                    inFlight += 1
                }
            }
            for await _ in signal { await dispatchAll() }
            await group.waitForAll()
            inFlight = 0
            await dispatchAll()
        }
    }

    func finish() { wake.finish() }

    /// Nothing waiting and nothing being handled.
    var isIdle: Bool { pending.withLockedValue { $0.isEmpty } && handling.withLockedValue { $0 == 0 } }

    private func take() -> [Element] {
        pending.withLockedValue { p in
            let n = min(p.count, maxBatch)
            let batch = Array(p.prefix(n))
            p.removeFirst(n)
            // Counted as handled before it leaves `pending`, so `isIdle` never sees a gap.
            if n > 0 { handling.withLockedValue { $0 += 1 } }
            return batch
        }
    }
}
