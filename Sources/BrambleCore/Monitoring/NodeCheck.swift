/// `bramble check node`: one node's verdict from its `/health`, `/health/ready` and the
/// queue depth of its `/metrics`, by the pair's own rules (README, "The HA pair"): a
/// primary below the failover threshold is CRITICAL, a standby that could not take over
/// a WARNING, and so is any unhealthy parameter. Pure: the shell fetches, this judges.
public enum NodeCheck {
    /// What a node said about itself.
    public struct Facts: Sendable, Equatable {
        public struct Readiness: Sendable, Equatable {
            public var ready: Bool
            public var reason: String
            public init(ready: Bool, reason: String) { (self.ready, self.reason) = (ready, reason) }
        }

        /// The pair's other node as this node's last reading of the heartbeats saw it.
        public struct Peer: Sendable, Equatable {
            public var node: String
            public var score: Int
            public var heartbeatAgeMs: Int64?
            public init(node: String, score: Int, heartbeatAgeMs: Int64?) { (self.node, self.score, self.heartbeatAgeMs) = (node, score, heartbeatAgeMs) }
        }

        public var node: String
        public var role: NodeRole
        public var epoch: UInt64?
        /// Serving with a valid lease: what `/primary` answers 200 for.
        public var leaseValid: Bool
        public var score: Int
        public var failoverThreshold: Int
        public var promotionThreshold: Int
        public var parameters: [HealthCheck]
        /// The SRP link up (only a primary holds one).
        public var srpLinkUp: Bool
        public var databaseError: String?
        /// `/health/ready`'s answer; nil when it could not be read (then judged as the node
        /// judges it).
        public var readiness: Readiness?
        public var peer: Peer?
        /// `bramble_queue_depth` from `/metrics`; nil when it could not be read.
        public var queueDepth: Int?

        public init(node: String, role: NodeRole, epoch: UInt64?, leaseValid: Bool, score: Int, failoverThreshold: Int,
                    promotionThreshold: Int, parameters: [HealthCheck], srpLinkUp: Bool, databaseError: String?,
                    readiness: Readiness?, peer: Peer?, queueDepth: Int?) {
            (self.node, self.role, self.epoch, self.leaseValid, self.score) = (node, role, epoch, leaseValid, score)
            (self.failoverThreshold, self.promotionThreshold, self.parameters) = (failoverThreshold, promotionThreshold, parameters)
            (self.srpLinkUp, self.databaseError, self.readiness, self.peer, self.queueDepth) = (srpLinkUp, databaseError, readiness, peer, queueDepth)
        }

        /// Serving as primary with a valid lease.
        public var serves: Bool { role.isPrimary && leaseValid }

        /// `/health/ready`'s answer, or the node's own rule for it when that was not read.
        public var effectiveReadiness: Readiness {
            if let readiness { return readiness }
            switch role {
            case .primary:
                let ready = leaseValid && srpLinkUp
                return Readiness(ready: ready, reason: ready ? "primary with a valid lease and the SRP link up" : "primary, but the lease or the SRP link is not there")
            case .standby:
                let ready = databaseError == nil && score >= promotionThreshold
                return Readiness(ready: ready, reason: ready ? "standby able to take over"
                                                             : "standby scoring \(score), below the promotion threshold \(promotionThreshold)")
            case .promoting, .primaryDegraded, .stopped:
                return Readiness(ready: false, reason: role.rawValue)
            }
        }
    }

    /// What became of asking a node.
    public enum Observation: Sendable, Equatable {
        case answered(Facts)
        /// No connection, no answer in time, or a 5xx: the node is not serving its API.
        case unreachable(String)
        /// It answered something this check cannot read (not JSON, too large, another
        /// program's answer): the check cannot tell.
        case unreadable(String)
    }

    /// The operator's thresholds.
    public struct Limits: Sendable, Equatable {
        /// WARNING when a node's score is below this (nil: below the number of
        /// parameters, i.e. any unhealthy parameter).
        public var scoreWarning: Int?
        /// WARNING (CRITICAL) when more items than this are queued or in flight.
        public var queueWarning: Int?
        public var queueCritical: Int?
        public init(scoreWarning: Int? = nil, queueWarning: Int? = nil, queueCritical: Int? = nil) {
            (self.scoreWarning, self.queueWarning, self.queueCritical) = (scoreWarning, queueWarning, queueCritical)
        }
        var scoreFloor: Int { scoreWarning ?? NodeCheck.parameterCount }
    }

    /// A score is out of this many parameters.
    public static let parameterCount = HealthParameter.allCases.count

    /// One node judged on its own: its state, one phrase for the status line, and the
    /// lines that explain it.
    public struct Assessment: Sendable, Equatable {
        public var state: NagiosState
        public var phrase: String
        public var details: [String]
        /// Serving, ready, not degraded, at or above the failover threshold.
        public var healthyPrimary: Bool
        /// A standby that could take over now.
        public var canTakeOver: Bool
    }

