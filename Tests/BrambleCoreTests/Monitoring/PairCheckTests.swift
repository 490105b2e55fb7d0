import Testing

@testable import BrambleCore

@Suite struct PairCheckTests {
    typealias Member = PairCheck.Member
    static let a = "10.0.0.21:8080"
    static let b = "10.0.0.22:8080"

    func answered(_ f: NodeCheck.Facts, at place: String = b) -> Member { Member(place: place, observation: .answered(f)) }
    var primary: Member { answered(nodeFacts("node-a", peer: "node-b"), at: Self.a) }
    var standby: Member { answered(nodeFacts("node-b", role: .standby, ready: true, peer: "node-a")) }
    func down(_ place: String, _ reason: String = "connection refused") -> Member { Member(place: place, observation: .unreachable(reason)) }

    @Test func aServingPrimaryAndAReadyStandbyAreOK() {
        let result = PairCheck.verdict([primary, standby])
        #expect(result.state == .ok)
        #expect(result.summary == "node-a primary (epoch 7, score 12/12); node-b standby ready (score 12/12)")
        #expect(result.perfdata.map(\.rendered) == ["node-a_score=12;12:;2:;0;12", "node-b_score=12;12:;;0;12", "epoch=7",
                                                    "queue_depth=0;;;0", "failover_threshold=2", "promotion_threshold=3"])
        // Whichever URL comes first, the primary is named first.
        #expect(PairCheck.verdict([standby, primary]).summary == result.summary)
    }

    @Test func anUnreachableStandbyIsAWarningNamedAsThePrimaryKnowsIt() {
        let result = PairCheck.verdict([primary, down(Self.b)])
        #expect(result.state == .warning)
        #expect(result.summary == "node-b unreachable (connection refused): no standby; node-a primary (epoch 7, score 12/12)")
        #expect(!result.perfdata.contains { $0.label == "node-b_score" })
    }

    @Test func aStandbyThatCouldNotTakeOverIsAWarning() {
        let weak = answered(nodeFacts("node-b", role: .standby, unhealthy: [.wirelessNetwork: "relay unreachable"], ready: false,
                                      reason: "standby scoring 0, below the promotion threshold 3"))
        let result = PairCheck.verdict([primary, weak])
        #expect(result.state == .warning)
        #expect(result.summary.hasPrefix("node-b standby cannot take over: standby scoring 0, below the promotion threshold 3 (score 0/12"))
        #expect(result.details == ["node-b wireless_network unhealthy: relay unreachable"])
        // A standby that is stopping, beside a serving primary, costs the pair its standby only.
        let stopping = PairCheck.verdict([primary, answered(nodeFacts("node-b", role: .stopped))])
        #expect(stopping.state == .warning)
    }

    @Test func noServingPrimaryIsCritical() {
        // The primary was killed; the standby has not taken over yet.
        let killed = PairCheck.verdict([down(Self.a), standby])
        #expect(killed.state == .critical)
        #expect(killed.summary == "no node serves as primary; node-a unreachable (connection refused); node-b standby ready (score 12/12)")
        #expect(!killed.perfdata.contains { $0.label == "epoch" })
        // Neither answers: named by their URLs.
        let both = PairCheck.verdict([down(Self.a), down(Self.b, "no answer within 8 s")])
        #expect(both.state == .critical)
        #expect(both.summary == "no node serves as primary; 10.0.0.21:8080 unreachable (connection refused); 10.0.0.22:8080 unreachable (no answer within 8 s)")
        #expect(both.perfdata.isEmpty)
        // Two standbys.
        #expect(PairCheck.verdict([answered(nodeFacts("node-a", role: .standby, ready: true), at: Self.a), standby]).state == .critical)
    }

    @Test func twoServingPrimariesAreCritical() {
        let result = PairCheck.verdict([primary, answered(nodeFacts("node-b", epoch: 8))])
        #expect(result.state == .critical)
        #expect(result.summary.hasPrefix("2 nodes serve as primary at once: node-a (epoch 7) and node-b (epoch 8); "))
    }

    @Test func aPrimaryBelowTheFailoverThresholdIsCritical() {
        let low = answered(nodeFacts("node-a", unhealthy: [.wirelessNetwork: "SRP link down"]), at: Self.a)
        let result = PairCheck.verdict([low, standby])
        #expect(result.state == .critical)
        #expect(result.summary.hasPrefix("node-a primary below the failover threshold 2 (epoch 7, score 0/12, wireless_network unhealthy)"))
        #expect(result.perfdata.first?.rendered == "node-a_score=0;12:;2:;0;12")
    }

    @Test func anUnhealthyPrimaryWithNoStandbyToTakeOverIsCritical() {
        let unready = answered(nodeFacts("node-a", ready: false, reason: "primary, but the lease or the SRP link is not there", peer: "node-b"), at: Self.a)
        #expect(PairCheck.verdict([unready, standby]).state == .warning, "the standby can take over")
        let alone = PairCheck.verdict([unready, down(Self.b)])
        #expect(alone.state == .critical)
        #expect(alone.summary.hasPrefix("the primary is not healthy and no standby could take over; "))
        let degraded = answered(nodeFacts("node-a", role: .primaryDegraded), at: Self.a)
        #expect(PairCheck.verdict([degraded, standby]).state == .warning)
        let weakStandby = answered(nodeFacts("node-b", role: .standby, ready: false, reason: "standby scoring 2, below the promotion threshold 3"))
        #expect(PairCheck.verdict([degraded, weakStandby]).state == .critical)
    }

    @Test func aPrimaryMissingALesserParameterWithoutAStandbyIsOnlyAWarning() {
        let noUsers = answered(nodeFacts("node-a", unhealthy: [.atLeastOneUser: "no user accounts"], peer: "node-b"), at: Self.a)
        #expect(PairCheck.verdict([noUsers, down(Self.b)]).state == .warning)
    }

    @Test func anAnswerThatCannotBeReadIsUnknownUnlessSomethingWorseIsKnown() {
        let garbage = Member(place: Self.b, observation: .unreadable("/health is not a Bramble node's answer (not JSON)"))
        let result = PairCheck.verdict([primary, garbage])
        #expect(result.state == .unknown)
        #expect(result.summary == "node-b: /health is not a Bramble node's answer (not JSON); node-a primary (epoch 7, score 12/12)")
        let unsure = PairCheck.verdict([Member(place: Self.a, observation: .unreadable("an answer larger than 1 MiB")), standby])
        #expect(unsure.state == .unknown)
        #expect(unsure.summary.hasPrefix("cannot tell whether a node serves as primary; "))
        let low = answered(nodeFacts("node-a", unhealthy: [.dispatcher: "stuck"]), at: Self.a)
        #expect(PairCheck.verdict([low, garbage]).state == .critical)
        // One down, one unreadable: a WARNING at least, whether or not the other serves.
        let half = PairCheck.verdict([down(Self.a), garbage])
        #expect(half.state == .warning)
        #expect(half.summary.hasPrefix("10.0.0.21:8080 unreachable (connection refused); cannot tell whether a node serves as primary; "))
    }

    @Test func oneNodeGivenTwiceIsUnknown() {
        let result = PairCheck.verdict([primary, answered(nodeFacts("node-a"), at: "node-a.example:8080")])
        #expect(result.state == .unknown)
        #expect(result.summary == "more than one URL reaches node-a: give each node's URL once")
    }

    @Test func theWorstComesFirstInTheStatusLine() {
        let weak = answered(nodeFacts("node-b", role: .standby, ready: false, reason: "standby scoring 0, below the promotion threshold 3"))
        let low = answered(nodeFacts("node-a", unhealthy: [.dispatcher: "stuck"], peer: "node-b"), at: Self.a)
        let result = PairCheck.verdict([weak, low])
        #expect(result.state == .critical)
        let phrases = result.summary.split(separator: "; ").map(String.init)
        #expect(phrases.first == "the primary is not healthy and no standby could take over")
        #expect(phrases[1].hasPrefix("node-a primary below the failover threshold"))
        #expect(phrases[2].hasPrefix("node-b standby cannot take over"))
    }
}
