import BrambleCore

/// The statements the HA manager runs against the configuration database: `ConfigStore`
/// in a node, an in-memory pair in the in-process tests. Every call may fail or hang (the
/// manager bounds each with a deadline); none may be retried by the store itself.
public protocol PairStore: Sendable {
    /// The database clock, the lease, the thresholds and the peer's heartbeat.
    func readPair(_ pair: String, node: String) async throws -> PairView
    /// Takes the lease if its epoch is still `expectedEpoch`: the new epoch, or nil when
    /// another node got there first.
    func takeLease(_ pair: String, node: String, expectedEpoch: UInt64, durationMs: Int) async throws -> UInt64?
    /// Extends the lease this node holds at `epoch`; false if it is no longer ours.
    func renewLease(_ pair: String, node: String, epoch: UInt64, durationMs: Int) async throws -> Bool
    /// Gives the lease up, to `handoverTo` when set; the epoch stays.
    func releaseLease(_ pair: String, node: String, epoch: UInt64, handoverTo: String?) async throws
    func writeHeartbeat(_ heartbeat: Heartbeat) async throws
    /// Wakes the pair's nodes to read the heartbeats now.
    func announceHeartbeat(pair: String) async throws
    func recordEvent(_ event: NewPairEvent) async throws
    /// Users and active devices (the "user accounts" health parameters).
    func accountCounts() async throws -> HealthFacts.Accounts
    /// A statement failed: the store may look for the database's primary again.
    func suspect(_ error: any Error)
}

/// One heartbeat's view of the pair.
public struct PairView: Sendable {
    /// The database clock, in milliseconds since 1970.
    public var nowMs: UInt64
    public var lease: HAStateMachine.Lease?
    public var peer: HAStateMachine.PeerHeartbeat?
    public var thresholds: ConfigStore.Thresholds
    public init(nowMs: UInt64, lease: HAStateMachine.Lease?, peer: HAStateMachine.PeerHeartbeat?, thresholds: ConfigStore.Thresholds) {
        self.nowMs = nowMs
        self.lease = lease
        self.peer = peer
        self.thresholds = thresholds
    }
}

/// A node's heartbeat row.
public struct Heartbeat: Sendable, Equatable {
    public var pair: String
    public var node: String
    public var role: NodeRole
    public var epoch: UInt64?
    public var score: Int
    public var requestsLease: Bool
    /// Where this node's API answers, for `bramble status` and `bramble failover`.
    public var apiURL: String
    public var parameters: [HealthCheck]
    public init(pair: String, node: String, role: NodeRole, epoch: UInt64?, score: Int, requestsLease: Bool,
                apiURL: String, parameters: [HealthCheck] = []) {
        self.pair = pair
        self.node = node
        self.role = role
        self.epoch = epoch
        self.score = score
        self.requestsLease = requestsLease
        self.apiURL = apiURL
        self.parameters = parameters
    }
}

/// An event to append to the pair's log (the database stamps its time).
public struct NewPairEvent: Sendable, Equatable {
    public var node: String
    public var kind: PairEvent.Kind
    public var epoch: UInt64?
    public var reason: PairEvent.Reason?
    public var detail: String
    public init(node: String, kind: PairEvent.Kind, epoch: UInt64? = nil, reason: PairEvent.Reason? = nil, detail: String) {
        self.node = node
        self.kind = kind
        self.epoch = epoch
        self.reason = reason
        self.detail = detail
    }
}

extension NewPairEvent {
    /// A demotion, its detail saying why for an operator: with the rule, the standby it
    /// was handed to, and for a low score the first unhealthy parameter.
    static func demotion(node: String, epoch: UInt64, reason: HAStateMachine.DemotionReason, handoverTo: String?,
                         checks: [HealthCheck]) -> NewPairEvent {
        var detail = reason.rawValue
        if reason == .lowScoreAndPeerRequest, let failing = checks.first(where: { !$0.healthy }) {
            detail += "; \(failing.parameter.rawValue): \(failing.detail)"
        }
        if let handoverTo { detail += "; handed over to \(handoverTo)" }
        return NewPairEvent(node: node, kind: .demote, epoch: epoch, reason: reason.eventReason, detail: detail)
    }
}
