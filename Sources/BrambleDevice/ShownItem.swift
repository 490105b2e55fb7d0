import BrambleCore
import Foundation

/// One item a device showed: what `--json` prints, one JSON object per line. A push has
/// `push_id`, `subject` and `body_length`; a mail (`service` "mail") has `message_id`,
/// `from`, `to`, `cc`, `subject`, `body` (the text shown so far), `more_available`,
/// `attachments` and, when a filter rule said so, `priority` "high"; a More chunk (`service` "more") has `message_id`, `offset`, `body` and
/// `more_available`. What became of a send, reply or forward (`service` "sent") has `ref`
/// the device's request number, `seq` the item's delivery number, `message_id` the mail's,
/// `state` "sent" or "failed" and, when failed, `reason`. When the server has recorded a
/// request the device made, a line with `service` "request", `ref` its number and `verb`
/// says so (once). A mail's state in the mailbox (`service` "state", reconciliation) has
/// `message_id`, `read`, `deleted` and `folder` ("" once expunged); the user's folders
/// (`service` "folders") have `folders`, each `name` and `special_use`.
/// Instant messaging: an IM login's outcome or a session's end (`service` "im-session")
/// has `jid`, `state` (logged-in, logged-out, server-busy, failed) and `reason`, and `ref`
/// the login's or logout's request number when it answers one (`seq` then the delivery
/// number); a message (`service` "im") has `from`, `to` (one JID), `id`, `body` and, for one
/// the device sent, `ref` its request number (and `seq`) and `error` if it failed; the
/// contacts (`service` "im-contacts") have `contacts`, each `jid`, `name`, `presence`
/// (available, away, busy, offline) and `status`; a contact's new presence (`service`
/// "im-presence") has `jid`, `presence` and `status`. The Policy Service: an IT policy
/// (`service` "policy") has `policy` (its name, version and rules) and `state` "applied",
/// or "refused" with `reason` (not signed by the device's domain); the service books
/// (`service` "service-books") have `services`, each `service`, `identifier` and `name`.
/// An IT administration command (`service` "command") has `command` (lock, wipe,
/// wipe-work), `command_id`, and `state`: "locked", "wiping" (confirmed; the device wipes
/// once the server recorded that), "wiped" (the last line the device prints; its log is
/// gone) or "refused" with `reason`.
/// Fields a service does not have are left out.
public struct ShownItem: Codable, Sendable, Equatable {
    public var pin: String
    public var ref: UInt64
    public var service: String
    public var pushID: String?
    public var subject: String?
    public var bodyLength: Int?
    public var messageID: String?
    public var from: String?
    public var to: [String]?
    public var cc: [String]?
    public var date: String?
    public var body: String?
    public var offset: UInt64?
    public var moreAvailable: Bool?
    public var attachments: [MailItem.Attachment]?
    /// "high" for a mail a filter rule forwarded with high priority.
    public var priority: String?
    /// The delivery number, where `ref` is another number (the request's, for "sent").
    public var seq: UInt64?
    public var state: String?
    public var reason: String?
    public var verb: String?
    public var read: Bool?
    public var deleted: Bool?
    public var folder: String?
    public var folders: [FolderList.Folder]?
    public var jid: String?
    /// An instant message's id (as its sender gave it).
    public var id: String?
    /// An instant message's recipient (one JID, where a mail's `to` is a list).
    public var toJID: String?
    public var presence: String?
    public var status: String?
    public var contacts: [IMContactList.Contact]?
    public var error: String?
    public var policy: ITPolicy?
    public var services: [ServiceBooks.Book]?
    public var command: String?
    public var commandID: UInt64?
    public var receivedAt: Date

    /// The delivery number this line records as shown; nil for a line that records no
    /// delivered item (a request the server recorded).
    public var shownSeq: UInt64? { service == "request" ? nil : seq ?? ref }

