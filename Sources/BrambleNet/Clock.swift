import NIOCore

/// Milliseconds on the monotonic clock, the time base every core state machine takes.
public enum Monotonic {
    public static func nowMs() -> UInt64 { NIODeadline.now().uptimeNanoseconds / 1_000_000 }
}
