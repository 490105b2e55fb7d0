import BrambleCore
import Testing

@Suite struct EpochAuditTests {
    func promotion(_ node: String, _ epoch: UInt64) -> PairEvent {
        PairEvent(atUnixMs: 0, node: node, kind: .promote, epoch: epoch, detail: "")
    }

    @Test func failoversBackAndForthAtRisingEpochsPass() {
        let audit = EpochAudit(events: [promotion("node-a", 1), promotion("node-b", 2), promotion("node-a", 3)])
        #expect(audit.passed)
        #expect(audit.promotions == 3)
    }

    @Test func twoNodesPromotedAtOneEpochIsASplitBrain() {
        let audit = EpochAudit(events: [promotion("node-a", 4), promotion("node-b", 4)])
        #expect(!audit.passed)
        #expect(audit.sharedEpochs == [4: ["node-a", "node-b"]])
    }

    @Test func anEpochGoingDownFails() {
        let audit = EpochAudit(events: [promotion("node-a", 5), promotion("node-b", 3)])
        #expect(!audit.passed)
        #expect(audit.epochsOutOfOrder == 1 && audit.sharedEpochs.isEmpty)
    }
}