    public init(pin: String, ref: UInt64, service: String, receivedAt: Date) {
        (self.pin, self.ref, self.service, self.receivedAt) = (pin, ref, service, receivedAt)
    }

    public static func push(_ item: PushItem, pin: String, ref: UInt64, at: Date) -> ShownItem {
        var s = ShownItem(pin: pin, ref: ref, service: "push", receivedAt: at)
        (s.pushID, s.subject, s.bodyLength) = (item.pushID, item.subject, item.body.utf8.count)
        return s
    }

    public static func mail(_ item: MailItem, pin: String, ref: UInt64, at: Date) -> ShownItem {
        var s = ShownItem(pin: pin, ref: ref, service: "mail", receivedAt: at)
        (s.messageID, s.from, s.to, s.cc, s.subject, s.date) = (item.messageID, item.from, item.to, item.cc, item.subject, item.date)
        (s.body, s.moreAvailable, s.attachments) = (item.body, item.moreAvailable, item.attachments)
        s.priority = item.highPriority ? "high" : nil
        return s
    }

    public static func more(_ chunk: MoreChunk, pin: String, ref: UInt64, at: Date) -> ShownItem {
        var s = ShownItem(pin: pin, ref: ref, service: "more", receivedAt: at)
        (s.messageID, s.offset, s.body, s.moreAvailable) = (chunk.messageID, chunk.offset, chunk.body, chunk.moreAvailable)
        return s
    }

    public static func sent(_ outcome: SentOutcome, pin: String, seq: UInt64, at: Date) -> ShownItem {
        var s = ShownItem(pin: pin, ref: outcome.requestRef, service: "sent", receivedAt: at)
        (s.seq, s.messageID, s.state, s.reason) = (seq, outcome.messageID, outcome.state.rawValue, outcome.reason)
        return s
    }

    public static func state(_ state: MessageState, pin: String, ref: UInt64, at: Date) -> ShownItem {
        var s = ShownItem(pin: pin, ref: ref, service: "state", receivedAt: at)
        (s.messageID, s.read, s.deleted, s.folder) = (state.messageID, state.read, state.deleted, state.folder)
        return s
    }

    public static func folders(_ list: FolderList, pin: String, ref: UInt64, at: Date) -> ShownItem {
        var s = ShownItem(pin: pin, ref: ref, service: "folders", receivedAt: at)
        s.folders = list.folders
        return s
    }

    public static func imSession(_ outcome: IMSessionOutcome, pin: String, seq: UInt64, at: Date) -> ShownItem {
        var s = ShownItem(pin: pin, ref: outcome.requestRef ?? seq, service: "im-session", receivedAt: at)
        (s.seq, s.jid, s.state, s.reason) = (outcome.requestRef == nil ? nil : seq, outcome.jid, outcome.state.rawValue, outcome.reason)
        return s
    }

    public static func im(_ message: IMMessage, pin: String, seq: UInt64, at: Date) -> ShownItem {
        var s = ShownItem(pin: pin, ref: message.ref ?? seq, service: "im", receivedAt: at)
        (s.seq, s.from, s.toJID, s.id, s.body, s.error) = (message.ref == nil ? nil : seq, message.from, message.to, message.id, message.body, message.error)
        return s
    }

    public static func imContacts(_ list: IMContactList, pin: String, ref: UInt64, at: Date) -> ShownItem {
        var s = ShownItem(pin: pin, ref: ref, service: "im-contacts", receivedAt: at)
        s.contacts = list.contacts
        return s
    }

    public static func imPresence(_ update: IMPresenceUpdate, pin: String, ref: UInt64, at: Date) -> ShownItem {
        var s = ShownItem(pin: pin, ref: ref, service: "im-presence", receivedAt: at)
        (s.jid, s.presence, s.status) = (update.jid, update.presence.rawValue, update.status)
        return s
    }

