import NIOConcurrencyHelpers

/// A value other tasks can wait on: `wait(until:)` returns once the value satisfies a
/// condition (at once if it already does, or when the waiting task is cancelled). Waiters
/// are bounded by the tasks that wait; nothing is queued.
public final class Watched<Value: Sendable>: Sendable {
    private struct Waiter {
        let id: UInt64
        let satisfied: @Sendable (Value) -> Bool
        let continuation: CheckedContinuation<Value, Never>
    }
    private struct State {
        var value: Value
        var waiters: [Waiter] = []
        var nextID: UInt64 = 0
    }
    private let state: NIOLockedValueBox<State>

    public init(_ value: Value) { state = NIOLockedValueBox(State(value: value)) }

    public var value: Value { state.withLockedValue { $0.value } }

    /// Changes the value and wakes every waiter it now satisfies.
    public func update(_ change: (inout Value) -> Void) {
        let ready = state.withLockedValue { s -> [(CheckedContinuation<Value, Never>, Value)] in
            change(&s.value)
            let value = s.value
            var ready: [(CheckedContinuation<Value, Never>, Value)] = []
            s.waiters.removeAll { w in
                guard w.satisfied(value) else { return false }
                ready.append((w.continuation, value))
                return true
            }
            return ready
        }
        for (continuation, value) in ready { continuation.resume(returning: value) }
    }

    /// The value once `satisfied` holds for it, or the current value if the task is cancelled.
    public func wait(until satisfied: @escaping @Sendable (Value) -> Bool) async -> Value {
        let id = state.withLockedValue { s in defer { s.nextID += 1 }; return s.nextID }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now = state.withLockedValue { s -> Value? in
                    if satisfied(s.value) || Task.isCancelled { return s.value }
                    s.waiters.append(Waiter(id: id, satisfied: satisfied, continuation: continuation))
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            let cancelled = state.withLockedValue { s -> (CheckedContinuation<Value, Never>, Value)? in
                guard let i = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return (s.waiters.remove(at: i).continuation, s.value)
            }
            if let (continuation, value) = cancelled { continuation.resume(returning: value) }
        }
    }
}
