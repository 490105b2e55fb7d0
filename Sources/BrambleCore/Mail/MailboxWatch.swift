import Foundation

/// What the Messaging Agent does with a mailbox, given its stored watermark and what
/// `EXAMINE INBOX` says now. The watermark (UIDVALIDITY, last UID enqueued) is the
/// truth; a notification only says "look now".
public enum MailboxPlan: Equatable, Sendable {
    /// Nothing new.
    case upToDate
    /// New mail: `UID FETCH from:*` (keeping only UIDs ≥ `from`: `n:*` always includes the
    /// highest UID, even one below n).
    case fetch(from: UInt64)
    /// The stored UIDs say nothing of this mailbox: it is watched for the first time, or
    /// its UIDVALIDITY changed. New mail is what arrived (INTERNALDATE) since `since` and
    /// that the devices do not have (by Message-ID); older mail is not sent, so the device
    /// is not flooded; the watermark then moves to the mailbox's end.
    case resync(uidValidity: UInt64, lastUID: UInt64, since: Date)

    /// A minute's margin on INTERNALDATE against clocks and the time a check takes.
    public static let resyncMarginSeconds: TimeInterval = 60
    /// A resync never reaches back further than this (a mailbox first watched long after
    /// its device was activated, as after an upgrade, gets the last hour, not months).
    public static let maxResyncAgeSeconds: TimeInterval = 3600

    /// - Parameters:
    ///   - activeSince: when the user's first active device was activated (mail from then
    ///     on is theirs).
    ///   - checkedAt: when a check last reached the mailbox.
    public static func plan(storedValidity: UInt64?, lastUID: UInt64, uidValidity: UInt64, uidNext: UInt64,
                            activeSince: Date, checkedAt: Date?, now: Date) -> MailboxPlan {
        let last = uidNext > 0 ? uidNext - 1 : 0
        guard let storedValidity, storedValidity == uidValidity else {
            let since = storedValidity == nil ? activeSince : max(activeSince, (checkedAt ?? activeSince).addingTimeInterval(-resyncMarginSeconds))
            return .resync(uidValidity: uidValidity, lastUID: last, since: max(since, now.addingTimeInterval(-maxResyncAgeSeconds)))
        }
        return last > lastUID ? .fetch(from: lastUID + 1) : .upToDate
    }
}

/// Builds the device's mail item from what IMAP said of a message.
public enum MailComposer {
    /// How much of a message's text part to fetch: its encoded form (base64 grows it by a
    /// third, HTML by its markup) for `maxTextBytes` of text, so a 30 MB mail costs a
    /// bounded read.
    public static func fetchBytes(maxTextBytes: Int) -> Int { max(64 * 1024, maxTextBytes * 8) }

    /// A Message-ID for a message that has none: stable for the mailbox's UIDVALIDITY and UID.
    public static func syntheticMessageID(uidValidity: UInt64, uid: UInt64) -> String { "<\(uidValidity).\(uid)@bramble.invalid>" }

    /// The item (its first `chunkBytes` of text), the text kept for More (at most
    /// `maxTextBytes`), and the bytes of text in the first chunk.
    public static func compose(envelope: MailEnvelope, parts: [MailPart], text textPart: MailPart?, rawText: [UInt8]?,
                               uidValidity: UInt64, uid: UInt64, chunkBytes: Int, maxTextBytes: Int)
        -> (item: MailItem, text: String, firstChunkBytes: Int) {
        var text = ""
        if let textPart, let rawText {
            let decoded = MailText.decode(MailText.decodeTransfer(rawText, encoding: textPart.encoding), charset: textPart.charset)
            text = textPart.type == "text/html" ? MailText.plainText(fromHTML: decoded) : decoded
        }
        // Lines as the device shows them; then the cap.
        text = MailText.prefix(clean(text.replacingOccurrences(of: "\r\n", with: "\n")), maxBytes: maxTextBytes)
        let first = MailText.chunk(text, offset: 0, maxBytes: chunkBytes)
        let attachments = MailStructure.attachments(parts, text: textPart).map {
            MailItem.Attachment(name: clean($0.name ?? ""), type: clean($0.type), size: $0.size)
        }
        let item = MailItem(messageID: messageID(envelope.messageID, uidValidity: uidValidity, uid: uid), from: clean(envelope.from.first ?? ""),
                            to: envelope.to.map(clean), cc: envelope.cc.map(clean), subject: clean(envelope.subject),
                            date: clean(envelope.date), body: first.body, moreAvailable: first.moreAvailable, attachments: attachments)
        return (item, text, first.end)
    }

    /// The mail's Message-ID, or a synthetic one when it has none or one no store should
    /// key on: longer than RFC 5322's 998, or with spaces or control characters.
    static func messageID(_ id: String, uidValidity: UInt64, uid: UInt64) -> String {
        guard MailItem.isValidMessageID(id) else { return syntheticMessageID(uidValidity: uidValidity, uid: uid) }
        return id
    }

    /// Text without NUL (which PostgreSQL's text refuses, and no device shows). Scalar by
    /// scalar: Foundation's `replacingOccurrences` leaves a NUL that a combining mark
    /// follows (it will not split what it takes for one composed character).
    static func clean(_ s: String) -> String {
        guard s.utf8.contains(0) else { return s }
        var scalars = String.UnicodeScalarView()
        scalars.append(contentsOf: s.unicodeScalars.lazy.filter { $0 != "\0" })
        return String(scalars)
    }
}

/// IMAP's INTERNALDATE, `"05-Dec-2026 20:45:38 +0000"` (RFC 9051 `date-time`).
public enum IMAPDate {
    public static func parse(_ s: String) -> Date? {
        let fields = s.trimmingCharacters(in: .whitespaces).split(separator: " ")
        guard fields.count == 3 else { return nil }
        let dmy = fields[0].split(separator: "-"), hms = fields[1].split(separator: ":"), zone = fields[2]
        let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        guard dmy.count == 3, hms.count == 3, zone.count == 5, let day = Int(dmy[0]), let year = Int(dmy[2]),
              let month = months.firstIndex(of: dmy[1].lowercased()).map({ $0 + 1 }),
              let h = Int(hms[0]), let m = Int(hms[1]), let sec = Int(hms[2]),
              let zh = Int(zone.dropFirst().prefix(2)), let zm = Int(zone.suffix(2)), zone.first == "+" || zone.first == "-",
              (1...31).contains(day), (0...23).contains(h), (0...59).contains(m), (0...60).contains(sec) else { return nil }
        var c = DateComponents()
        (c.year, c.month, c.day, c.hour, c.minute, c.second) = (year, month, day, h, m, sec)
        c.timeZone = TimeZone(secondsFromGMT: (zone.first == "-" ? -1 : 1) * (zh * 3600 + zm * 60))
        return Calendar(identifier: .gregorian).date(from: c)
    }

    /// `05-Dec-2026`, for `SEARCH SINCE` (day precision, in the server's zone: search a
    /// day early and filter by INTERNALDATE).
    public static func searchDay(_ date: Date) -> String {
        let c = Calendar(identifier: .gregorian).dateComponents(in: TimeZone(secondsFromGMT: 0)!, from: date)
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        return "\(c.day!)-\(months[c.month! - 1])-\(c.year!)"
    }
}
