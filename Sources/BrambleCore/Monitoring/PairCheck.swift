/// `bramble check pair`: the HA pair judged from both nodes' own answers, by the pair's
/// rules (README, "The HA pair"):
///
/// - CRITICAL: no node serves as primary, or two do; or the primary is below the failover
///   threshold; or the primary is not healthy (degraded, not ready) while no standby could
///   take over (unreachable, or not ready).
/// - WARNING: the standby is unreachable or could not take over; the primary is degraded
///   or not ready; a node's score is below the score warning; the queue past its warning.
/// - UNKNOWN: an answer that cannot be read, when nothing worse is known; two URLs that
///   reach the same node.
public enum PairCheck {
    /// One URL of the pair and what asking it gave.
    public struct Member: Sendable, Equatable {
        /// How to name the node if it does not answer (its URL's host and port).
        public var place: String
        public var observation: NodeCheck.Observation
        public init(place: String, observation: NodeCheck.Observation) { (self.place, self.observation) = (place, observation) }
    }

    public static func verdict(_ members: [Member], limits: NodeCheck.Limits = .init()) -> NagiosResult {
        let answered = members.compactMap { m -> NodeCheck.Facts? in if case .answered(let f) = m.observation { f } else { nil } }
        let names = answered.map(\.node)
        if let twice = names.first(where: { n in names.count { $0 == n } > 1 }) {
            return .unknown("more than one URL reaches \(twice): give each node's URL once")
        }
        // A node that did not answer is named as the other knows it, for its label to stay
        // the same whatever its state.
        let peers = answered.compactMap { $0.peer?.node }.filter { !names.contains($0) }
        var unnamed = peers.makeIterator()
        let serving = answered.filter(\.serves)

        var statements: [(state: NagiosState, phrase: String)] = []
        var details: [String] = []
        var perfdata: [PerfDatum] = []
        switch serving.count {
        case 0:
            let unreadable = members.contains { if case .unreadable = $0.observation { true } else { false } }
            statements.append(unreadable ? (.unknown, "cannot tell whether a node serves as primary") : (.critical, "no node serves as primary"))
        case 1:
            break
        default:
            let who = serving.map { "\($0.node) (epoch \($0.epoch.map(String.init) ?? "-"))" }.joined(separator: " and ")
            statements.append((.critical, "\(serving.count) nodes serve as primary at once: \(who)"))
        }

        var primaryHealthy = false
        var standbyCanTakeOver = false
        // The serving primary first, then the others in the order given.
        let ordered = members.filter { if case .answered(let f) = $0.observation { f.serves } else { false } }
            + members.filter { if case .answered(let f) = $0.observation { !f.serves } else { true } }
        for member in ordered {
            switch member.observation {
            case .answered(let f):
                let a = NodeCheck.assess(f, limits: limits)
                // Beside a serving primary, a node that is not serving only costs the pair
                // its standby: a WARNING (the rule below makes it CRITICAL when it matters).
                let state = serving.count == 1 && !f.serves && a.state == .critical ? .warning : a.state
                statements.append((state, a.phrase))
                details += a.details
                if f.serves { primaryHealthy = a.healthyPrimary }
                standbyCanTakeOver = standbyCanTakeOver || a.canTakeOver
                perfdata += NodeCheck.perfdata(f, prefix: f.node + "_", limits: limits)
            case .unreachable(let reason):
                let name = unnamed.next() ?? member.place
                statements.append((.warning, "\(name) unreachable (\(reason))" + (serving.count == 1 ? ": no standby" : "")))
            case .unreadable(let reason):
                let name = unnamed.next() ?? member.place
                statements.append((.unknown, "\(name): \(reason)"))
            }
        }
        if serving.count == 1 && !primaryHealthy && !standbyCanTakeOver {
            statements.insert((.critical, "the primary is not healthy and no standby could take over"), at: 0)
        }

        if serving.count == 1, let primary = serving.first {
            if let epoch = primary.epoch { perfdata.append(PerfDatum("epoch", Double(epoch))) }
            if let depth = primary.queueDepth { perfdata.append(NodeCheck.queueDatum(depth, limits: limits)) }
        }
        if let any = serving.first ?? answered.first {
            perfdata.append(PerfDatum("failover_threshold", any.failoverThreshold))
            perfdata.append(PerfDatum("promotion_threshold", any.promotionThreshold))
        }
        // The worst first, in the order above among equals.
        let sorted = statements.enumerated().sorted { ($0.element.state, $1.offset) > ($1.element.state, $0.offset) }.map(\.element)
        return NagiosResult(state: NagiosState.worst(statements.map(\.state)), summary: sorted.map(\.phrase).joined(separator: "; "),
                            details: details, perfdata: perfdata)
    }
}
