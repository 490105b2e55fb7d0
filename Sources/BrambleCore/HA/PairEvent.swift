/// One entry of an HA pair's event log (the configuration database's `events` table):
/// a node starting or stopping, a promotion or demotion at a lease epoch, a threshold
/// change. `GET /admin/pair/events` answers with a `PairEventLog`; `bramble pair events`,
/// the drills' verdict and the tests read it.
public struct PairEvent: Sendable, Codable, Equatable {
    public enum Kind: String, Sendable, Codable, CaseIterable {
        case start, stop
        /// `node` took the lease at `epoch`.
        case promote
        /// `node` stopped serving at `epoch`.
        case demote
        /// An operator changed the pair's thresholds.
        case thresholds
    }

    /// Why a node promoted or demoted: the HA manager's rule that fired.
    public enum Reason: String, Sendable, Codable, CaseIterable {
        case peerStale = "peer_stale"
        case peerScoreLow = "peer_score_low"
        case leaseExpired = "lease_expired"
        case handover
        case lowScoreAndPeerRequest = "low_score_and_peer_request"
        case relayReportedHigherEpoch = "relay_reported_higher_epoch"
        case leaseLost = "lease_lost"
        case operatorRequest = "operator_request"
        case shutdown
    }

    /// When, on the database clock, in milliseconds since 1970.
    public var atUnixMs: Int64
    public var node: String
    public var kind: Kind
    public var epoch: UInt64?
    /// For promotions and demotions; nil for the other kinds.
    public var reason: Reason?
    /// For an operator to read; facts a program needs are in the other fields.
    public var detail: String

    enum CodingKeys: String, CodingKey {
        case atUnixMs = "at_unix_ms", node, kind, epoch, reason, detail
    }

    public init(atUnixMs: Int64, node: String, kind: Kind, epoch: UInt64?, reason: Reason? = nil, detail: String) {
        self.atUnixMs = atUnixMs
        self.node = node
        self.kind = kind
        self.epoch = epoch
        self.reason = reason
        self.detail = detail
    }
}

/// A pair's events, oldest first.
public struct PairEventLog: Sendable, Codable {
    public var pair: String
    public var events: [PairEvent]

    public init(pair: String, events: [PairEvent]) {
        self.pair = pair
        self.events = events
    }
}

extension HAStateMachine.PromotionReason {
    public var eventReason: PairEvent.Reason {
        switch self {
        case .peerStale: .peerStale
        case .peerScoreLow: .peerScoreLow
        case .leaseExpired: .leaseExpired
        case .handover: .handover
        }
    }
}

extension HAStateMachine.DemotionReason {
    public var eventReason: PairEvent.Reason {
        switch self {
        case .lowScoreAndPeerRequest: .lowScoreAndPeerRequest
        case .relayReportedHigherEpoch: .relayReportedHigherEpoch
        case .leaseLost: .leaseLost
        case .operatorRequest: .operatorRequest
        case .shutdown: .shutdown
        }
    }
}