    public static func assess(_ f: Facts, limits: Limits) -> Assessment {
        let readiness = f.effectiveReadiness
        var states: [NagiosState] = []
        var qualifiers: [String] = []
        var details = f.parameters.filter { !$0.healthy }.map { "\(f.node) \($0.parameter.rawValue) unhealthy: \($0.detail)" }
        var healthyPrimary = false
        var canTakeOver = false
        switch f.role {
        case .primary, .primaryDegraded:
            if !f.leaseValid {
                states.append(.critical)
                qualifiers.append("without a valid lease, so not serving")
            } else if f.score < f.failoverThreshold {
                states.append(.critical)
                qualifiers.append("below the failover threshold \(f.failoverThreshold)")
            }
            if f.leaseValid && f.role == .primaryDegraded {
                states.append(.warning)
                qualifiers.append("whose last lease renewal did not reach the database")
            }
            if f.leaseValid && f.role == .primary && !readiness.ready {
                states.append(.warning)
                qualifiers.append("not ready: \(readiness.reason)")
            }
            healthyPrimary = f.leaseValid && f.role == .primary && readiness.ready && f.score >= f.failoverThreshold
        case .standby:
            if readiness.ready {
                qualifiers.append("ready")
                canTakeOver = true
            } else {
                states.append(.warning)
                qualifiers.append("cannot take over: \(readiness.reason)")
            }
        case .promoting:
            states.append(.warning)
        case .stopped:
            states.append(.critical)
        }
        if f.score < limits.scoreFloor { states.append(.warning) }
        if let depth = f.queueDepth {
            if let critical = limits.queueCritical, depth > critical {
                states.append(.critical)
                qualifiers.append("with \(depth) items queued, above \(critical)")
            } else if let warning = limits.queueWarning, depth > warning {
                states.append(.warning)
                qualifiers.append("with \(depth) items queued, above \(warning)")
            }
        } else if limits.queueWarning != nil || limits.queueCritical != nil {
            states.append(.unknown)
            details.append("\(f.node): the queue depth could not be read from /metrics")
        }
        var stats = f.role.isPrimary ? ["epoch \(f.epoch.map(String.init) ?? "-")"] : []
        stats.append("score \(f.score)/\(parameterCount)" + unhealthySummary(f.parameters))
        let phrase = "\(f.node) \(f.role.rawValue)" + (qualifiers.isEmpty ? "" : " " + qualifiers.joined(separator: ", "))
            + " (" + stats.joined(separator: ", ") + ")"
        return Assessment(state: NagiosState.worst(states), phrase: phrase, details: details, healthyPrimary: healthyPrimary,
                          canTakeOver: canTakeOver)
    }

    /// ", at_least_one_user unhealthy", ", dispatcher and 2 more unhealthy", or nothing.
    static func unhealthySummary(_ parameters: [HealthCheck]) -> String {
        let unhealthy = parameters.filter { !$0.healthy }
        guard let first = unhealthy.first else { return "" }
        return ", \(first.parameter.rawValue)" + (unhealthy.count > 1 ? " and \(unhealthy.count - 1) more" : "") + " unhealthy"
    }

    /// `bramble check node`: `place` names the node when it did not answer (its URL).
    public static func verdict(_ observation: Observation, at place: String, limits: Limits = .init()) -> NagiosResult {
        switch observation {
        case .unreachable(let reason):
            return NagiosResult(state: .critical, summary: "\(place) unreachable (\(reason))")
        case .unreadable(let reason):
            return .unknown("\(place): \(reason)")
        case .answered(let f):
            let a = assess(f, limits: limits)
            var details = a.details
            if let peer = f.peer {
                details.append("\(f.node) sees \(peer.node) at score \(peer.score)"
                               + (peer.heartbeatAgeMs.map { ", heartbeat \($0) ms ago" } ?? ", no heartbeat"))
            }
            return NagiosResult(state: a.state, summary: a.phrase, details: details, perfdata: perfdata(f, prefix: "", limits: limits))
        }
    }

    /// The node's score (with the thresholds that judge it), the pair's thresholds, its
    /// epoch and its queue.
    static func perfdata(_ f: Facts, prefix: String, limits: Limits) -> [PerfDatum] {
        var data = [PerfDatum(prefix + "score", f.score, warning: .below(Double(limits.scoreFloor)),
                              critical: f.role.isPrimary ? .below(Double(f.failoverThreshold)) : nil, min: 0, max: Double(parameterCount))]
        guard prefix.isEmpty else { return data }
        data.append(PerfDatum("failover_threshold", f.failoverThreshold))
        data.append(PerfDatum("promotion_threshold", f.promotionThreshold))
        if let epoch = f.epoch { data.append(PerfDatum("epoch", Double(epoch))) }
        if let depth = f.queueDepth { data.append(queueDatum(depth, limits: limits)) }
        return data
    }

    static func queueDatum(_ depth: Int, limits: Limits) -> PerfDatum {
        PerfDatum("queue_depth", depth, warning: limits.queueWarning.map { .above(Double($0)) },
                  critical: limits.queueCritical.map { .above(Double($0)) }, min: 0)
    }
}
