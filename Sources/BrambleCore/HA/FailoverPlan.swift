/// Whether a planned switchover (`bramble failover [--to NODE]`) may start: the primary
/// asks the configuration database for the lease's handover only when a standby is
/// running and would take over. Pure: the shell passes what its last heartbeat saw.
public enum FailoverPlan {
    /// Why a switchover is refused; `message` says what an operator can do about it.
    public enum Refusal: Error, Sendable, Equatable {
        case notPrimary(role: NodeRole)
        case databaseUnreachable
        case targetIsSelf(node: String)
        case noStandby(pair: String)
        case unknownStandby(target: String, pair: String, standby: String)
        case standbyNotRunning(standby: String, heartbeatAgeMs: Int64)
        case standbyBelowPromotion(standby: String, score: Int, threshold: Int)

        public var message: String {
            switch self {
            case .notPrimary(let role): "this node is \(role.rawValue), not the primary; ask the primary (bramble status shows it)"
            case .databaseUnreachable: "this primary cannot reach the configuration database; a handover needs it"
            case .targetIsSelf(let node): "\(node) is this node, the primary; name the standby"
            case .noStandby(let pair): "no standby of pair \(pair) has written a heartbeat; nothing could take over"
            case .unknownStandby(let target, let pair, let standby): "pair \(pair) has no standby named \(target) (its standby is \(standby))"
            case .standbyNotRunning(let standby, let age): "standby \(standby) last wrote a heartbeat \(age) ms ago; it is not running"
            case .standbyBelowPromotion(let standby, let score, let threshold):
                "standby \(standby) scores \(score), below the promotion threshold \(threshold); it would not take over"
            }
        }
    }

    public struct Situation: Sendable, Equatable {
        public var pair: String
        public var node: String
        public var role: NodeRole
        /// The standby's last heartbeat as this node's last heartbeat read it.
        public var peer: HAStateMachine.PeerHeartbeat?
        public var peerAgeMs: Int64?
        public var leaseMs: Int
        public var promotionThreshold: Int
        public init(pair: String, node: String, role: NodeRole, peer: HAStateMachine.PeerHeartbeat?, peerAgeMs: Int64?,
                    leaseMs: Int, promotionThreshold: Int) {
            self.pair = pair
            self.node = node
            self.role = role
            self.peer = peer
            self.peerAgeMs = peerAgeMs
            self.leaseMs = leaseMs
            self.promotionThreshold = promotionThreshold
        }
    }

    /// The standby to hand the lease to, or why not.
    public static func check(_ s: Situation, target: String?) -> Result<String, Refusal> {
        switch s.role {
        case .primary: break
        case .primaryDegraded: return .failure(.databaseUnreachable)
        case .standby, .promoting, .stopped: return .failure(.notPrimary(role: s.role))
        }
        if let target, target == s.node { return .failure(.targetIsSelf(node: target)) }
        guard let peer = s.peer, let age = s.peerAgeMs else { return .failure(.noStandby(pair: s.pair)) }
        if let target, target != peer.node { return .failure(.unknownStandby(target: target, pair: s.pair, standby: peer.node)) }
        guard age <= Int64(s.leaseMs) else { return .failure(.standbyNotRunning(standby: peer.node, heartbeatAgeMs: age)) }
        guard peer.score >= s.promotionThreshold else {
            return .failure(.standbyBelowPromotion(standby: peer.node, score: peer.score, threshold: s.promotionThreshold))
        }
        return .success(peer.node)
    }
}
