import BrambleCore

/// The open endpoints monitors and load balancers use (no token), as Patroni's are.
public enum HealthAPI {
    public static let health = "/health"
    public static let live = "/health/live"
    /// 200 on a primary with a valid lease and its SRP link up, or a standby able to take
    /// over; else 503.
    public static let ready = "/health/ready"
    /// 200 only while serving as primary with a valid lease.
    public static let primary = "/primary"
    /// 200 only on a standby.
    public static let standby = "/standby"
    public static let metrics = "/metrics"
    public static let openPaths: Set<String> = [health, live, ready, primary, standby, metrics]
}

/// `GET /health`.
public struct NodeHealth: Codable, Sendable, Equatable {
    public struct Database: Codable, Sendable, Equatable {
        public var reachable: Bool
        public var error: String?
        public init(reachable: Bool, error: String?) { (self.reachable, self.error) = (reachable, error) }
    }
    public struct Relay: Codable, Sendable, Equatable {
        public var address: String
        /// This node's SRP link (only a primary holds one).
        public var srp_link_up: Bool
        public var srp_link_error: String?
        /// A standby's probe of the relay's SRP listener (or the primary's link).
        public var reachable: Bool
        public var detail: String
        public init(address: String, srp_link_up: Bool, srp_link_error: String?, reachable: Bool, detail: String) {
            (self.address, self.srp_link_up, self.srp_link_error, self.reachable, self.detail) = (address, srp_link_up, srp_link_error, reachable, detail)
        }
    }
    public struct Peer: Codable, Sendable, Equatable {
        public var node: String
        public var score: Int
        public var heartbeat_age_ms: Int64?
        public var requests_lease: Bool
        public init(node: String, score: Int, heartbeat_age_ms: Int64?, requests_lease: Bool) {
            (self.node, self.score, self.heartbeat_age_ms, self.requests_lease) = (node, score, heartbeat_age_ms, requests_lease)
        }
    }
    public var node: String
    public var pair: String
    public var srp_id: String
    public var role: NodeRole
    public var epoch: UInt64?
    public var lease_valid: Bool
    public var score: Int
    public var failover_threshold: Int
    public var promotion_threshold: Int
    public var requests_lease: Bool
    public var parameters: [HealthCheck]
    public var database: Database
    public var relay: Relay
    public var peer: Peer?

    public init(node: String, pair: String, srp_id: String, role: NodeRole, epoch: UInt64?, lease_valid: Bool, score: Int,
                failover_threshold: Int, promotion_threshold: Int, requests_lease: Bool, parameters: [HealthCheck],
                database: Database, relay: Relay, peer: Peer?) {
        (self.node, self.pair, self.srp_id, self.role, self.epoch, self.lease_valid) = (node, pair, srp_id, role, epoch, lease_valid)
        (self.score, self.failover_threshold, self.promotion_threshold, self.requests_lease) = (score, failover_threshold, promotion_threshold, requests_lease)
        (self.parameters, self.database, self.relay, self.peer) = (parameters, database, relay, peer)
    }
}

/// `GET /health/ready`: `ready` is "true" or "false" (strings, as load balancer checks
/// match them).
public struct Readiness: Codable, Sendable, Equatable {
    public var ready: String
    public var role: NodeRole
    public var reason: String
    public init(ready: Bool, role: NodeRole, reason: String) { (self.ready, self.role, self.reason) = (ready ? "true" : "false", role, reason) }
}

/// `GET /primary`, `/standby`.
public struct RoleAnswer: Codable, Sendable, Equatable {
    public var node: String
    public var role: NodeRole
    public init(node: String, role: NodeRole) { (self.node, self.role) = (node, role) }
}

/// The relay's `GET /health` (on its `--http-listen`): what it holds now.
public struct RelayHealth: Codable, Sendable, Equatable {
    public var status: String
    public var connected_devices: Int
    public var connections: Int
    public var unauthenticated_connections: Int
    public var registered_device_keys: Int
    /// The node registered for each SRP ID, by its epoch.
    public var sessions: [String: UInt64]
    public var stored_for_devices: Int
    public var stored_for_servers: Int
    public var stored_bytes: Int

    public init(status: String = "ok", connected_devices: Int, connections: Int, unauthenticated_connections: Int, registered_device_keys: Int,
                sessions: [String: UInt64], stored_for_devices: Int, stored_for_servers: Int, stored_bytes: Int) {
        (self.status, self.connected_devices, self.connections, self.unauthenticated_connections) = (status, connected_devices, connections, unauthenticated_connections)
        (self.registered_device_keys, self.sessions, self.stored_for_devices) = (registered_device_keys, sessions, stored_for_devices)
        (self.stored_for_servers, self.stored_bytes) = (stored_for_servers, stored_bytes)
    }
}
