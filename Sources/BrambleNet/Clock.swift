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
