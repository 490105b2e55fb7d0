import Testing

@testable import BrambleCore

/// Facts as a node's `/health` gives them: every parameter healthy unless `unhealthy`
/// names some (the score is then what `HealthCheck.score` makes of them).
func nodeFacts(_ node: String = "node-a", role: NodeRole = .primary, epoch: UInt64? = 7, leaseValid: Bool? = nil,
               unhealthy: [HealthParameter: String] = [:], ready: Bool? = nil, reason: String = "as the node says",
               peer: String? = nil, queue: Int? = 0) -> NodeCheck.Facts {
    let parameters = HealthParameter.allCases.map { HealthCheck($0, healthy: unhealthy[$0] == nil, detail: unhealthy[$0] ?? "fine") }
    return NodeCheck.Facts(node: node, role: role, epoch: role.isPrimary ? epoch : nil, leaseValid: leaseValid ?? role.isPrimary,
                           score: HealthCheck.score(parameters), failoverThreshold: 2, promotionThreshold: 3, parameters: parameters,
                           srpLinkUp: role.isPrimary, databaseError: unhealthy[.configurationDatabase],
                           readiness: ready.map { .init(ready: $0, reason: reason) }, peer: peer.map { .init(node: $0, score: 12, heartbeatAgeMs: 150) },
                           queueDepth: role.isPrimary ? queue : 0)
}

@Suite struct NodeCheckTests {
    func verdict(_ f: NodeCheck.Facts, _ limits: NodeCheck.Limits = .init()) -> NagiosResult {
        NodeCheck.verdict(.answered(f), at: "10.0.0.21:8080", limits: limits)
    }

