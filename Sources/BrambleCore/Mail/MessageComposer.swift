import Foundation

/// What a device asked to send: a new mail, or the user's part of a reply or forward.
public struct OutgoingDraft: Sendable, Equatable {
    /// The user: From, and the envelope sender.
    public var fromAddress: String
    /// The user's name for From; nil or empty for the bare address.
    public var fromName: String?
    /// Recipients, each already through `MailAddress.parse` (the same lists go to RCPT).
    /// An empty `to` or `cc` writes no To or Cc header.
    public var to: [String]
    public var cc: [String]
    /// As the user typed it. For a reply or a forward, empty means "from the original"
    /// (`replySubject`, `forwardSubject`).
    public var subject: String
    /// What the user wrote, with any line endings.
    public var body: String
    /// `<…@…>`, chosen by the caller (`OutgoingMessageID`), so a resend carries the same one.
    public var messageID: String
    /// Written as Date, in +0000.
    public var date: Date

    public init(fromAddress: String, fromName: String? = nil, to: [String], cc: [String] = [], subject: String, body: String,
                messageID: String, date: Date) {
        (self.fromAddress, self.fromName, self.to, self.cc) = (fromAddress, fromName, to, cc)
        (self.subject, self.body, self.messageID, self.date) = (subject, body, messageID, date)
    }
}

/// The mail a reply or forward is about, as read from the user's mailbox.
public struct OriginalMail: Sendable, Equatable {
    /// `<…>`, or "" if it had none (a reply then has no In-Reply-To or References).
    public var messageID: String
    /// Its References header's value, unfolded, as it was.
    public var references: String?
    /// Decoded.
    public var subject: String
    /// Addr-specs (`MailAddress.parse` is applied again when choosing reply recipients).
    public var from: [String]
    public var replyTo: [String]
    public var to: [String]
    public var cc: [String]
    /// Its sender as people read it, `René <rene@outside.test>`: for "On …, … wrote:" and
    /// the forwarded header block.
    public var fromDisplay: String
    /// As in its Date header.
    public var date: String
    /// Its whole decoded text part.
    public var text: String
    /// Each attachment part as it was in the original, for a forward.
    public var attachments: [RawPart]

    public init(messageID: String, references: String? = nil, subject: String, from: [String], replyTo: [String] = [], to: [String],
                cc: [String] = [], fromDisplay: String, date: String, text: String, attachments: [RawPart] = []) {
        (self.messageID, self.references, self.subject) = (messageID, references, subject)
        (self.from, self.replyTo, self.to, self.cc) = (from, replyTo, to, cc)
        (self.fromDisplay, self.date, self.text, self.attachments) = (fromDisplay, date, text, attachments)
    }
}

/// One MIME part of a stored message, still transfer-encoded: what IMAP's `BODY[n.MIME]`
/// (its header, with or without the blank line after it) and `BODY[n]` return.
public struct RawPart: Sendable, Equatable {
    public var mimeHeader: [UInt8]
    public var body: [UInt8]

    public init(mimeHeader: [UInt8], body: [UInt8]) { (self.mimeHeader, self.body) = (mimeHeader, body) }
}

/// The RFC 5322 messages a device sends through the server: a new mail, a reply, a
/// forward. Pure: bytes in, bytes out, no clock (the draft carries its date) and no
/// randomness (a forward's boundary is a hash), so a resend is the same message.
///
/// Every output uses CRLF and nothing else, keeps header lines within 78 bytes where it
/// can and always within 998, and carries the text as UTF-8 quoted-printable (≤ 76-byte
/// lines). Free text bound for a header (subject, names, dates) loses its control
/// characters, so nothing a device or an original's sender writes can start a header of
/// its own. Dot-stuffing is left to `SMTPData`.
public enum MessageComposer {
    /// A new mail.
    public static func compose(_ draft: OutgoingDraft) -> [UInt8] {
        message(draft, subject: draft.subject, threading: "", text: Array(draft.body.utf8), attachments: [])
    }

    /// A reply: the user's text, a blank line, "On DATE, FROM wrote:" and the original's
    /// whole text quoted with "> ". In-Reply-To and References thread it under the
    /// original. No attachments, as desktop clients reply. `draft.to` and `draft.cc` are
    /// the caller's (see `replyRecipients`).
    public static func reply(_ draft: OutgoingDraft, to original: OriginalMail) -> [UInt8] {
        var text = userText(draft.body)
        let date = oneLine(original.date).trimmingCharacters(in: .whitespaces), from = oneLine(original.fromDisplay)
        let attribution = date.isEmpty ? "\(from) wrote:\n" : "On \(date), \(from) wrote:\n"  // a mail without Date
        text += Array(attribution.utf8)
        text += quoted(original.text)
        var threading = ""
        // An original without a usable ID cannot be pointed at; its own References alone
        // would thread the reply under its parent instead, so neither header is written.
        if let id = usableMessageID(original.messageID) {
            threading = field("In-Reply-To", [id]) + field("References", references(original.references ?? "", then: id))
        }
        let subject = draft.subject.isEmpty ? replySubject(original.subject) : draft.subject
        return message(draft, subject: subject, threading: threading, text: text, attachments: [])
    }

