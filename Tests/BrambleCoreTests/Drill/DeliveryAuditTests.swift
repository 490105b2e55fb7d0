import BrambleCore
import Testing

@Suite struct DeliveryAuditTests {
    @Test func countsLostAndDuplicateItemsAndIgnoresItemsFromBeforeTheStream() {
        let shown: [DeliveryAudit.Shown] = [
            .init(pushID: "old", pin: "A", atMs: 0),
            .init(pushID: "1", pin: "A", atMs: 100),
            .init(pushID: "2", pin: "B", atMs: 110),
            .init(pushID: "2", pin: "B", atMs: 500),  // shown twice
            .init(pushID: "3", pin: "A", atMs: 120),
        ]
        let audit = DeliveryAudit(accepted: ["1", "2", "3", "4"], shown: shown, intervalMs: 10)
        #expect(audit.accepted == 4)
        #expect(audit.shown == 3)
        #expect(audit.lost == 1)
        #expect(audit.duplicates == 1)
        #expect(audit.outageMs == 370)  // 120 → 500, less the 10 ms interval; "old" at 0 does not count
        #expect(!audit.passed)
    }

    @Test func aSteadyStreamHasNoOutageAndPasses() {
        let shown = (0..<50).map { DeliveryAudit.Shown(pushID: "\($0)", pin: $0 % 2 == 0 ? "A" : "B", atMs: Double($0) * 20) }
        let audit = DeliveryAudit(accepted: Set((0..<50).map { "\($0)" }), shown: shown.shuffled(), intervalMs: 20)
        #expect(audit == DeliveryAudit(accepted: Set((0..<50).map { "\($0)" }), shown: shown, intervalMs: 20))
        #expect(audit.outageMs == 0)
        #expect(audit.lost == 0)
        #expect(audit.passed)
        #expect(!DeliveryAudit(accepted: [], shown: [], intervalMs: 10).passed, "a stream that accepted nothing proves nothing")
    }
}
