import BrambleCore

/// `GET /admin/pair`: the pair as the configuration database's heartbeats show it
/// (`bramble status`).
public struct PairStatus: Codable, Sendable, Equatable {
    public struct Lease: Codable, Sendable, Equatable {
        public var holder: String?
        public var epoch: UInt64
        /// Negative once the lease has expired.
        public var expires_in_ms: Int64
        public var handover_to: String?
        public init(holder: String?, epoch: UInt64, expires_in_ms: Int64, handover_to: String?) {
            (self.holder, self.epoch, self.expires_in_ms, self.handover_to) = (holder, epoch, expires_in_ms, handover_to)
        }
    }

    /// One node of the pair as its last heartbeat says.
    public struct Node: Codable, Sendable, Equatable {
        public var node: String
        public var role: NodeRole
        public var epoch: UInt64?
        public var score: Int
        public var requests_lease: Bool
        public var heartbeat_age_ms: Int64
        public var api_url: String
        public var parameters: [HealthCheck]
        public init(node: String, role: NodeRole, epoch: UInt64?, score: Int, requests_lease: Bool, heartbeat_age_ms: Int64,
                    api_url: String, parameters: [HealthCheck]) {
            (self.node, self.role, self.epoch, self.score, self.requests_lease) = (node, role, epoch, score, requests_lease)
            (self.heartbeat_age_ms, self.api_url, self.parameters) = (heartbeat_age_ms, api_url, parameters)
        }
    }

    public struct Database: Codable, Sendable, Equatable {
        public var reachable: Bool
        public var error: String?
        public init(reachable: Bool, error: String?) { (self.reachable, self.error) = (reachable, error) }
    }

    public struct Relay: Codable, Sendable, Equatable {
        public var address: String
        public var reachable: Bool
        public var detail: String
        public init(address: String, reachable: Bool, detail: String) { (self.address, self.reachable, self.detail) = (address, reachable, detail) }
    }

    public var pair: String
    public var answered_by: String
    public var lease: Lease?
    public var failover_threshold: Int
    public var promotion_threshold: Int
    public var nodes: [Node]
    public var database: Database
    public var relay: Relay

    public init(pair: String, answered_by: String, lease: Lease?, failover_threshold: Int, promotion_threshold: Int,
                nodes: [Node], database: Database, relay: Relay) {
        (self.pair, self.answered_by, self.lease, self.failover_threshold) = (pair, answered_by, lease, failover_threshold)
        (self.promotion_threshold, self.nodes, self.database, self.relay) = (promotion_threshold, nodes, database, relay)
    }

    /// The node serving as primary, if any.
    public var primary: Node? { nodes.first { $0.role.isPrimary } }
}

/// `GET`/`PUT /admin/pair/thresholds`: positions in the health parameter list.
public struct Thresholds: Codable, Sendable, Equatable {
    public var failover: Int?
    public var promotion: Int?
    public init(failover: Int? = nil, promotion: Int? = nil) { (self.failover, self.promotion) = (failover, promotion) }
}

/// `POST /admin/failover` (to the primary): a planned switchover.
public struct FailoverRequest: Codable, Sendable, Equatable {
    /// The standby to hand over to (default: the pair's standby).
    public var to: String?
    public init(to: String? = nil) { self.to = to }
}

public struct FailoverDone: Codable, Sendable, Equatable {
    public var pair: String
    public var from: String
    /// The epoch the old primary served at.
    public var epoch: UInt64
    public var to: String?
    public init(pair: String, from: String, epoch: UInt64, to: String?) { (self.pair, self.from, self.epoch, self.to) = (pair, from, epoch, to) }
}
