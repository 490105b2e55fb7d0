/// A new mail for the device (service `mail`): the envelope, the first chunk of the text
/// (2 KB by default), whether More can bring the rest, and each attachment's name, type
/// and size. Encoded as `PayloadFields`.
public struct MailItem: Equatable, Sendable {
    public static let maxMessageIDLength = 998  // RFC 5322's line limit

    /// A Message-ID a store may key on and a device may ask about: 1–998 bytes, no space
    /// and no control character (NUL above all). The Messaging Agent gives every mail such
    /// an ID (a synthetic one otherwise); the node refuses a request naming another.
    public static func isValidMessageID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= maxMessageIDLength && id.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value != 0x7F }
    }
    public static let maxAddressLength = 1024
    public static let maxAddresses = 100
    public static let maxSubjectLength = 2048
    public static let maxDateLength = 256
    /// A chunk's bound; the chunk size itself is the server's setting (≤ this).
    public static let maxChunkLength = 16 * 1024
    public static let maxAttachments = 256
    public static let maxAttachmentNameLength = 1024
    public static let maxAttachmentTypeLength = 255

    public struct Attachment: Equatable, Sendable, Codable {
        public var name: String
        public var type: String
        public var size: UInt64
        public init(name: String, type: String, size: UInt64) { (self.name, self.type, self.size) = (name, type, size) }
    }

    public var messageID: String
    public var from: String
    public var to: [String]
    public var cc: [String]
    public var subject: String
    public var date: String
    public var body: String
    public var moreAvailable: Bool
    public var attachments: [Attachment]
    /// As the mail's headers say (filters match on it).
    public var importance: MailImportance
    /// A filter rule marked it (forward with high priority).
    public var highPriority: Bool

    public init(messageID: String, from: String, to: [String], cc: [String], subject: String, date: String, body: String,
                moreAvailable: Bool, attachments: [Attachment], importance: MailImportance = .normal, highPriority: Bool = false) {
        (self.messageID, self.from, self.to, self.cc, self.subject) = (messageID, from, to, cc, subject)
        (self.date, self.body, self.moreAvailable, self.attachments) = (date, body, moreAvailable, attachments)
        (self.importance, self.highPriority) = (importance, highPriority)
    }

    // Tags: 1 message_id, 2 from, 3 to (repeated), 4 cc (repeated), 5 subject, 6 date,
    // 7 body, 8 more_available, 9 attachment (repeated record: 1 name, 2 type, 3 size),
    // 10 importance ("high", "normal", "low"), 11 high_priority.
    /// The most the lists (To, Cc, attachments) take of one item, so that with the fixed
    /// fields and a chunk at its bound it stays far below a frame's 256 KB: entries past it
    /// are left out (a mail to 10,000 people shows the first of them).
    public static let listBudget = 32 * 1024

    public func encoded() -> [UInt8] {
        var w = PayloadWriter()
        w.string(1, messageID, max: Self.maxMessageIDLength)
        w.string(2, from, max: Self.maxAddressLength)
        w.string(5, subject, max: Self.maxSubjectLength)
        w.string(6, date, max: Self.maxDateLength)
        w.string(7, body, max: Self.maxChunkLength)
        w.bool(8, moreAvailable)
        w.string(10, importance.rawValue, max: 16)
        w.bool(11, highPriority)
        let budgetEnd = w.bytes.count + Self.listBudget
        for a in to.prefix(Self.maxAddresses) where w.bytes.count < budgetEnd { w.string(3, a, max: Self.maxAddressLength) }
        for a in cc.prefix(Self.maxAddresses) where w.bytes.count < budgetEnd { w.string(4, a, max: Self.maxAddressLength) }
        for a in attachments.prefix(Self.maxAttachments) where w.bytes.count < budgetEnd {
            var r = PayloadWriter()
            r.string(1, a.name, max: Self.maxAttachmentNameLength)
            r.string(2, a.type, max: Self.maxAttachmentTypeLength)
            r.uint(3, a.size)
            w.record(9, r)
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(PayloadError) -> MailItem {
        let f = try PayloadFields(bytes)
        var attachments: [Attachment] = []
        for r in try f.records(9, maxCount: maxAttachments, "attachments") {
            attachments.append(Attachment(name: try r.string(1, max: maxAttachmentNameLength, "attachment name") ?? "",
                                          type: try r.string(2, max: maxAttachmentTypeLength, "attachment type") ?? "",
                                          size: try r.uint(3, "attachment size") ?? 0))
        }
        return MailItem(
            messageID: try f.requiredString(1, max: maxMessageIDLength, "message_id"),
            from: try f.string(2, max: maxAddressLength, "from") ?? "",
            to: try f.strings(3, max: maxAddressLength, maxCount: maxAddresses, "to"),
            cc: try f.strings(4, max: maxAddressLength, maxCount: maxAddresses, "cc"),
            subject: try f.string(5, max: maxSubjectLength, "subject") ?? "",
            date: try f.string(6, max: maxDateLength, "date") ?? "",
            body: try f.string(7, max: maxChunkLength, "body") ?? "",
            moreAvailable: try f.bool(8, "more_available"),
            attachments: attachments,
            importance: try f.string(10, max: 16, "importance").flatMap(MailImportance.init(rawValue:)) ?? .normal,
            highPriority: try f.bool(11, "high_priority"))
    }
}

/// The next chunk of a mail's text, answering a More request (service `more`).
public struct MoreChunk: Equatable, Sendable {
    public var messageID: String
    /// Where the chunk starts in the text, in UTF-8 bytes.
    public var offset: UInt64
    public var body: String
    public var moreAvailable: Bool

    public init(messageID: String, offset: UInt64, body: String, moreAvailable: Bool) {
        (self.messageID, self.offset, self.body, self.moreAvailable) = (messageID, offset, body, moreAvailable)
    }

    public func encoded() -> [UInt8] {
        var w = PayloadWriter()
        w.string(1, messageID, max: MailItem.maxMessageIDLength)
        w.uint(2, offset)
        w.string(3, body, max: MailItem.maxChunkLength)
        w.bool(4, moreAvailable)
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(PayloadError) -> MoreChunk {
        let f = try PayloadFields(bytes)
        return MoreChunk(messageID: try f.requiredString(1, max: MailItem.maxMessageIDLength, "message_id"),
                         offset: try f.requiredUInt(2, "offset"),
                         body: try f.string(3, max: MailItem.maxChunkLength, "body") ?? "",
                         moreAvailable: try f.bool(4, "more_available"))
    }
}
