import NIOCore

/// Milliseconds on the monotonic clock, the time base every core state machine takes.
public enum Monotonic {
    public static func nowMs() -> UInt64 { NIODeadline.now().uptimeNanoseconds / 1_000_000 }

    /// Milliseconds since `then`, or 0 if another task stamped `then` after we read the
    /// clock (a plain subtraction would trap).
    public static func msSince(_ then: UInt64) -> UInt64 {
        let now = nowMs()
        return now > then ? now - then : 0
    }
}

/// The monotonic clock a component's loops read and sleep on. Injected, so in-process
/// tests advance time instead of sleeping (the test kit's `ManualClock`).
public protocol NodeClock: Sendable {
    /// Milliseconds on a monotonic clock.
    func nowMs() -> UInt64
    /// Returns once `nowMs() >= deadlineMs`; throws `CancellationError` if cancelled first.
    func sleep(untilMs deadlineMs: UInt64) async throws
}

extension NodeClock {
    public func sleep(ms: UInt64) async throws { try await sleep(untilMs: nowMs() &+ ms) }

    /// Milliseconds since `then`, or 0 if another task stamped `then` after we read the
    /// clock (a plain subtraction would trap).
    public func msSince(_ then: UInt64) -> UInt64 {
        let now = nowMs()
        return now > then ? now - then : 0
    }
}

/// The process's monotonic clock.
public struct SystemClock: NodeClock {
    public init() {}
    public func nowMs() -> UInt64 { Monotonic.nowMs() }
    public func sleep(untilMs deadlineMs: UInt64) async throws {
        let now = nowMs()
        if deadlineMs > now { try await Task.sleep(for: .milliseconds(deadlineMs - now)) } else { try Task.checkCancellation() }
    }
}
