/// What the Messaging Agent reads of a message before fetching any of its body: the
/// envelope (From, To, Cc, Subject, Date, Message-ID, headers decoded) and, from its
/// BODYSTRUCTURE, the part to show as text and the attachments. Built from IMAP values,
/// tolerant of servers' variations, bounded by what the decoder accepted.
public struct MailEnvelope: Equatable, Sendable {
    public var date: String
    public var subject: String
    public var from: [String]
    public var to: [String]
    public var cc: [String]
    public var messageID: String

    public init(date: String, subject: String, from: [String], to: [String], cc: [String], messageID: String) {
        (self.date, self.subject, self.from, self.to, self.cc, self.messageID) = (date, subject, from, to, cc, messageID)
    }

    /// From an IMAP `ENVELOPE` list (RFC 9051 §7.5.2); nil if it is not one.
    public init?(_ value: IMAPValue) {
        guard let fields = value.list, fields.count >= 10 else { return nil }
        func text(_ v: IMAPValue) -> String { v.text.map(MailText.decodeHeader) ?? "" }
        date = text(fields[0])
        subject = text(fields[1])
        from = Self.addresses(fields[2])
        to = Self.addresses(fields[5])
        cc = Self.addresses(fields[6])
        messageID = fields[9].text ?? ""
    }

    /// The bare addresses (`mailbox@host`) of one of an `ENVELOPE`'s address lists:
    /// `field` 2 From, 4 Reply-To, 5 To, 6 Cc. What a reply goes to.
    public static func addressSpecs(_ envelope: IMAPValue, field: Int) -> [String] {
        guard let fields = envelope.list, fields.count >= 10, (2...7).contains(field) else { return [] }
        return (fields[field].list ?? []).compactMap { entry in
            guard let a = entry.list, a.count >= 4, let mailbox = a[2].text, let host = a[3].text else { return nil }
            return "\(mailbox)@\(host)"
        }
    }

    /// `Name <mailbox@host>` (or the bare address) for each address of a list; group
    /// markers (RFC 9051's NIL-host entries) are skipped.
    static func addresses(_ value: IMAPValue) -> [String] {
        (value.list ?? []).compactMap { entry in
            guard let a = entry.list, a.count >= 4, let mailbox = a[2].text, let host = a[3].text else { return nil }
            let address = "\(mailbox)@\(host)"
            guard let name = a[0].text.map(MailText.decodeHeader), !name.isEmpty else { return address }
            return "\(name) <\(address)>"
        }
    }
}

/// One leaf of a message's MIME structure.
public struct MailPart: Equatable, Sendable {
    /// The IMAP section to fetch it with: `1`, `2.1`, … (`1` for a single-part message).
    public var section: String
    /// `text/plain`, `image/png`, … (lower case).
    public var type: String
    public var charset: String?
    /// Content-Transfer-Encoding (lower case).
    public var encoding: String?
    /// Encoded size in bytes, as the server counts it.
    public var size: UInt64
    /// The file name (Content-Disposition's `filename` or Content-Type's `name`), decoded.
    public var name: String?
    /// Disposition `attachment`.
    public var isAttachment: Bool

    public var isText: Bool { type.hasPrefix("text/") }
}

public enum MailStructure {
    /// Every leaf part of an IMAP `BODYSTRUCTURE`, in order, at most `limit` of them.
    public static func parts(_ value: IMAPValue, limit: Int = 256) -> [MailPart] {
        var parts: [MailPart] = []
        walk(value, section: "", into: &parts, limit: limit)
        return parts
    }

    /// The part to show as the message's text: the first text/plain that is not an
    /// attachment, else the first text/html.
    public static func textPart(_ parts: [MailPart]) -> MailPart? {
        parts.first { $0.type == "text/plain" && !$0.isAttachment } ?? parts.first { $0.type == "text/html" && !$0.isAttachment }
    }

    /// The attachments: named parts, and every non-text part.
    public static func attachments(_ parts: [MailPart], text: MailPart?) -> [MailPart] {
        parts.filter { $0 != text && ($0.isAttachment || $0.name != nil || !$0.isText) }
    }

    private static func walk(_ value: IMAPValue, section: String, into parts: inout [MailPart], limit: Int) {
        guard parts.count < limit, let fields = value.list, !fields.isEmpty else { return }
        if fields[0].list != nil {  // multipart: children, then the subtype
            var n = 0
            for child in fields where child.list != nil {
                n += 1
                walk(child, section: section.isEmpty ? "\(n)" : "\(section).\(n)", into: &parts, limit: limit)
            }
            return
        }
        guard fields.count >= 7, let type = fields[0].text?.lowercased(), let subtype = fields[1].text?.lowercased() else { return }
        let params = pairs(fields[2])
        // Extension data follows the basic fields (and, for text/*, the line count; for
        // message/rfc822, envelope, body and lines): look for the disposition list.
        var disposition: (String, [String: String])?
        for extra in fields.dropFirst(7) {
            if let d = extra.list, d.count == 2, let kind = d[0].text?.lowercased(), ["attachment", "inline"].contains(kind) {
                disposition = (kind, pairs(d[1]))
                break
            }
        }
        let name = disposition?.1["filename"] ?? params["name"]
        parts.append(MailPart(section: section.isEmpty ? "1" : section, type: "\(type)/\(subtype)", charset: params["charset"],
                              encoding: fields[5].text?.lowercased(), size: fields[6].number ?? 0,
                              name: name.map(MailText.decodeHeader), isAttachment: disposition?.0 == "attachment"))
    }

    /// `("name" "value" …)` as a dictionary with lower-case names.
    private static func pairs(_ value: IMAPValue) -> [String: String] {
        let items = value.list ?? []
        var out: [String: String] = [:]
        var i = 0
        while i + 1 < items.count {
            if let k = items[i].text?.lowercased(), let v = items[i + 1].text { out[k] = v }
            i += 2
        }
        return out
    }
}
