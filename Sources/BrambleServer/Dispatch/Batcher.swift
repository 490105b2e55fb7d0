import NIOConcurrencyHelpers

/// Group commit: callers append from anywhere; `run` hands everything appended since
/// the last batch (up to `maxBatch`) to one handler call, so one transaction carries
/// many requests while the previous one is committing. Bounded: at most `maxPending`
/// elements wait; beyond that `append` refuses (the caller decides what a refusal means).
/// After `finish()` (or once `run` has ended) `append` refuses too, so nothing waits for a
/// loop that is gone.
final class Batcher<Element: Sendable>: Sendable {
    private struct State {
        var pending: [Element] = []
        /// Batches being handled right now.
        var handling = 0
        var finished = false
    }
    private let state = NIOLockedValueBox(State())
    private let signal: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation
    let maxBatch: Int
    let maxPending: Int

    init(maxBatch: Int = 1000, maxPending: Int = 100_000) {
        (self.maxBatch, self.maxPending) = (maxBatch, maxPending)
        (signal, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Queues the elements; false (nothing queued) when finished or full.
    @discardableResult
    func append(contentsOf elements: [Element]) -> Bool {
        guard !elements.isEmpty else { return true }
        let queued = state.withLockedValue { s in
            guard !s.finished, s.pending.count + elements.count <= maxPending else { return false }
            s.pending += elements
            return true
        }
        if queued { wake.yield() }
        return queued
    }

    @discardableResult
    func append(_ element: Element) -> Bool { append(contentsOf: [element]) }

    /// Runs until `finish()` (or cancellation), handling up to `concurrency` batches at
    /// once, then drains what is left; returns what could not be handled (cancelled before
    /// it was), for the caller to answer.
    func run(concurrency: Int = 1, _ handle: @escaping @Sendable ([Element]) async -> Void) async -> [Element] {
        await withTaskGroup(of: Void.self) { group in
            var inFlight = 0
            func dispatchAll() async {
                while !Task.isCancelled, case let batch = take(), !batch.isEmpty {
                    if inFlight == concurrency {
                        await group.next()
                        inFlight -= 1
                    }
                    group.addTask { [state] in
                        await handle(batch)
                        state.withLockedValue { $0.handling -= 1 }
                    }
                    inFlight += 1
                }
            }
            for await _ in signal { await dispatchAll() }
            await group.waitForAll()
            inFlight = 0
            await dispatchAll()
        }
        return state.withLockedValue { s in
            s.finished = true
            defer { s.pending = [] }
            return s.pending
        }
    }

    /// Stop taking new elements; `run` drains what is queued and returns.
    func finish() {
        state.withLockedValue { $0.finished = true }
        wake.finish()
    }

    /// Nothing waiting and nothing being handled.
    var isIdle: Bool { state.withLockedValue { $0.pending.isEmpty && $0.handling == 0 } }

    private func take() -> [Element] {
        state.withLockedValue { s in
            let n = min(s.pending.count, maxBatch)
            let batch = Array(s.pending.prefix(n))
            s.pending.removeFirst(n)
            // Counted as handled before it leaves `pending`, so `isIdle` never sees a gap.
            if n > 0 { s.handling += 1 }
            return batch
        }
    }
}
