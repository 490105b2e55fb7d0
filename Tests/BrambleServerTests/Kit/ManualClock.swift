import BrambleNet
import NIOConcurrencyHelpers

/// A clock the test moves: sleepers wake only when `advance` passes their deadline.
final class ManualClock: NodeClock {
    private struct Sleeper {
        let id: UInt64
        let deadline: UInt64
        let continuation: CheckedContinuation<Void, any Error>
    }
    private struct State {
        var now: UInt64
        var sleepers: [Sleeper] = []
        var nextID: UInt64 = 0
    }
    private let state: NIOLockedValueBox<State>

    init(startMs: UInt64 = 1_000_000) { state = NIOLockedValueBox(State(now: startMs)) }

    func nowMs() -> UInt64 { state.withLockedValue { $0.now } }

    /// Tasks waiting on this clock now.
    var sleeping: Int { state.withLockedValue { $0.sleepers.count } }

    func sleep(untilMs deadline: UInt64) async throws {
        let id = state.withLockedValue { s in defer { s.nextID += 1 }; return s.nextID }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let resume: Result<Void, any Error>? = state.withLockedValue { s in
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if deadline <= s.now { return .success(()) }
                    s.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: continuation))
                    return nil
                }
                if let resume { continuation.resume(with: resume) }
            }
        } onCancel: {
            let sleeper = state.withLockedValue { s -> Sleeper? in
                guard let i = s.sleepers.firstIndex(where: { $0.id == id }) else { return nil }
                return s.sleepers.remove(at: i)
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves time on by `ms` and wakes every sleeper whose deadline has come.
    func advance(by ms: UInt64) {
        let due = state.withLockedValue { s -> [Sleeper] in
            s.now += ms
            let now = s.now
            let due = s.sleepers.filter { $0.deadline <= now }.sorted { $0.deadline < $1.deadline }
            s.sleepers.removeAll { $0.deadline <= now }
            return due
        }
        for sleeper in due { sleeper.continuation.resume() }
    }
}

/// Waits (a few real milliseconds at a time, at most `seconds`) for work that a clock
/// advance or a call set going in other tasks to show; fails the test if it never does.
func eventually(_ what: String, seconds: Double = 5, _ condition: () async -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if await condition() { return }
        try await Task.sleep(for: .milliseconds(2))
    }
    throw KitError("timed out waiting for \(what)")
}

/// Advances `clock` in `stepMs` steps, letting the woken tasks run between steps, until
/// `condition` holds or `totalMs` of test time passed.
func advance(_ clock: ManualClock, by totalMs: UInt64, stepMs: UInt64 = 50, until condition: () async -> Bool = { false }) async throws {
    var moved: UInt64 = 0
    while moved < totalMs {
        if await condition() { return }
        clock.advance(by: stepMs)
        moved += stepMs
        try await Task.sleep(for: .milliseconds(3))
    }
}

struct KitError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
