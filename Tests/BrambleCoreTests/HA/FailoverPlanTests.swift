import Testing

@testable import BrambleCore

@Suite struct FailoverPlanTests {
    func situation(role: NodeRole = .primary, peer: HAStateMachine.PeerHeartbeat? = .init(node: "b", score: 12, writtenAtMs: 0),
                   age: Int64? = 200) -> FailoverPlan.Situation {
        .init(pair: "p", node: "a", role: role, peer: peer, peerAgeMs: age, leaseMs: 1_000, promotionThreshold: 3)
    }

    @Test func aPrimaryHandsOverToARunningStandbyThatWouldTakeOver() {
        #expect(FailoverPlan.check(situation(), target: nil) == .success("b"))
        #expect(FailoverPlan.check(situation(), target: "b") == .success("b"))
    }

    @Test func eachRefusalSaysWhy() {
        #expect(FailoverPlan.check(situation(role: .standby), target: nil) == .failure(.notPrimary(role: .standby)))
        #expect(FailoverPlan.check(situation(role: .primaryDegraded), target: nil) == .failure(.databaseUnreachable))
        #expect(FailoverPlan.check(situation(), target: "a") == .failure(.targetIsSelf(node: "a")))
        #expect(FailoverPlan.check(situation(peer: nil, age: nil), target: nil) == .failure(.noStandby(pair: "p")))
        #expect(FailoverPlan.check(situation(), target: "c") == .failure(.unknownStandby(target: "c", pair: "p", standby: "b")))
        #expect(FailoverPlan.check(situation(age: 5_000), target: nil) == .failure(.standbyNotRunning(standby: "b", heartbeatAgeMs: 5_000)))
        let weak = situation(peer: .init(node: "b", score: 1, writtenAtMs: 0))
        let refusal = FailoverPlan.check(weak, target: nil)
        #expect(refusal == .failure(.standbyBelowPromotion(standby: "b", score: 1, threshold: 3)))
        if case .failure(let r) = refusal { #expect(r.message.contains("below the promotion threshold 3")) }
    }
}
