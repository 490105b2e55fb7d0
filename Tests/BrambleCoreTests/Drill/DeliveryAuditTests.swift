import BrambleCore
import XCTest

final class DeliveryAuditTests: XCTestCase {
    func testCountsLostDuplicatesAndIgnoresItemsFromBeforeTheStream() {
        let shown: [DeliveryAudit.Shown] = [
            .init(pushID: "old", pin: "A", atMs: 0),
            .init(pushID: "1", pin: "A", atMs: 100),
            .init(pushID: "2", pin: "B", atMs: 110),
            .init(pushID: "2", pin: "B", atMs: 500),  // shown twice
            .init(pushID: "3", pin: "A", atMs: 120),
        ]
        let audit = DeliveryAudit(accepted: ["1", "2", "3", "4"], shown: shown, intervalMs: 10)
        XCTAssertEqual(audit.accepted, 4)
        XCTAssertEqual(audit.shown, 3)
        XCTAssertEqual(audit.lost, 1)
        XCTAssertEqual(audit.duplicates, 1)
        XCTAssertEqual(audit.outageMs, 370)  // 120 → 500, less the 10 ms interval; "old" at 0 does not count
        XCTAssertFalse(audit.passed)
    }

    func testASteadyStreamHasNoOutageAndPasses() {
        let shown = (0..<50).map { DeliveryAudit.Shown(pushID: "\($0)", pin: $0 % 2 == 0 ? "A" : "B", atMs: Double($0) * 20) }
        let audit = DeliveryAudit(accepted: Set((0..<50).map { "\($0)" }), shown: shown.shuffled(), intervalMs: 20)
        XCTAssertEqual(audit, DeliveryAudit(accepted: Set((0..<50).map { "\($0)" }), shown: shown, intervalMs: 20))
        XCTAssertEqual(audit.outageMs, 0)
        XCTAssertEqual(audit.lost, 0)
        XCTAssertTrue(audit.passed)
        XCTAssertFalse(DeliveryAudit(accepted: [], shown: [], intervalMs: 10).passed, "a stream that accepted nothing proves nothing")
    }
}
