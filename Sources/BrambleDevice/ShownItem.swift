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
/// (`service` "folders") have `folders`, each `name` and `special_use`. Fields a service
/// does not have are left out.
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

    /// The server recorded the device's request `ref`.
    public static func request(_ request: DeviceRequest, pin: String, ref: UInt64, at: Date) -> ShownItem {
        var s = ShownItem(pin: pin, ref: ref, service: "request", receivedAt: at)
        s.verb = request.verb
        switch request {
        case .send, .reply, .forward, .folders: break
        case .more(let id), .read(let id), .unread(let id), .delete(let id): s.messageID = id
        case .file(let id, let folder): (s.messageID, s.folder) = (id, folder)
        }
        return s
    }

    enum CodingKeys: String, CodingKey {
        case pin, ref, service, subject, from, to, cc, date, body, offset, attachments, priority, seq, state, reason, verb, read, deleted, folder, folders
        case pushID = "push_id"
        case bodyLength = "body_length"
        case messageID = "message_id"
        case moreAvailable = "more_available"
        case receivedAt = "received_at"
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
