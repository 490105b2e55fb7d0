import NIOConcurrencyHelpers

/// A statement that did not answer in time.
public struct DeadlineExceeded: Error, CustomStringConvertible {
    public let ms: Int
    public var description: String { "no answer within \(ms) ms" }
}

/// Runs `body`, but answers after `ms` at the latest, throwing `DeadlineExceeded`; the
/// body is cancelled then and left to finish on its own. (A task group would wait for a
/// body stuck in a network read; the HA heartbeat must not.)
func withDeadline<T: Sendable>(ms: Int, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let reply = NIOLockedValueBox<CheckedContinuation<T, any Error>?>(nil)
    let take: @Sendable () -> CheckedContinuation<T, any Error>? = {
        reply.withLockedValue { r in defer { r = nil }; return r }
    }
    return try await withCheckedThrowingContinuation { continuation in
        reply.withLockedValue { $0 = continuation }
        let work = Task {
            do {
                let value = try await body()
                take()?.resume(returning: value)
            } catch {
                take()?.resume(throwing: error)
            }
        }
        Task {
            try? await Task.sleep(for: .milliseconds(ms))
            if let late = take() {
                work.cancel()
                late.resume(throwing: DeadlineExceeded(ms: ms))
            }
        }
    }
}
