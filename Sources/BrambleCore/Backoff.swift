/// Reconnect delays for the Router's SRP link: exponential with a short cap, so a
/// restarted relay is found again within a second, and never more registrations in the
/// relay's lockout window than the relay allows, so a flapping link cannot lock its own
/// SRP ID out. Only accepted registrations count, as at the relay: a connect a down relay
/// refuses, or a registration it refuses (a lockout, a stale epoch), costs nothing there.
public struct ReconnectBackoff: Sendable {
    public var initialMs: UInt64 = 100
    public var maxMs: UInt64 = 1_000
    /// Keep strictly below the relay's limit so a competing node still has room.
    public var maxConnectsPerWindow: Int = 4
    public var windowMs: UInt64 = 60_000

    private var failures = 0
    private var attempts: [UInt64] = []

    public init() {}

    /// The relay accepted a registration at `nowMs` (it counts toward the lockout): start
    /// over from the initial delay.
    public mutating func registered(nowMs: UInt64) {
        failures = 0
        attempts.append(nowMs)
        attempts.removeAll { nowMs >= $0 &+ windowMs }
    }

    /// How long to wait before the next attempt, given a failure just now.
    public mutating func nextDelay(nowMs: UInt64) -> UInt64 {
        failures += 1
        let exponential = min(maxMs, initialMs << UInt64(min(failures - 1, 20)))
        attempts.removeAll { nowMs >= $0 &+ windowMs }
        guard attempts.count >= maxConnectsPerWindow, let oldest = attempts.first else { return exponential }
        return max(exponential, oldest &+ windowMs - nowMs)
    }
}
