import Foundation
import Testing

@testable import BrambleCore

@Suite struct MailPayloadTests {
    static let mail = MailItem(
        messageID: "<a@b>", from: "René <r@x.test>", to: ["a@x.test", "b@x.test"], cc: ["c@x.test"], subject: "Grüße",
        date: "Sat, 5 Dec 2026 20:00:00 +0000", body: "Hello\nworld", moreAvailable: true,
        attachments: [.init(name: "a.pdf", type: "application/pdf", size: 1234)])

    @Test func payloadsRoundTrip() throws {
        #expect(try MailItem.decode(Self.mail.encoded()) == Self.mail)
        let chunk = MoreChunk(messageID: "<a@b>", offset: 2048, body: "more text", moreAvailable: false)
        #expect(try MoreChunk.decode(chunk.encoded()) == chunk)
        #expect(try DeviceRequest.decode(DeviceRequest.more(messageID: "<a@b>").encoded()) == .more(messageID: "<a@b>"))
    }

    /// Every kind of device request and the outcome of a send round-trip; a send at its
    /// bounds (200 longest addresses, a 64 KB text) stays below a frame's 256 KB.
    @Test func sendRequestsAndOutcomesRoundTrip() throws {
        let kinds: [DeviceRequest] = [
            .send(to: ["demo2@example.test", "x@y.test"], cc: ["c@y.test"], subject: "Grüße 👋", body: "Hi\r\n.\r\nthere"),
            .send(to: ["a@b"], cc: [], subject: "", body: ""),
            .reply(messageID: "<a@b>", body: "yes", all: false),
            .reply(messageID: "<a@b>", body: "", all: true),
            .forward(messageID: "<a@b>", to: ["d@e"], cc: ["f@g"], body: "fyi"),
        ]
        for k in kinds { #expect(try DeviceRequest.decode(k.encoded()) == k) }
        let address = String(repeating: "a", count: 64) + "@" + String(repeating: "d", count: DeviceRequest.maxAddressLength - 65)
        let big = DeviceRequest.send(to: Array(repeating: address, count: MailItem.maxAddresses), cc: Array(repeating: address, count: MailItem.maxAddresses),
                                     subject: String(repeating: "s", count: MailItem.maxSubjectLength), body: String(repeating: "b", count: DeviceRequest.maxBodyLength))
        #expect(big.encoded().count < 256 * 1024 - 1024)
        #expect(try DeviceRequest.decode(big.encoded()) == big)
        for outcome in [SentOutcome(requestRef: 1 << 50, messageID: "<bramble.2A00F00D.7@example.test>", state: .sent),
                        SentOutcome(requestRef: 8, messageID: "<bramble.2A00F00D.8@example.test>", state: .failed, reason: "unknown recipient <nobody@example.test>")] {
            #expect(try SentOutcome.decode(outcome.encoded()) == outcome)
        }
        #expect(OutgoingMessageID.make(pin: PIN(0x2A00F00D), ref: 123, domain: "example.test") == "<bramble.2A00F00D.123@example.test>")
    }

    /// What the node must never record: a send without recipients, an address that could
    /// add an SMTP command or is no address, a reply without its mail, an unknown state.
    @Test func malformedSendRequestsAreTypedErrors() {
        var noKind = PayloadWriter()
        noKind.string(3, "a@b", max: 100)
        let bad: [[UInt8]] = [
            DeviceRequest.send(to: [], cc: [], subject: "s", body: "b").encoded(),
            DeviceRequest.send(to: ["a@b\r\nDATA"], cc: [], subject: "", body: "").encoded(),
            DeviceRequest.send(to: ["a@b"], cc: ["<c@d>"], subject: "", body: "").encoded(),
            DeviceRequest.send(to: ["no-at-sign"], cc: [], subject: "", body: "").encoded(),
            DeviceRequest.send(to: ["a@b@c"], cc: [], subject: "", body: "").encoded(),
            DeviceRequest.send(to: ["a b@c"], cc: [], subject: "", body: "").encoded(),
            DeviceRequest.forward(messageID: "<a@b>", to: [], cc: [], body: "").encoded(),
            DeviceRequest.reply(messageID: "", body: "x", all: false).encoded(),
            DeviceRequest.reply(messageID: "<a\u{0}@b>", body: "x", all: false).encoded(),
            noKind.bytes,
        ]
        for bytes in bad { #expect(throws: PayloadError.self) { try DeviceRequest.decode(bytes) } }
        var w = PayloadWriter()
        w.uint(1, 1)
        w.string(2, "<a@b>", max: 100)
        w.string(3, "lost", max: 100)
        #expect(throws: PayloadError.self) { try SentOutcome.decode(w.bytes) }
    }

    /// Reconciliation: the four mailbox changes and `folders` round-trip; `state` and
    /// `folders` items too; a file without a folder (or with a control character in it)
    /// and a state without a Message-ID are refused.
    @Test func reconciliationRequestsAndItemsRoundTripAndAreBounded() throws {
        let id = "<CAF=4x+kq@mail.example.com>"
        for request in [DeviceRequest.read(messageID: id), .unread(messageID: id), .delete(messageID: id),
                        .file(messageID: id, folder: "Projekte/Größe"), .folders] {
            #expect(try DeviceRequest.decode(request.encoded()) == request)
            #expect(!request.sendsMail)
            #expect(request.reconciles == (request.kind != .folders))
        }
        for state in [MessageState(messageID: id, read: true, deleted: false, folder: "Archiv"),
                      MessageState(messageID: id, read: false, deleted: true, folder: "")] {
            #expect(try MessageState.decode(state.encoded()) == state)
        }
        let list = FolderList(folders: [.init(name: "INBOX", specialUse: ""), .init(name: "Sent", specialUse: "\\Sent"), .init(name: "Entwürfe", specialUse: "")])
        #expect(try FolderList.decode(list.encoded()) == list)
        let many = FolderList(folders: (0..<2000).map { .init(name: "F\($0)", specialUse: "") })
        #expect(try FolderList.decode(many.encoded()).folders.count == FolderList.maxFolders, "cut to the bound, and still decodes")

        var noFolder = PayloadWriter()
        noFolder.uint(1, DeviceRequest.Kind.file.rawValue)
        noFolder.string(2, id, max: 100)
        #expect(throws: PayloadError.self) { try DeviceRequest.decode(noFolder.bytes) }
        #expect(throws: PayloadError.self) { try DeviceRequest.decode(DeviceRequest.file(messageID: id, folder: "a\u{0}b").encoded()) }
        #expect(throws: PayloadError.self) { try DeviceRequest.decode(DeviceRequest.file(messageID: id, folder: "").encoded()) }
        #expect(throws: PayloadError.self) { try DeviceRequest.decode(DeviceRequest.read(messageID: "").encoded()) }
        #expect(throws: PayloadError.self) { try MessageState.decode([]) }
    }

    @Test func unknownFieldsAreSkippedSoPayloadsCanGrow() throws {
        var w = PayloadWriter()
        w.string(1, "<a@b>", max: 100)
        w.string(200, "a field from a newer server", max: 100)
        w.uint(2, 7)
        let chunk = try MoreChunk.decode(w.bytes)
        #expect(chunk.messageID == "<a@b>" && chunk.offset == 7 && chunk.body == "")
    }

    @Test func malformedPayloadsAreTypedErrors() {
        // A field whose length runs past the end.
        #expect(throws: PayloadError.self) { try MailItem.decode([1, 0, 0, 0, 9, 0x41]) }
        // A header cut short.
        #expect(throws: PayloadError.self) { try MailItem.decode([1, 0, 0]) }
        // A required field missing, a field over its bound, invalid UTF-8, a wrong width.
        #expect(throws: PayloadError.self) { try MailItem.decode([]) }
        var long = PayloadWriter()
        long.bytes(1, [UInt8](repeating: 0x41, count: MailItem.maxMessageIDLength + 1))
        #expect(throws: PayloadError.self) { try MailItem.decode(long.bytes) }
        var bad = PayloadWriter()
        bad.bytes(1, [0xFF, 0xFE])
        #expect(throws: PayloadError.self) { try MailItem.decode(bad.bytes) }
        var narrow = PayloadWriter()
        narrow.string(1, "<a@b>", max: 100)
        narrow.bytes(2, [1, 2, 3])
        #expect(throws: PayloadError.self) { try MoreChunk.decode(narrow.bytes) }
        // Too many repeats of a list.
        var crowd = PayloadWriter()
        crowd.string(1, "<a@b>", max: 100)
        for _ in 0...MailItem.maxAddresses { crowd.string(3, "a@x", max: 100) }
        #expect(throws: PayloadError.self) { try MailItem.decode(crowd.bytes) }
        // A request of a kind this server does not know, and one with an empty Message-ID.
        var unknown = PayloadWriter()
        unknown.uint(1, 99)
        #expect(throws: PayloadError.self) { try DeviceRequest.decode(unknown.bytes) }
        #expect(throws: PayloadError.self) { try DeviceRequest.decode(DeviceRequest.more(messageID: "").encoded()) }
        for bad in ["<a\u{0}b@c>", "<a\u{0}\u{308}@c>", "<a b@c>", "<a\u{7F}@c>"] {
            #expect(throws: PayloadError.self) { try DeviceRequest.decode(DeviceRequest.more(messageID: bad).encoded()) }
        }
    }

    @Test func anItemStaysFarBelowAFrameHoweverManyRecipientsAndAttachments() throws {
        var item = Self.mail
        item.to = (0..<MailItem.maxAddresses).map { "\(String(repeating: "r", count: 900))\($0)@x.test" }
        item.cc = item.to
        item.attachments = (0..<MailItem.maxAttachments).map { .init(name: String(repeating: "n", count: 1000), type: "a/b", size: UInt64($0)) }
        item.body = String(repeating: "b", count: MailItem.maxChunkLength)
        let bytes = item.encoded()
        #expect(bytes.count < 64 * 1024, "\(bytes.count) bytes")
        let decoded = try MailItem.decode(bytes)
        #expect(decoded.body == item.body && decoded.to.count > 10 && decoded.to == Array(item.to.prefix(decoded.to.count)))
    }

    @Test func theWriterCutsStringsToTheReadersBoundOnACharacterBoundary() throws {
        var item = Self.mail
        item.subject = String(repeating: "é", count: MailItem.maxSubjectLength)  // 2 bytes each
        let decoded = try MailItem.decode(item.encoded())
        #expect(decoded.subject.utf8.count == MailItem.maxSubjectLength && decoded.subject.allSatisfy { $0 == "é" })
    }
}

@Suite struct MailboxWatchTests {
    static let activation = Date(timeIntervalSince1970: 1_000_000)

    @Test func plansFollowTheWatermark() {
        let since = Self.activation
        #expect(MailboxPlan.plan(storedValidity: 7, lastUID: 10, uidValidity: 7, uidNext: 11, activeSince: since, checkedAt: nil, now: since) == .upToDate)
        #expect(MailboxPlan.plan(storedValidity: 7, lastUID: 10, uidValidity: 7, uidNext: 14, activeSince: since, checkedAt: nil, now: since) == .fetch(from: 11))
        // First watch: what arrived since the device was activated.
        #expect(MailboxPlan.plan(storedValidity: nil, lastUID: 0, uidValidity: 7, uidNext: 5, activeSince: since, checkedAt: nil, now: since)
                == .resync(uidValidity: 7, lastUID: 4, since: since))
        // A new UIDVALIDITY: what arrived since the last check, less the margin.
        let checked = since.addingTimeInterval(3600)
        #expect(MailboxPlan.plan(storedValidity: 7, lastUID: 10, uidValidity: 9, uidNext: 3, activeSince: since, checkedAt: checked, now: checked)
                == .resync(uidValidity: 9, lastUID: 2, since: checked.addingTimeInterval(-MailboxPlan.resyncMarginSeconds)))
        // Never further back than an hour (a mailbox first watched long after activation).
        let later = since.addingTimeInterval(86_400 * 90)
        #expect(MailboxPlan.plan(storedValidity: nil, lastUID: 0, uidValidity: 7, uidNext: 5, activeSince: since, checkedAt: nil, now: later)
                == .resync(uidValidity: 7, lastUID: 4, since: later.addingTimeInterval(-MailboxPlan.maxResyncAgeSeconds)))
        // An empty mailbox (UIDNEXT 1) has nothing to fetch.
        #expect(MailboxPlan.plan(storedValidity: 7, lastUID: 0, uidValidity: 7, uidNext: 1, activeSince: since, checkedAt: nil, now: since) == .upToDate)
    }

    @Test func chunksContinueOneAnotherWithoutCuttingACharacter() {
        let text = "aé" + String(repeating: "x", count: 10)  // é is 2 bytes: 13 bytes in all
        let first = MailText.chunk(text, offset: 0, maxBytes: 2)
        #expect(first.body == "a" && first.end == 1 && first.moreAvailable, "é does not fit in 2 bytes after a")
        let second = MailText.chunk(text, offset: first.end, maxBytes: 5)
        #expect(second.body == "éxxx" && second.end == 6)
        let last = MailText.chunk(text, offset: second.end, maxBytes: 100)
        #expect(last.body == String(repeating: "x", count: 7) && last.end == 13 && !last.moreAvailable)
        #expect(MailText.chunk(text, offset: 13, maxBytes: 100) == ("", 13, false))
    }

    @Test func aCharacterLongerThanAChunkIsCutBetweenItsScalarsSoMoreStillMovesOn() {
        let zalgo = "e" + String(repeating: "\u{301}", count: 40) + "nd"  // one 81-byte character, then "nd"
        var offset = 0, chunks: [String] = []
        while true {
            let chunk = MailText.chunk(zalgo, offset: offset, maxBytes: 64)
            #expect(chunk.end > offset, "a chunk that does not move on would be asked for forever")
            chunks.append(chunk.body)
            offset = chunk.end
            if !chunk.moreAvailable || chunks.count > 10 { break }
        }
        #expect(chunks.joined() == zalgo && chunks.allSatisfy { $0.utf8.count <= 64 })
    }

    @Test func internalDatesParseAndSearchDaysFormat() throws {
        let date = try #require(IMAPDate.parse("05-Dec-2026 20:45:38 +0100"))
        #expect(date.timeIntervalSince1970 == 1_796_499_938)
        #expect(IMAPDate.parse(" 5-Dec-2026 20:45:38 +0000") != nil, "a day padded with a space")
        for bad in ["", "05-Foo-2026 20:45:38 +0000", "05-Dec-2026 25:00:00 +0000", "05-Dec-2026 20:45 +0000", "x y z"] {
            #expect(IMAPDate.parse(bad) == nil, "\(bad)")
        }
        #expect(IMAPDate.searchDay(date) == "5-Dec-2026")
    }

    @Test func aComposedMailCarriesTheFirstChunkTheAttachmentsAndASyntheticIDWhenItHasNone() {
        let envelope = MailEnvelope(date: "d", subject: "s", from: ["a@x"], to: ["b@x"], cc: [], messageID: "")
        let text = MailPart(section: "1", type: "text/html", charset: "utf-8", encoding: "base64", size: 100, name: nil, isAttachment: false)
        let pdf = MailPart(section: "2", type: "application/pdf", charset: nil, encoding: "base64", size: 5000, name: "a.pdf", isAttachment: true)
        let html = "<p>Hello</p>\r\n<p>" + String(repeating: "word ", count: 100) + "</p>"
        let raw = Array(Data(html.utf8).base64EncodedString().utf8)
        let composed = MailComposer.compose(envelope: envelope, parts: [text, pdf], text: text, rawText: raw, uidValidity: 3, uid: 9,
                                            chunkBytes: 64, maxTextBytes: 200)
        #expect(composed.item.messageID == "<3.9@bramble.invalid>")
        #expect(composed.item.body.hasPrefix("Hello") && composed.item.body.utf8.count <= 64 && composed.item.moreAvailable)
        #expect(!composed.text.contains("<p>") && composed.text.utf8.count <= 200 && composed.firstChunkBytes == composed.item.body.utf8.count)
        #expect(composed.item.attachments == [.init(name: "a.pdf", type: "application/pdf", size: 5000)])
        // A Message-ID no store should key on is replaced; NUL never reaches the text.
        for bad in [String(repeating: "x", count: 999), "<a b@c>", "<a\u{1}b@c>"] {
            var e = envelope
            e.messageID = bad
            #expect(MailComposer.compose(envelope: e, parts: [], text: nil, rawText: nil, uidValidity: 3, uid: 9, chunkBytes: 64,
                                         maxTextBytes: 200).item.messageID == "<3.9@bramble.invalid>")
        }
        let plain = MailPart(section: "1", type: "text/plain", charset: "utf-8", encoding: nil, size: 5, name: nil, isAttachment: false)
        var withNUL = envelope
        withNUL.subject = "a\u{0}b"
        let cleaned = MailComposer.compose(envelope: withNUL, parts: [plain], text: plain, rawText: [0x61, 0, 0x62], uidValidity: 3, uid: 9,
                                           chunkBytes: 64, maxTextBytes: 200)
        #expect(cleaned.item.subject == "ab" && cleaned.text == "ab")
    }
}
