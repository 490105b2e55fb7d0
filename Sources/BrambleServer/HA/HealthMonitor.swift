import BrambleCore
import BrambleNet
import NIOConcurrencyHelpers

/// Where the HA manager gets its node's health parameters (`HealthMonitor` in a node).
public protocol HealthSource: Sendable {
    /// The database's count of users and active devices.
    func accountsCounted(_ accounts: HealthFacts.Accounts)
    /// This node began serving (monotonic ms).
    func servingSince(_ ms: UInt64)
    /// Every parameter, in BES's order.
    func evaluate(role: HAStateMachine.Role, databaseError: String?) -> [HealthCheck]
    /// Sets the gauges of what was last measured beyond the checks (the mailboxes watched).
    func report(to metrics: NodeMetrics)
}

extension HealthSource {
    public func report(to metrics: NodeMetrics) {}
}

/// Gathers the facts each health parameter is measured from — the Router's link, the
/// relay probe, the Dispatcher, the account counts — without waiting on any component,
/// and has `HealthEvaluation` (the pure core) decide what they mean.
public final class HealthMonitor: HealthSource {
    private struct Counted { var accounts: HealthFacts.Accounts?; var servingSinceMs: UInt64 = 0 }
    let link: LinkStatus
    let relayProbe: RelayProbe
    let dispatcher: Dispatcher
    let agent: MessagingAgent?
    let clock: any NodeClock
    let limits: HealthEvaluation.Limits
    private let counted = NIOLockedValueBox(Counted())

    public init(link: LinkStatus, relayProbe: RelayProbe, dispatcher: Dispatcher, agent: MessagingAgent? = nil,
                clock: any NodeClock = SystemClock(), limits: HealthEvaluation.Limits = .init()) {
        (self.link, self.relayProbe, self.dispatcher, self.agent, self.clock, self.limits) = (link, relayProbe, dispatcher, agent, clock, limits)
    }

    /// The database's count of users and active devices; a Dispatcher holding another
    /// number of keys than there are active devices is asked to load them (in its own
    /// task): devices provisioned, or removed, since.
    public func accountsCounted(_ accounts: HealthFacts.Accounts) {
        counted.withLockedValue { $0.accounts = accounts }
        if dispatcher.health.deviceKeys != accounts.activeDevices { dispatcher.refreshKeys() }
        agent?.accountsCounted(activeDevices: accounts.activeDevices)
    }

    public func servingSince(_ ms: UInt64) { counted.withLockedValue { $0.servingSinceMs = ms } }

    public func report(to metrics: NodeMetrics) {
        guard let agent else { return }
        let facts = agent.health
        let serving = facts.servingEpoch != nil
        metrics.mailboxes(total: serving ? facts.total : 0, watched: serving ? facts.watched : 0, failing: serving ? facts.failingCount : 0)
    }

    public func evaluate(role: HAStateMachine.Role, databaseError: String?) -> [HealthCheck] {
        let c = counted.withLockedValue { $0 }
        var facts = HealthFacts(nowMs: clock.nowMs())
        facts.servingEpoch = role.servingEpoch
        facts.servingSinceMs = c.servingSinceMs
        facts.link = link.snapshot
        (facts.relayReachable, facts.relayDetail) = relayProbe.result
        facts.dispatcher = dispatcher.health
        if let agent { facts.messagingAgent = agent.health }
        facts.databaseError = databaseError
        facts.accounts = c.accounts
        return HealthEvaluation.evaluate(facts, limits: limits)
    }
}