    /// A forward: the user's text, a "Forwarded message" header block and the original's
    /// whole text in one text part, then each of its attachments copied as it was (only
    /// line endings made CRLF). Without attachments, a single text part.
    public static func forward(_ draft: OutgoingDraft, of original: OriginalMail) -> [UInt8] {
        var block = "---------- Forwarded message ---------\n"
        block += "From: \(oneLine(original.fromDisplay))\n"
        block += "Date: \(oneLine(original.date))\n"
        block += "Subject: \(oneLine(original.subject))\n"
        block += "To: \(original.to.map(oneLine).joined(separator: ", "))\n"
        if !original.cc.isEmpty { block += "Cc: \(original.cc.map(oneLine).joined(separator: ", "))\n" }
        let text = userText(draft.body) + Array((block + "\n" + original.text).utf8)
        let subject = draft.subject.isEmpty ? forwardSubject(original.subject) : draft.subject
        return message(draft, subject: subject, threading: "", text: text, attachments: original.attachments)
    }

    /// Whom a reply goes to. To: the original's Reply-To, else its From. With `all`, Cc:
    /// its To and Cc. The user and repeats (case-insensitive, whole address) are left out,
    /// and so is anything `MailAddress.parse` refuses (the original's sender wrote these).
    /// A reply to the user's own mail goes to that mail's To; to a mail the user sent
    /// only to themselves, back to the user.
    public static func replyRecipients(to original: OriginalMail, user: String, all: Bool) -> (to: [String], cc: [String]) {
        let me = MailAddress.parse(user) ?? user.trimmingCharacters(in: .whitespaces)
        var seen: Set<String> = [me.lowercased()]
        func fresh(_ addresses: [String]) -> [String] {
            addresses.compactMap(MailAddress.parse).filter { seen.insert($0.lowercased()).inserted }
        }
        var to = fresh(original.replyTo)
        if to.isEmpty { to = fresh(original.from) }  // no Reply-To, or none that parses
        if to.isEmpty { to = fresh(original.to) }
        let cc = all ? fresh(original.to + original.cc) : []
        if to.isEmpty && cc.isEmpty { to = [me] }
        return (to, cc)
    }

    /// `s` with one "Re: " in front, however many "Re:", "RE:" or "Re :" it began with.
    public static func replySubject(_ s: String) -> String { "Re: " + droppingPrefixes(s, ["re"]) }

    /// `s` with one "Fwd: " in front, in place of any "Fwd:" or "Fw:" it began with.
    public static func forwardSubject(_ s: String) -> String { "Fwd: " + droppingPrefixes(s, ["fwd", "fw"]) }

    // MARK: Assembly

    /// The header, then the text part, then (for a forward) the attachments.
    static func message(_ draft: OutgoingDraft, subject: String, threading: String, text: [UInt8], attachments: [RawPart]) -> [UInt8] {
        var head = mailbox("From", address: draft.fromAddress, name: draft.fromName)
        if !draft.to.isEmpty { head += addressList("To", draft.to) }
        if !draft.cc.isEmpty { head += addressList("Cc", draft.cc) }
        head += unstructured("Subject", subject)
        head += field("Date", [rfc5322Date(draft.date)])
        head += field("Message-ID", [headerToken(draft.messageID)])
        head += threading
        head += "MIME-Version: 1.0\r\n"
        let textHeader = "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"
        let body = quotedPrintable(text)
        guard !attachments.isEmpty else { return Array((head + textHeader + "\r\n").utf8) + body }

        // Each part's header ends in exactly one CRLF and the blank line is ours, whether
        // or not BODY[n.MIME] included it.
        let parts = attachments.map { part in
            var header = crlf(part.mimeHeader)
            while let last = header.last, last == 0x0A || last == 0x0D { header.removeLast() }
            if !header.isEmpty { header += [0x0D, 0x0A] }
            return (header: header, body: crlf(part.body))
        }
        let boundary = boundary(avoiding: [body] + parts.flatMap { [$0.header, $0.body] }, seed: draft.messageID)
        var out = Array((head + "Content-Type: multipart/mixed;\r\n boundary=\"\(boundary)\"\r\n\r\n").utf8)
        // The CRLF before "--boundary" belongs to the delimiter (RFC 2046 §5.1.1): the
        // text's last line ending serves as it, and an attachment's body gets one of its
        // own, so the body's bytes end where they ended.
        out += Array("--\(boundary)\r\n\(textHeader)\r\n".utf8) + body
        for part in parts {
            out += Array("--\(boundary)\r\n".utf8) + part.header + [0x0D, 0x0A] + part.body + [0x0D, 0x0A]
        }
        return out + Array("--\(boundary)--\r\n".utf8)
    }

    /// The user's text and a blank line after it (nothing if there is no text).
    static func userText(_ body: String) -> [UInt8] {
        let bytes = Array(body.utf8)
        guard let last = bytes.last else { return [] }
        return bytes + (last == 0x0A || last == 0x0D ? [0x0A] : [0x0A, 0x0A])
    }

    /// Every line of `text` behind "> " (an empty one behind ">", so no line ends in a space).
    static func quoted(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count + text.utf8.count / 20 + 16)
        for line in lines(Array(text.utf8)) {
            out += line.isEmpty ? [0x3E] : [0x3E, 0x20] + line
            out.append(0x0A)
        }
        return out
    }

    /// `s` without leading `prefixes` (each a word before a colon, any case, spaces
    /// allowed before the colon), however many there are, and the spaces after them.
    static func droppingPrefixes(_ s: String, _ prefixes: [String]) -> String {
        var rest = Substring(s).drop(while: \.isWhitespace)
        next: while true {
            for word in prefixes where rest.count > word.count && zip(rest, word).allSatisfy({ $0.lowercased() == String($1) }) {
                let after = rest.dropFirst(word.count).drop { $0 == " " || $0 == "\t" }
                if after.first == ":" {
                    rest = after.dropFirst().drop(while: \.isWhitespace)
                    continue next
                }
            }
            return String(rest)
        }
    }
}
