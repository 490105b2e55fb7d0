#if BRAMBLE_FUZZ
import BrambleCore

/// `payloads`: what an opened envelope holds, as a device or a node parses it: push items,
/// acknowledgement lists, mail items, More chunks, device requests, and the tagged-field
/// format under the last three. Each parser runs on every input.
enum PayloadsTarget {
    static let target = FuzzTarget(
        name: "payloads",
        covers: "PushItem, AckList, MailItem (+ filter rules), MoreChunk, DeviceRequest (every kind, wire and stored), SentOutcome, MessageState, FolderList, IMSessionOutcome, IMMessage, IMContactList, IMPresenceUpdate, PayloadFields: decode, re-encode, decode",
        run: run, seeds: seeds)

    static func run(_ bytes: [UInt8]) {
        // The fixed layouts are canonical: what decodes re-encodes to the same bytes.
        if let push = try? PushItem.decode(bytes) { require(push.encoded() == bytes, "PushItem re-encoded to other bytes") }
        if let acks = try? AckList.decode(bytes) {
            require(acks.encoded() == bytes, "AckList re-encoded to other bytes")
            require((1...AckList.maxCount).contains(acks.refs.count), "AckList of \(acks.refs.count) refs")
        }

        // The tagged-field payloads: whatever decodes encodes to something that decodes to
        // it (lists past the encoder's budget are cut, which a 16 KB input cannot reach).
        if let mail = try? MailItem.decode(bytes) {
            let again = try? MailItem.decode(mail.encoded())
            require(again != nil, "a decoded mail item re-encoded to one that does not decode")
            if bytes.count <= 16 * 1024 { require(again == mail, "re-encoding changed the mail item") }
            // The filter rules read what a mail item decodes to.
            for field in MailFilterRule.Field.allCases {
                let needle = field == .importance ? mail.importance.rawValue : String(mail.subject.prefix(MailFilterRule.maxPatternLength))
                _ = MailFilterRule(id: 1, position: 1, field: field, contains: needle, action: .forward).matches(mail)
            }
            let rule = MailFilterRule(id: 2, position: 1, field: .importance, contains: mail.importance.rawValue, action: .doNotForward)
            require(MailFilterRule.decide([rule], mail) == .doNotForward, "an importance rule did not match its own importance")
        }
        if let more = try? MoreChunk.decode(bytes) {
            require((try? MoreChunk.decode(more.encoded())) == more, "re-encoding changed the More chunk")
        }
        if let request = try? DeviceRequest.decode(bytes) {
            require((try? DeviceRequest.decode(request.encoded())) == request, "re-encoding changed the device request")
            for a in request.recipients { require(DeviceRequest.isAddressShaped(a), "a recipient that is no address was decoded") }
        }
        if let stored = try? DeviceRequest.decodeStored(bytes) {
            require((try? DeviceRequest.decodeStored(stored.encoded())) == stored, "re-encoding changed the stored device request")
        }
        if let outcome = try? IMSessionOutcome.decode(bytes) {
            require((try? IMSessionOutcome.decode(outcome.encoded())) == outcome, "re-encoding changed the IM session outcome")
        }
        if let message = try? IMMessage.decode(bytes) {
            require((try? IMMessage.decode(message.encoded())) == message, "re-encoding changed the instant message")
        }
        if let update = try? IMPresenceUpdate.decode(bytes) {
            require((try? IMPresenceUpdate.decode(update.encoded())) == update, "re-encoding changed the presence update")
        }
        if let contacts = try? IMContactList.decode(bytes) {
            let again = try? IMContactList.decode(contacts.encoded())
            require(again != nil, "a decoded contact list re-encoded to one that does not decode")
            if bytes.count <= 16 * 1024 { require(again == contacts, "re-encoding changed the contact list") }
        }
        if let outcome = try? SentOutcome.decode(bytes) {
            require((try? SentOutcome.decode(outcome.encoded())) == outcome, "re-encoding changed the send outcome")
        }
        if let state = try? MessageState.decode(bytes) {
            require((try? MessageState.decode(state.encoded())) == state, "re-encoding changed the message state")
        }
        if let list = try? FolderList.decode(bytes) {
            let again = try? FolderList.decode(list.encoded())
            require(again != nil, "a decoded folder list re-encoded to one that does not decode")
            if bytes.count <= 16 * 1024 { require(again == list, "re-encoding changed the folder list") }
        }

        // The field reader itself, every accessor on every tag present, one level of records.
        if let fields = try? PayloadFields(bytes) { probe(fields, tags: Set(tags(bytes)), depth: 0) }
    }

    /// The tags of the top-level fields (as far as the framing holds).
    static func tags(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [], i = 0
        while bytes.count - i >= 5 {
            out.append(bytes[i])
            i += 5 + bytes[(i + 1)..<(i + 5)].reduce(0) { $0 << 8 | Int($1) }
        }
        return out
    }

    static func probe(_ fields: PayloadFields, tags: Set<UInt8>, depth: Int) {
        for tag in tags.union([1, 2, 3]) {
            let raw = try? fields.bytes(tag, max: .max, "f")
            if let n = try? fields.uint(tag, "f") { require(raw?.count == 8, "uint \(n) from a field of \(raw?.count ?? -1) bytes") }
            if let s = try? fields.string(tag, max: 64, "f") { require(s.utf8.count <= 64, "a string over its bound") }
            _ = try? fields.strings(tag, max: 1024, maxCount: 8, "f")
            _ = try? fields.bool(tag, "f")
            if depth == 0, let records = try? fields.records(tag, maxCount: 4, "f") {
                for r in records { probe(r, tags: [], depth: 1) }
            }
        }
    }

