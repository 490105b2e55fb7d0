import BrambleCore
import Testing

@Suite struct EpochAuditTests {
    typealias P = EpochAudit.Promotion

    @Test func failoversBackAndForthAtRisingEpochsPass() {
        let audit = EpochAudit(promotions: [P(node: "node-a", epoch: 1), P(node: "node-b", epoch: 2), P(node: "node-a", epoch: 3)])
        #expect(audit.passed)
        #expect(audit.promotions == 3)
    }

    @Test func twoNodesPromotedAtOneEpochIsASplitBrain() {
        let audit = EpochAudit(promotions: [P(node: "node-a", epoch: 4), P(node: "node-b", epoch: 4)])
        #expect(!audit.passed)
        #expect(audit.sharedEpochs == [4: ["node-a", "node-b"]])
    }

    @Test func anEpochGoingDownFails() {
        let audit = EpochAudit(promotions: [P(node: "node-a", epoch: 5), P(node: "node-b", epoch: 3)])
        #expect(!audit.passed)
        #expect(audit.epochsOutOfOrder == 1 && audit.sharedEpochs.isEmpty)
    }
}