    public static func policy(_ policy: ITPolicy?, applied: Bool, reason: String?, pin: String, ref: UInt64, at: Date) -> ShownItem {
        var s = ShownItem(pin: pin, ref: ref, service: "policy", receivedAt: at)
        (s.policy, s.state, s.reason) = (policy, applied ? "applied" : "refused", reason)
        return s
    }

    public static func command(_ kind: ITCommand.Kind?, id: UInt64?, state: String, reason: String? = nil, pin: String, ref: UInt64, at: Date) -> ShownItem {
        var s = ShownItem(pin: pin, ref: ref, service: "command", receivedAt: at)
        (s.command, s.commandID, s.state, s.reason) = (kind?.name, id, state, reason)
        return s
    }

    public static func serviceBooks(_ books: ServiceBooks, pin: String, ref: UInt64, at: Date) -> ShownItem {
        var s = ShownItem(pin: pin, ref: ref, service: "service-books", receivedAt: at)
        s.services = books.books
        return s
    }

    /// The server recorded the device's request `ref`.
    public static func request(_ request: DeviceRequest, pin: String, ref: UInt64, at: Date) -> ShownItem {
        var s = ShownItem(pin: pin, ref: ref, service: "request", receivedAt: at)
        s.verb = request.verb
        switch request {
        case .send, .reply, .forward, .folders: break
        case .more(let id), .read(let id), .unread(let id), .delete(let id): s.messageID = id
        case .file(let id, let folder): (s.messageID, s.folder) = (id, folder)
        case .imLogin(let jid, _): s.jid = jid
        case .imSend(let to, _): s.toJID = to
        case .imPresence(let presence): s.presence = presence.rawValue
        case .imLogout: break
        case .policyApplied, .policyRefused: break
        case .commandDone(let id, let kind): (s.command, s.commandID) = (kind.name, id)
        case .commandRefused(let id, _): s.commandID = id
        }
        return s
    }

    enum CodingKeys: String, CodingKey {
        case pin, ref, service, subject, from, to, cc, date, body, offset, attachments, priority, seq, state, reason, verb, read, deleted, folder, folders
        case jid, id, presence, status, contacts, error, policy, services, command
        case commandID = "command_id"
        case pushID = "push_id"
        case bodyLength = "body_length"
        case messageID = "message_id"
        case moreAvailable = "more_available"
        case receivedAt = "received_at"
    }