    @Test func aHealthyPrimaryIsOKWithItsScoreThresholdsEpochAndQueue() {
        let result = verdict(nodeFacts(peer: "node-b", queue: 4))
        #expect(result.state == .ok)
        #expect(result.summary == "node-a primary (epoch 7, score 12/12)")
        #expect(result.perfdata.map(\.rendered) == ["score=12;12:;2:;0;12", "failover_threshold=2", "promotion_threshold=3", "epoch=7",
                                                    "queue_depth=4;;;0"])
        #expect(result.details == ["node-a sees node-b at score 12, heartbeat 150 ms ago"])
    }

    @Test func aPrimaryBelowTheFailoverThresholdIsCriticalAndNamesWhatIsUnhealthy() {
        let result = verdict(nodeFacts(unhealthy: [.dispatcher: "no delivery tick for 4000 ms"]))
        #expect(result.state == .critical)
        #expect(result.summary == "node-a primary below the failover threshold 2 (epoch 7, score 1/12, dispatcher unhealthy)")
        #expect(result.details == ["node-a dispatcher unhealthy: no delivery tick for 4000 ms"])
    }

    @Test func aPrimaryWithALesserUnhealthyParameterIsAWarning() {
        let result = verdict(nodeFacts(unhealthy: [.atLeastOneUser: "no user accounts", .policy: "off"]))
        #expect(result.state == .warning)
        #expect(result.summary == "node-a primary (epoch 7, score 6/12, at_least_one_user and 1 more unhealthy)")
        #expect(result.details == ["node-a at_least_one_user unhealthy: no user accounts", "node-a policy unhealthy: off"])
        // The operator may care only about the top of the list.
        #expect(verdict(nodeFacts(unhealthy: [.atLeastOneUser: "no user accounts"]), .init(scoreWarning: 6)).state == .ok)
        #expect(verdict(nodeFacts(unhealthy: [.atLeastOneUser: "no user accounts"]), .init(scoreWarning: 7)).state == .warning)
    }

    @Test func aDegradedOrUnreadyPrimaryIsAWarning() {
        let degraded = verdict(nodeFacts(role: .primaryDegraded, ready: false, reason: "primary_degraded"))
        #expect(degraded.state == .warning)
        #expect(degraded.summary == "node-a primary_degraded whose last lease renewal did not reach the database (epoch 7, score 12/12)")
        let unready = verdict(nodeFacts(ready: false, reason: "primary, but the lease or the SRP link is not there"))
        #expect(unready.state == .warning)
        #expect(unready.summary == "node-a primary not ready: primary, but the lease or the SRP link is not there (epoch 7, score 12/12)")
    }

    @Test func aPrimaryWithoutAValidLeaseIsCritical() {
        let result = verdict(nodeFacts(leaseValid: false))
        #expect(result.state == .critical)
        #expect(result.summary == "node-a primary without a valid lease, so not serving (epoch 7, score 12/12)")
    }

    @Test func aStandbyThatCouldTakeOverIsOKAndOneThatCouldNotAWarning() {
        let ready = verdict(nodeFacts("node-b", role: .standby, ready: true))
        #expect(ready.state == .ok)
        #expect(ready.summary == "node-b standby ready (score 12/12)")
        #expect(ready.perfdata.first?.rendered == "score=12;12:;;0;12", "a standby has no critical score")
        #expect(!ready.perfdata.contains { $0.label == "epoch" })
        let unready = verdict(nodeFacts("node-b", role: .standby, unhealthy: [.wirelessNetwork: "relay unreachable"], ready: false,
                                        reason: "standby scoring 0, below the promotion threshold 3"))
        #expect(unready.state == .warning)
        #expect(unready.summary == "node-b standby cannot take over: standby scoring 0, below the promotion threshold 3 (score 0/12, wireless_network unhealthy)")
        #expect(unready.details == ["node-b wireless_network unhealthy: relay unreachable"])
        let weak = verdict(nodeFacts("node-b", role: .standby, unhealthy: [.synchronization: "off"], ready: true))
        #expect(weak.state == .warning, "ready, but a parameter is unhealthy")
    }

    @Test func withoutReadyItsOwnRuleDecides() {
        #expect(nodeFacts("node-b", role: .standby).effectiveReadiness.ready)
        #expect(!nodeFacts("node-b", role: .standby, unhealthy: [.dispatcher: "x"]).effectiveReadiness.ready)
        #expect(!nodeFacts("node-b", role: .standby, unhealthy: [.configurationDatabase: "down"]).effectiveReadiness.ready)
        #expect(nodeFacts().effectiveReadiness.ready)
        var linkDown = nodeFacts()
        linkDown.srpLinkUp = false
        #expect(!linkDown.effectiveReadiness.ready)
        #expect(verdict(linkDown).state == .warning)
        #expect(!nodeFacts(role: .promoting).effectiveReadiness.ready)
    }

    @Test func aPromotingNodeIsAWarningAndAStoppingOneCritical() {
        #expect(verdict(nodeFacts(role: .promoting)).state == .warning)
        #expect(verdict(nodeFacts(role: .promoting)).summary == "node-a promoting (score 12/12)")
        #expect(verdict(nodeFacts(role: .stopped)).state == .critical)
        #expect(verdict(nodeFacts(role: .stopped)).summary == "node-a stopped (score 12/12)")
    }

    @Test func aNodeThatDoesNotAnswerIsCriticalAndAnAnswerThatCannotBeReadUnknown() {
        let down = NodeCheck.verdict(.unreachable("connection refused"), at: "10.0.0.21:8080")
        #expect(down.state == .critical)
        #expect(down.summary == "10.0.0.21:8080 unreachable (connection refused)")
        #expect(down.perfdata.isEmpty)
        let garbage = NodeCheck.verdict(.unreadable("/health is not a Bramble node's answer (not JSON)"), at: "10.0.0.21:8080")
        #expect(garbage.state == .unknown)
        #expect(garbage.summary == "10.0.0.21:8080: /health is not a Bramble node's answer (not JSON)")
    }

    @Test func theQueueIsJudgedOnlyAgainstTheOperatorsThresholds() {
        let limits = NodeCheck.Limits(queueWarning: 100, queueCritical: 1_000)
        #expect(verdict(nodeFacts(queue: 100), limits).state == .ok, "Nagios alerts above the threshold, not at it")
        let warning = verdict(nodeFacts(queue: 101), limits)
        #expect(warning.state == .warning)
        #expect(warning.summary == "node-a primary with 101 items queued, above 100 (epoch 7, score 12/12)")
        #expect(warning.perfdata.last?.rendered == "queue_depth=101;100;1000;0")
        #expect(verdict(nodeFacts(queue: 1_001), limits).state == .critical)
        // Thresholds given but nothing to judge: UNKNOWN unless something worse is known.
        let unread = verdict(nodeFacts(queue: nil), limits)
        #expect(unread.state == .unknown)
        #expect(unread.details == ["node-a: the queue depth could not be read from /metrics"])
        #expect(verdict(nodeFacts(queue: nil)).state == .ok, "without thresholds the queue is only performance data")
        #expect(verdict(nodeFacts(unhealthy: [.wirelessNetwork: "down"], queue: nil), limits).state == .critical)
    }
}
