/// The HA role a node is in, as `/health`, `bramble status`, the heartbeat row and the
/// `bramble_role` metric name it.
public enum NodeRole: String, Sendable, Codable, CaseIterable {
    case standby
    /// Asked the database for the lease; awaiting the answer.
    case promoting
    case primary
    /// Serving, but the last lease renewal did not reach the database.
    case primaryDegraded = "primary_degraded"
    case stopped

    /// Serving as primary (degraded or not).
    public var isPrimary: Bool { self == .primary || self == .primaryDegraded }
}

extension HAStateMachine.Role {
    public var name: NodeRole {
        switch self {
        case .standby: .standby
        case .promoting: .promoting
        case .primary: .primary
        case .primaryDegraded: .primaryDegraded
        case .stopped: .stopped
        }
    }

    /// The epoch this node serves at, while it is primary.
    public var servingEpoch: UInt64? {
        switch self {
        case .primary(let e), .primaryDegraded(let e): e
        case .standby, .promoting, .stopped: nil
        }
    }
}