    // By hand only for `to`: a mail's is a list, an instant message's one JID.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        pin = try c.decode(String.self, forKey: .pin)
        ref = try c.decode(UInt64.self, forKey: .ref)
        service = try c.decode(String.self, forKey: .service)
        receivedAt = try c.decode(Date.self, forKey: .receivedAt)
        pushID = try c.decodeIfPresent(String.self, forKey: .pushID)
        subject = try c.decodeIfPresent(String.self, forKey: .subject)
        bodyLength = try c.decodeIfPresent(Int.self, forKey: .bodyLength)
        messageID = try c.decodeIfPresent(String.self, forKey: .messageID)
        from = try c.decodeIfPresent(String.self, forKey: .from)
        if let one = try? c.decodeIfPresent(String.self, forKey: .to) { toJID = one } else { to = try c.decodeIfPresent([String].self, forKey: .to) }
        cc = try c.decodeIfPresent([String].self, forKey: .cc)
        date = try c.decodeIfPresent(String.self, forKey: .date)
        body = try c.decodeIfPresent(String.self, forKey: .body)
        offset = try c.decodeIfPresent(UInt64.self, forKey: .offset)
        moreAvailable = try c.decodeIfPresent(Bool.self, forKey: .moreAvailable)
        attachments = try c.decodeIfPresent([MailItem.Attachment].self, forKey: .attachments)
        priority = try c.decodeIfPresent(String.self, forKey: .priority)
        seq = try c.decodeIfPresent(UInt64.self, forKey: .seq)
        state = try c.decodeIfPresent(String.self, forKey: .state)
        reason = try c.decodeIfPresent(String.self, forKey: .reason)
        verb = try c.decodeIfPresent(String.self, forKey: .verb)
        read = try c.decodeIfPresent(Bool.self, forKey: .read)
        deleted = try c.decodeIfPresent(Bool.self, forKey: .deleted)
        folder = try c.decodeIfPresent(String.self, forKey: .folder)
        folders = try c.decodeIfPresent([FolderList.Folder].self, forKey: .folders)
        jid = try c.decodeIfPresent(String.self, forKey: .jid)
        id = try c.decodeIfPresent(String.self, forKey: .id)
        presence = try c.decodeIfPresent(String.self, forKey: .presence)
        status = try c.decodeIfPresent(String.self, forKey: .status)
        contacts = try c.decodeIfPresent([IMContactList.Contact].self, forKey: .contacts)
        error = try c.decodeIfPresent(String.self, forKey: .error)
        policy = try c.decodeIfPresent(ITPolicy.self, forKey: .policy)
        services = try c.decodeIfPresent([ServiceBooks.Book].self, forKey: .services)
        command = try c.decodeIfPresent(String.self, forKey: .command)
        commandID = try c.decodeIfPresent(UInt64.self, forKey: .commandID)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(pin, forKey: .pin)
        try c.encode(ref, forKey: .ref)
        try c.encode(service, forKey: .service)
        try c.encode(receivedAt, forKey: .receivedAt)
        try c.encodeIfPresent(pushID, forKey: .pushID)
        try c.encodeIfPresent(subject, forKey: .subject)
        try c.encodeIfPresent(bodyLength, forKey: .bodyLength)
        try c.encodeIfPresent(messageID, forKey: .messageID)
        try c.encodeIfPresent(from, forKey: .from)
        if let toJID { try c.encode(toJID, forKey: .to) } else { try c.encodeIfPresent(to, forKey: .to) }
        try c.encodeIfPresent(cc, forKey: .cc)
        try c.encodeIfPresent(date, forKey: .date)
        try c.encodeIfPresent(body, forKey: .body)
        try c.encodeIfPresent(offset, forKey: .offset)
        try c.encodeIfPresent(moreAvailable, forKey: .moreAvailable)
        try c.encodeIfPresent(attachments, forKey: .attachments)
        try c.encodeIfPresent(priority, forKey: .priority)
        try c.encodeIfPresent(seq, forKey: .seq)
        try c.encodeIfPresent(state, forKey: .state)
        try c.encodeIfPresent(reason, forKey: .reason)
        try c.encodeIfPresent(verb, forKey: .verb)
        try c.encodeIfPresent(read, forKey: .read)
        try c.encodeIfPresent(deleted, forKey: .deleted)
        try c.encodeIfPresent(folder, forKey: .folder)
        try c.encodeIfPresent(folders, forKey: .folders)
        try c.encodeIfPresent(jid, forKey: .jid)
        try c.encodeIfPresent(id, forKey: .id)
        try c.encodeIfPresent(presence, forKey: .presence)
        try c.encodeIfPresent(status, forKey: .status)
        try c.encodeIfPresent(contacts, forKey: .contacts)
        try c.encodeIfPresent(error, forKey: .error)
        try c.encodeIfPresent(policy, forKey: .policy)
        try c.encodeIfPresent(services, forKey: .services)
        try c.encodeIfPresent(command, forKey: .command)
        try c.encodeIfPresent(commandID, forKey: .commandID)
    }

    /// Reads the lines `encoder` writes (the log's `received_at`, ISO 8601 with fractions).
    public static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        let style = Date.ISO8601FormatStyle().year().month().day().time(includingFractionalSeconds: true)
        d.dateDecodingStrategy = .custom { decoder in
            let c = try decoder.singleValueContainer()
            return try style.parse(try c.decode(String.self))
        }
        return d
    }()

    public static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true)))
        }
        return e
    }()
}
