import BrambleCore
import NIOConcurrencyHelpers

/// What the HA manager last saw and decided, for `/health`, `/primary`, `bramble status`
/// and the watchdog, readable from any task without waiting for its loop.
public struct HASnapshot: Sendable {
    public var role = NodeRole.standby
    public var epoch: UInt64?
    public var score = 0
    public var checks: [HealthCheck] = []
    public var thresholds = ConfigStore.Thresholds.defaults
    public var databaseError: String? = "not checked yet"
    /// Monotonic ms until which the lease we hold is certainly valid.
    public var leaseValidUntilMs: UInt64 = 0
    public var peer: HAStateMachine.PeerHeartbeat?
    public var peerAgeMs: Int64?
    public var requestingLease = false
    /// Monotonic ms of the last completed heartbeat (the watchdog's liveness check).
    public var lastHeartbeatMs: UInt64 = 0

    public func servesWithValidLease(nowMs: UInt64) -> Bool { role == .primary && nowMs < leaseValidUntilMs }
}

/// The published `HASnapshot`.
public final class HASnapshotBox: Sendable {
    private let box = NIOLockedValueBox(HASnapshot())
    public init() {}
    public var value: HASnapshot { box.withLockedValue { $0 } }
    func update(_ change: (inout HASnapshot) -> Void) { box.withLockedValue { change(&$0) } }
}
