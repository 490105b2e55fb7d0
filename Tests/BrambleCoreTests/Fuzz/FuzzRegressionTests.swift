@testable import BrambleCore
import Foundation
import NIOCore
import Testing

/// Inputs the fuzz targets (`make fuzz`) found a crash with, after the fix; each input is
/// also in the target's committed corpus (Tests/FuzzCorpus/TARGET/finding-*).
@Suite struct FuzzRegressionTests {
    /// `settings`, finding-shown-state-overflow.json: a device's state file with the
    /// high-water mark one below UInt64.max; recording UInt64.max moved the mark to the top
    /// and the next step of `insert` overflowed: a trap, on that item and again on its resend.
    @Test func shownSetReachesTheTopOfTheRange() throws {
        var shown = try JSONDecoder().decode(ShownSet.self, from: Data(#"{"high_water":18446744073709551614,"above":[]}"#.utf8))
        let inserted = shown.insert(.max)
        #expect(inserted)
        #expect(shown.highWater == .max && shown.above.isEmpty)
        let again = shown.insert(.max)
        #expect(!again)
        #expect(shown.contains(0) && shown.contains(.max))
    }

    /// The same top reached from below, the last number recorded before the gap closes.
    @Test func shownSetClosesAGapAtTheTop() throws {
        var shown = try JSONDecoder().decode(ShownSet.self, from: Data(#"{"high_water":18446744073709551613,"above":[18446744073709551615]}"#.utf8))
        let inserted = shown.insert(.max - 1)
        #expect(inserted)
        #expect(shown.highWater == .max && shown.above.isEmpty)
    }

    /// `mime`, finding-nul-before-combining-mark: an address in a FETCH's ENVELOPE with NUL
    /// bytes and then U+0308. Foundation's `replacingOccurrences(of: "\0", …)` leaves a NUL
    /// that a combining mark follows, so the NUL reached the mail item, whose insert
    /// PostgreSQL refuses (text holds no NUL): had the IMAP server passed such an address
    /// on, the mailbox's check would fail on that mail at every try and its watermark stall.
    @Test func aNULThatACombiningMarkFollowsNeverReachesTheMailItem() throws {
        let nasty = "b\u{0}\u{0}\u{308}\u{0}c"
        let envelope = MailEnvelope(date: nasty, subject: nasty, from: [nasty], to: [nasty, "x@y"], cc: [nasty], messageID: "")
        let plain = MailPart(section: "1", type: "text/plain", charset: "utf-8", encoding: nil, size: 9, name: nasty, isAttachment: false)
        let file = MailPart(section: "2", type: "application/pdf", charset: nil, encoding: nil, size: 9, name: nasty, isAttachment: true)
        let composed = MailComposer.compose(envelope: envelope, parts: [plain, file], text: plain, rawText: Array(nasty.utf8),
                                            uidValidity: 3, uid: 9, chunkBytes: 64, maxTextBytes: 200)
        let item = composed.item
        for field in [item.from, item.subject, item.date, item.body, composed.text] + item.to + item.cc + item.attachments.map(\.name) {
            #expect(!field.utf8.contains(0), "\(Array(field.utf8))")
        }
        #expect(item.subject == "b\u{308}c" && item.to == ["b\u{308}c", "x@y"])

        // The input itself, as the Messaging Agent reads it: the envelope from the FETCH.
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("FuzzCorpus/mime/finding-nul-before-combining-mark")
        var buffer = ByteBuffer(bytes: try Data(contentsOf: url))
        guard case .untagged(.fetch(_, let attributes))? = try IMAPResponseDecoder.decode(from: &buffer),
              let read = attributes["ENVELOPE"].flatMap(MailEnvelope.init) else {
            Issue.record("the finding no longer reads as a FETCH with an ENVELOPE"); return
        }
        let fields = { (e: MailEnvelope) in e.from + e.to + e.cc + [e.subject, e.date] }
        #expect(fields(read).contains { $0.utf8.contains(0) }, "the input should carry the NUL this test is about")
        let item2 = MailComposer.compose(envelope: read, parts: [], text: nil, rawText: nil, uidValidity: 3, uid: 9, chunkBytes: 64, maxTextBytes: 200).item
        #expect(!(item2.to + item2.cc + [item2.from, item2.subject, item2.date]).contains { $0.utf8.contains(0) })
    }
}
