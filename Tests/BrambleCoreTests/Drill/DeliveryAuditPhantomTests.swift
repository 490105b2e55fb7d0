import BrambleCore
import Testing

@Suite struct DeliveryAuditPhantomTests {
    @Test func aPushAnsweredNotAcceptedButShownAnywayIsAPhantomAndFailsTheAudit() {
        let shown = [DeliveryAudit.Shown(pushID: "1", pin: "A", atMs: 0, subject: "stream 1"),
                     DeliveryAudit.Shown(pushID: "x", pin: "A", atMs: 5, subject: "stream 2"),
                     DeliveryAudit.Shown(pushID: "x", pin: "B", atMs: 6, subject: "stream 2")]
        let audit = DeliveryAudit(accepted: ["1"], shown: shown, intervalMs: 10, notAccepted: ["stream 2", "stream 3"])
        #expect(audit.phantoms == 1, "one refused push, shown on two devices")
        #expect(audit.lost == 0 && audit.duplicates == 0 && !audit.passed)
        #expect(DeliveryAudit(accepted: ["1"], shown: Array(shown.prefix(1)), intervalMs: 10, notAccepted: ["stream 3"]).passed)
    }
}
