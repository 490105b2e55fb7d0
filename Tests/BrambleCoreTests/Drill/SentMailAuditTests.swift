import BrambleCore
import Testing

@Suite struct SentMailAuditTests {
    let a = "demo1@example.test", b = "demo2@example.test"
    func acked(_ ref: Int, from: String, to: String) -> SentMailAudit.Acked {
        .init(messageID: "<bramble.\(from == a ? "2A00F00D" : "2A00F00E").\(ref)@example.test>", sender: from, recipient: to)
    }

    @Test func aMailInTheRecipientsInboxAndTheSendersSentIsDelivered() {
        let one = acked(1, from: a, to: b), two = acked(2, from: b, to: a)
        let audit = SentMailAudit(acked: [one, two], inbox: [b: [one.messageID: 1], a: [two.messageID: 1]],
                                  sent: [a: [one.messageID: 1], b: [two.messageID: 1]])
        #expect(audit.acked == 2 && audit.delivered == 2 && audit.lost == 0 && audit.duplicates == 0 && audit.passed)
    }

    @Test func aMailMissingFromEitherFolderIsLost() {
        let one = acked(1, from: a, to: b), two = acked(2, from: b, to: a)
        // one only in Sent (never delivered), two only in the INBOX (no copy filed).
        let audit = SentMailAudit(acked: [one, two], inbox: [a: [two.messageID: 1]], sent: [a: [one.messageID: 1]])
        #expect(audit.delivered == 0 && audit.lost == 2 && audit.missing == [one.messageID, two.messageID].sorted() && !audit.passed)
        // In the wrong user's folders counts for nothing.
        let misfiled = SentMailAudit(acked: [one], inbox: [a: [one.messageID: 1]], sent: [b: [one.messageID: 1]])
        #expect(misfiled.lost == 1)
    }

    @Test func extraCopiesInEitherFolderAreDuplicates() {
        let one = acked(1, from: a, to: b)
        let audit = SentMailAudit(acked: [one, one], inbox: [b: [one.messageID: 2]], sent: [a: [one.messageID: 3]])
        #expect(audit.acked == 1, "a Message-ID counts once")
        #expect(audit.delivered == 1 && audit.lost == 0 && audit.duplicates == 3 && !audit.passed)
    }

    @Test func nothingAcknowledgedProvesNothing() {
        let audit = SentMailAudit(acked: [], inbox: [:], sent: [:])
        #expect(audit.acked == 0 && audit.lost == 0 && !audit.passed)
    }
}
