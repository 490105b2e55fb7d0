import NIOCore
import Testing

@testable import BrambleCore

/// The IMAP response decoder on what Dovecot sends (2.3, as seen on this machine), cut at
/// every byte, and on hostile input.
@Suite struct IMAPResponseDecoderTests {
    func decodeAll(_ text: String, limits: IMAPResponseDecoder.Limits = .init()) throws -> [IMAPResponse] {
        var buffer = ByteBuffer(string: text)
        var out: [IMAPResponse] = []
        while let r = try IMAPResponseDecoder.decode(from: &buffer, limits: limits) { out.append(r) }
        #expect(buffer.readableBytes == 0, "everything consumed")
        return out
    }

    let select = """
        * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r
        * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted.\r
        * 3 EXISTS\r
        * 0 RECENT\r
        * OK [UIDVALIDITY 1733400000] UIDs valid\r
        * OK [UIDNEXT 4] Predicted next UID\r
        * OK [HIGHESTMODSEQ 7] Highest\r
        A2 OK [READ-WRITE] Select completed (0.001 + 0.000 secs).\r

        """

    @Test func aSelectGivesItsFlagsCountsAndWatermarks() throws {
        let r = try decodeAll(select)
        #expect(r.count == 8)
        #expect(r[0] == .untagged(.flags(["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"])))
        #expect(r[2] == .untagged(.exists(3)))
        guard case .untagged(.status(.ok, let code?, _)) = r[4] else { Issue.record("\(r[4])"); return }
        #expect(code.name == "UIDVALIDITY" && code.number == 1_733_400_000)
        guard case .untagged(.status(.ok, let next?, let text)) = r[5] else { Issue.record("\(r[5])"); return }
        #expect(next.name == "UIDNEXT" && next.number == 4 && text == "Predicted next UID")
        guard case .tagged("A2", .ok, let rw?, _) = r[7] else { Issue.record("\(r[7])"); return }
        #expect(rw.name == "READ-WRITE")
    }

    @Test func aFetchWithALiteralAnEnvelopeAndABodyStructureKeepsTheirShape() throws {
        let header = "Message-ID: <m1@example.test>\r\n\r\n"
        let text = """
            * 1 FETCH (UID 17 FLAGS (\\Seen) RFC822.SIZE 2048 MODSEQ (5) BODY[HEADER.FIELDS (MESSAGE-ID)] {\(header.utf8.count)}\r
            \(header) ENVELOPE ("Thu, 5 Dec 2026 10:00:00 +0000" "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=" (("Alice" NIL "alice" "example.test")) NIL NIL (("Bob" NIL "bob" "example.test")) NIL NIL NIL "<m1@example.test>") BODYSTRUCTURE (("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 120 4 NIL NIL NIL NIL)("application" "pdf" ("name" "a.pdf") NIL NIL "base64" 9000 NIL ("attachment" ("filename" "a.pdf")) NIL NIL) "mixed" ("boundary" "b1") NIL NIL NIL))\r
            A3 OK Fetch completed.\r

            """
        let r = try decodeAll(text)
        guard case .untagged(.fetch(1, let a)) = r[0] else { Issue.record("\(r[0])"); return }
        #expect(a["UID"] == .number(17))
        #expect(a["FLAGS"] == .list([.atom("\\Seen")]))
        #expect(a["RFC822.SIZE"]?.number == 2048)
        #expect(a["BODY[HEADER.FIELDS (MESSAGE-ID)]"]?.bytes == Array(header.utf8))
        let envelope = try #require(a["ENVELOPE"]?.list)
        #expect(envelope.count == 10 && envelope[9].text == "<m1@example.test>" && envelope[3] == .nil)
        #expect(envelope[2].list?.first?.list?[2].text == "alice")
        let structure = try #require(a["BODYSTRUCTURE"]?.list)
        #expect(structure[0].list?[1].text == "plain" && structure[2].text == "mixed")
        #expect(r[1] == .tagged(tag: "A3", status: .ok, code: nil, text: "Fetch completed."))
    }

    @Test func statusSearchVanishedCapabilityAndContinuationsAreRead() throws {
        let r = try decodeAll("""
            * OK [CAPABILITY IMAP4rev1 SASL-IR IDLE QRESYNC] Dovecot ready.\r
            * STATUS INBOX (MESSAGES 3 UIDNEXT 4 UIDVALIDITY 9 HIGHESTMODSEQ 12)\r
            * SEARCH 2 5 9\r
            * VANISHED (EARLIER) 1:3,7\r
            * ENABLED QRESYNC\r
            * LIST (\\HasNoChildren) "." Sent\r
            + idling\r

            """)
        guard case .untagged(.status(.ok, let code?, _)) = r[0] else { Issue.record("\(r[0])"); return }
        #expect(code.values.compactMap(\.text).contains("QRESYNC"))
        #expect(r[1] == .untagged(.mailboxStatus(mailbox: "INBOX", items: ["MESSAGES": 3, "UIDNEXT": 4, "UIDVALIDITY": 9, "HIGHESTMODSEQ": 12])))
        #expect(r[2] == .untagged(.search([2, 5, 9])))
        #expect(r[3] == .untagged(.vanished(earlier: true, uids: "1:3,7")))
        #expect(r[4] == .untagged(.enabled(["QRESYNC"])))
        #expect(r[5] == .untagged(.list(attributes: ["\\HasNoChildren"], delimiter: ".", mailbox: "Sent")))
        #expect(r[6] == .continuation("idling"))
    }

