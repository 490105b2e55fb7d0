import NIOConcurrencyHelpers

/// A statement that did not answer in time.
public struct DeadlineExceeded: Error, CustomStringConvertible {
    public let ms: Int
    public var description: String { "no answer within \(ms) ms" }
}

/// Runs `body`, but answers after `ms` at the latest, throwing `DeadlineExceeded`. Whichever
/// ends first cancels the other: the timer when `body` answers, `body` when time runs out
/// or the caller is cancelled. (A task group would wait for a body stuck in a network
/// read, which the HA heartbeat must not; a cancelled postgres-nio query ends once its
/// connection does, and the pools bound that with statement and idle timeouts.)
public func withDeadline<T: Sendable>(ms: Int, clock: any NodeClock = SystemClock(),
                               _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let race = DeadlineRace<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            race.start(continuation,
                       work: Task { race.finish(await Result { try await body() }) },
                       timer: Task {
                           guard (try? await clock.sleep(ms: UInt64(max(ms, 0)))) != nil else { return }
                           race.finish(.failure(DeadlineExceeded(ms: ms)))
                       })
        }
    } onCancel: {
        race.finish(.failure(CancellationError()))
    }
}

/// The one answer of a `withDeadline` call and the two tasks racing for it.
private final class DeadlineRace<T: Sendable>: Sendable {
    private struct State {
        var reply: CheckedContinuation<T, any Error>?
        var pending: Result<T, any Error>?
        var tasks: [Task<Void, Never>] = []
        var done = false
    }
    private let state = NIOLockedValueBox(State())

    func start(_ reply: CheckedContinuation<T, any Error>, work: Task<Void, Never>, timer: Task<Void, Never>) {
        let early = state.withLockedValue { s -> Result<T, any Error>? in
            s.tasks = [work, timer]
            if s.done { return s.pending }
            s.reply = reply
            return nil
        }
        if let early {
            work.cancel()
            timer.cancel()
            reply.resume(with: early)
        }
    }

    func finish(_ result: Result<T, any Error>) {
        let (reply, tasks) = state.withLockedValue { s -> (CheckedContinuation<T, any Error>?, [Task<Void, Never>]) in
            guard !s.done else { return (nil, []) }
            s.done = true
            if s.reply == nil { s.pending = result }  // `start` has not run yet: it answers
            defer { s.reply = nil }
            return (s.reply, s.tasks)
        }
        tasks.forEach { $0.cancel() }
        reply?.resume(with: result)
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