    static let sampleMail = MailItem(
        messageID: "<CAF=4x+kq@mail.example.com>", from: "Ann Example <ann@example.com>",
        to: ["bob@example.com", "Carol <carol@example.net>"], cc: ["ops@example.com"],
        subject: "Quarterly numbers — draft", date: "Sat, 05 Dec 2026 20:45:38 +0000",
        body: "Hi Bob,\n\nthe draft is attached. Numbers are up 4 %.\n", moreAvailable: true,
        attachments: [.init(name: "q4.xlsx", type: "application/vnd.ms-excel", size: 48_213), .init(name: "logo.png", type: "image/png", size: 1_024)],
        importance: .high, highPriority: true)

    static func seeds() -> [(name: String, bytes: [UInt8])] {
        [
            ("push.bin", PushItem(pushID: "p-1", subject: "Build failed", body: "main is red since 14:02\n").encoded()),
            ("push-empty.bin", PushItem(pushID: "", subject: "", body: "").encoded()),
            ("ack.bin", AckList(refs: [1, 2, 3, 5, 8, .max]).encoded()),
            ("mail.bin", sampleMail.encoded()),
            ("mail-minimal.bin", MailItem(messageID: "<1.2@bramble.invalid>", from: "", to: [], cc: [], subject: "", date: "", body: "",
                                          moreAvailable: false, attachments: []).encoded()),
            ("more.bin", MoreChunk(messageID: "<CAF=4x+kq@mail.example.com>", offset: 2048, body: "…the rest of the text.", moreAvailable: false).encoded()),
            ("request-more.bin", DeviceRequest.more(messageID: "<CAF=4x+kq@mail.example.com>").encoded()),
            ("request-send.bin", DeviceRequest.send(to: ["bob@example.com", "carol@example.net"], cc: ["ops@example.com"],
                                                    subject: "Grüße", body: "On my way.\r\n.\r\nAnn").encoded()),
            ("request-reply.bin", DeviceRequest.reply(messageID: "<CAF=4x+kq@mail.example.com>", body: "Yes.", all: true).encoded()),
            ("request-forward.bin", DeviceRequest.forward(messageID: "<CAF=4x+kq@mail.example.com>", to: ["dan@example.org"], cc: [],
                                                          body: "FYI").encoded()),
            ("request-read.bin", DeviceRequest.read(messageID: "<CAF=4x+kq@mail.example.com>").encoded()),
            ("request-unread.bin", DeviceRequest.unread(messageID: "<CAF=4x+kq@mail.example.com>").encoded()),
            ("request-delete.bin", DeviceRequest.delete(messageID: "<CAF=4x+kq@mail.example.com>").encoded()),
            ("request-file.bin", DeviceRequest.file(messageID: "<CAF=4x+kq@mail.example.com>", folder: "Projekte/Größe").encoded()),
            ("request-folders.bin", DeviceRequest.folders.encoded()),
            ("state.bin", MessageState(messageID: "<CAF=4x+kq@mail.example.com>", read: true, deleted: false, folder: "Archiv").encoded()),
            ("state-expunged.bin", MessageState(messageID: "<CAF=4x+kq@mail.example.com>", read: false, deleted: true, folder: "").encoded()),
            ("folders.bin", FolderList(folders: [.init(name: "INBOX", specialUse: ""), .init(name: "Sent", specialUse: "\\Sent"),
                                                 .init(name: "Trash", specialUse: "\\Trash"), .init(name: "Entwürfe", specialUse: "")]).encoded()),
            ("sent.bin", SentOutcome(requestRef: 1_800_000_000_000, messageID: "<bramble.2A00F00D.1800000000000@example.com>",
                                     state: .failed, reason: "unknown recipient <nobody@example.com>").encoded()),
            ("request-im-login.bin", DeviceRequest.imLogin(jid: "demo1@example.test", secret: .password("correct horse")).encoded()),
            ("request-im-login-sealed.bin", DeviceRequest.imLogin(jid: "demo1@example.test", secret: .sealed("s1.AAAA")).encoded()),
            ("request-im-send.bin", DeviceRequest.imSend(to: "demo2@example.test", body: "Mittag? ✓").encoded()),
            ("request-im-presence.bin", DeviceRequest.imPresence(.busy).encoded()),
            ("request-im-logout.bin", DeviceRequest.imLogout.encoded()),
            ("im-session.bin", IMSessionOutcome(jid: "demo1@example.test", state: .serverBusy, reason: "Server Busy", requestRef: 7).encoded()),
            ("im.bin", IMMessage(from: "demo2@example.test", to: "demo1@example.test", id: "m-1", body: "hi", receivedAtMs: 1_800_000_000_000,
                                 ref: 3, error: "service-unavailable").encoded()),
            ("im-contacts.bin", IMContactList(contacts: [.init(jid: "demo2@example.test", name: "Demo 2", presence: .away, status: "lunch"),
                                                         .init(jid: "demo3@example.test", name: "", presence: .offline)]).encoded()),
            ("im-presence.bin", IMPresenceUpdate(jid: "demo2@example.test", presence: .busy, status: "in a meeting").encoded()),
        ]
    }
}

#endif