    /// As Dovecot 2.3.19 answers with QRESYNC enabled (measured by IMAPWriteTests): a
    /// SELECT's changes, a MOVE's COPYUID and VANISHED, a LIST with a modified UTF-7 name.
    @Test func qresyncSelectMoveAndListAreReadAsDovecotSendsThem() throws {
        let r = try decodeAll("""
            * OK [HIGHESTMODSEQ 6] Highest\r
            * VANISHED (EARLIER) 2,5:7\r
            * 1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ (4))\r
            B7 OK [READ-WRITE] Select completed (0.001 + 0.000 secs).\r
            * OK [COPYUID 1796550268 1 2] Moved UIDs.\r
            * VANISHED 1\r
            B8 OK [HIGHESTMODSEQ 7] Move completed (0.002 + 0.000 + 0.001 secs).\r
            * LIST (\\HasNoChildren) "." Entw&APw-rfe\r
            * LIST (\\HasNoChildren \\Trash) "." Trash\r

            """)
        #expect(r[1] == .untagged(.vanished(earlier: true, uids: "2,5:7")))
        #expect(IMAPUIDSet.expand("2,5:7", maxCount: 10) == [2, 5, 6, 7])
        #expect(r[2] == .untagged(.fetch(sequence: 1, attributes: [
            IMAPFetchAttribute(name: "UID", value: .number(1)), IMAPFetchAttribute(name: "FLAGS", value: .list([.atom("\\Seen")])),
            IMAPFetchAttribute(name: "MODSEQ", value: .list([.number(4)])),
        ])))
        #expect(r[4] == .untagged(.status(.ok, code: IMAPResponseCode(name: "COPYUID", values: [.number(1796550268), .number(1), .number(2)]), text: "Moved UIDs.")))
        #expect(r[5] == .untagged(.vanished(earlier: false, uids: "1")))
        guard case .tagged("B8", .ok, let code?, _) = r[6] else { Issue.record("\(r[6])"); return }
        #expect(code.name == "HIGHESTMODSEQ" && code.number == 7)
        #expect(r[7] == .untagged(.list(attributes: ["\\HasNoChildren"], delimiter: ".", mailbox: "Entw&APw-rfe")))
        #expect(MailboxName.decode("Entw&APw-rfe") == "Entwürfe")
        // A COPYUID of several: sets as atoms.
        let several = try decodeAll("* OK [COPYUID 9 1:3,8 10:13] Moved UIDs.\r\n")
        guard case .untagged(.status(.ok, let copy?, _)) = several[0] else { Issue.record("\(several)"); return }
        #expect(copy.values == [.number(9), .atom("1:3,8"), .atom("10:13")])
    }

    @Test func aResponseCutAtEveryByteIsReadOnlyWhenWhole() throws {
        let text = "* 1 FETCH (UID 3 BODY[] {11}\r\nhello\r\nbye!)\r\nA1 OK done\r\n"
        let bytes = Array(text.utf8)
        for cut in 0..<bytes.count {
            var buffer = ByteBuffer(bytes: bytes[..<cut])
            let first = try IMAPResponseDecoder.decode(from: &buffer)
            let firstEnd = text.utf8.count - "A1 OK done\r\n".utf8.count
            if cut < firstEnd {
                #expect(first == nil, "cut at \(cut)")
                #expect(buffer.readableBytes == cut, "nothing consumed")
            } else {
                guard case .untagged(.fetch(1, let a))? = first else { Issue.record("cut \(cut): \(String(describing: first))"); continue }
                #expect(a["BODY[]"]?.bytes == Array("hello\r\nbye!".utf8))
            }
        }
    }

    @Test func hostileInputIsRefusedWithATypedErrorBeforeItIsBuffered() throws {
        var limits = IMAPResponseDecoder.Limits()
        limits.maxLiteral = 1_000
        limits.maxLine = 100
        limits.maxDepth = 4
        var literal = ByteBuffer(string: "* 1 FETCH (BODY[] {5000}\r\n")
        #expect(throws: IMAPError(.tooLarge(what: "literal", limit: 1_000))) { try IMAPResponseDecoder.decode(from: &literal, limits: limits) }
        var line = ByteBuffer(string: "* OK " + String(repeating: "x", count: 200))
        #expect(throws: IMAPError.self) { try IMAPResponseDecoder.decode(from: &line, limits: limits) }
        var deep = ByteBuffer(string: "* X ((((((a))))))\r\n")
        #expect(throws: IMAPError(.tooDeep(limit: 4))) { try IMAPResponseDecoder.decode(from: &deep, limits: limits) }
        var huge = ByteBuffer(string: "* 1 FETCH (BODY[] {99999999999999999999999}\r\n")
        #expect(throws: IMAPError.self) { try IMAPResponseDecoder.decode(from: &huge) }
        var noTag = ByteBuffer(string: "A1 MAYBE so\r\n")
        #expect(throws: IMAPError.self) { try IMAPResponseDecoder.decode(from: &noTag) }
    }

    @Test func randomBytesNeverCrashTheDecoderAndOnlyThrowIMAPError() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("* ()[]{}\"\\\r\nA1OKFETCHUID0123456789~<>.".utf8)
        for _ in 0..<20_000 {
            let n = Int.random(in: 0..<80, using: &generator)
            var buffer = ByteBuffer(bytes: (0..<n).map { _ in Bool.random() ? alphabet.randomElement()! : UInt8.random(in: 0...255) })
            do {
                while let _ = try IMAPResponseDecoder.decode(from: &buffer) {}
            } catch {
                // Any thrown error is an IMAPError by the decoder's type.
            }
        }
    }
}
