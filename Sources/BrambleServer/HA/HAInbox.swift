import BrambleCore
import NIOConcurrencyHelpers

/// What the rest of the node tells the HA manager, from any task. Bounded by
/// construction: wake-ups and reports collapse into flags and maxima, and at most
/// `maxWaitingRequests` operator requests wait; a request made after the manager has
/// stopped is answered at once instead of waiting forever.
public final class HAInbox: Sendable {
    public enum FailoverOutcome: Sendable, Equatable {
        case handedOver(epoch: UInt64, to: String)
        case refused(FailoverPlan.Refusal)
        /// The HA manager has stopped (the node is shutting down) or is busy.
        case unavailable(String)
    }

    /// The next thing the HA manager acts on, in priority order.
    enum Input: Sendable {
        case shutdown
        case fenced(epoch: UInt64)
        case relayHolds(epoch: UInt64)
        case failover(to: String?, reply: CheckedContinuation<FailoverOutcome, Never>)
        case tick
    }

    static let maxWaitingRequests = 8

    private struct State {
        var tick = false
        var fenced: UInt64?
        var relayHolds: UInt64?
        var failovers: [(to: String?, reply: CheckedContinuation<FailoverOutcome, Never>)] = []
        var shutdownRequested = false
        var shutdownWaiters: [CheckedContinuation<Void, Never>] = []
        var closed = false
        var consumer: CheckedContinuation<Input?, Never>?
    }

    private let state = NIOLockedValueBox(State())

    public init() {}

    /// Run a heartbeat now (the lease changed hands, a link went down, …).
    public func wake() { deliver { $0.tick = true } }

    /// A write under `epoch` was refused: the lease has moved on.
    public func reportFenced(epoch: UInt64) { deliver { $0.fenced = max($0.fenced ?? 0, epoch) } }

    /// The relay refused or displaced us: it holds `epoch` for our SRP ID.
    public func reportRelayHolds(epoch: UInt64) { deliver { $0.relayHolds = max($0.relayHolds ?? 0, epoch) } }

    /// `bramble failover [--to NODE]`.
    public func requestFailover(to target: String?) async -> FailoverOutcome {
        await withCheckedContinuation { reply in
            // Checked and queued in one step: a close in between would strand the reply.
            let refusal: String? = deliver(closed: "the node is stopping") { s in
                if s.closed || s.shutdownRequested { return "the node is stopping" }
                if s.failovers.count >= Self.maxWaitingRequests { return "too many failover requests are waiting; try again" }
                s.failovers.append((target, reply))
                return nil
            }
            if let refusal { reply.resume(returning: .unavailable(refusal)) }
        }
    }

    /// Asks the HA manager to demote (if primary) and stop; returns when it has, or at
    /// once if it already stopped.
    public func shutdown() async {
        await withCheckedContinuation { waiter in
            let closed = state.withLockedValue { s in
                if !s.closed { s.shutdownWaiters.append(waiter) }
                return s.closed
            }
            if closed { waiter.resume() } else { deliver { $0.shutdownRequested = true } }
        }
    }

    /// The same without waiting (graceful shutdown's handler).
    public func beginShutdown() { deliver { $0.shutdownRequested = true } }

    /// Closed: the manager stopped (tests).
    var isClosedForTest: Bool { state.withLockedValue { $0.closed } }

    // MARK: The HA manager's side

    /// The next input, highest priority first; nil once closed.
    func next() async -> Input? {
        await withCheckedContinuation { consumer in
            let ready = state.withLockedValue { s -> Input?? in
                if let input = Self.take(&s) { return .some(input) }
                if s.closed { return .some(nil) }
                s.consumer = consumer
                return nil
            }
            if let ready { consumer.resume(returning: ready) }
        }
    }

    /// No more inputs: every waiting request is answered, later ones at once.
    func close() {
        let (failovers, waiters, consumer) = state.withLockedValue { s in
            s.closed = true
            defer { s.failovers = []; s.shutdownWaiters = []; s.consumer = nil }
            return (s.failovers.map(\.reply), s.shutdownWaiters, s.consumer)
        }
        failovers.forEach { $0.resume(returning: .unavailable("the node is stopping")) }
        waiters.forEach { $0.resume() }
        consumer?.resume(returning: nil)
    }

    private func deliver(_ change: (inout State) -> Void) {
        let _: Void? = deliver { s in change(&s); return nil }
    }

    /// Applies `change` unless closed (then `closed` is answered), and hands the consumer
    /// its next input if it waits; returns what `change` returned.
    private func deliver<R>(closed: R? = nil, _ change: (inout State) -> R?) -> R? {
        let (result, resume) = state.withLockedValue { s -> (R?, (CheckedContinuation<Input?, Never>, Input)?) in
            guard !s.closed else { return (closed, nil) }
            let result = change(&s)
            guard let consumer = s.consumer, let input = Self.take(&s) else { return (result, nil) }
            s.consumer = nil
            return (result, (consumer, input))
        }
        if let (consumer, input) = resume { consumer.resume(returning: input) }
        return result
    }

    private static func take(_ s: inout State) -> Input? {
        if s.shutdownRequested {
            s.shutdownRequested = false
            return .shutdown
        }
        if let epoch = s.fenced { s.fenced = nil; return .fenced(epoch: epoch) }
        if let epoch = s.relayHolds { s.relayHolds = nil; return .relayHolds(epoch: epoch) }
        if !s.failovers.isEmpty {
            let f = s.failovers.removeFirst()
            return .failover(to: f.to, reply: f.reply)
        }
        if s.tick { s.tick = false; return .tick }
        return nil
    }
}
