import Foundation
import Testing

@testable import BrambleCore

/// The messages a device sends through the server: exact for a plain send, and for the
/// rest read back the way a mail reader would (unfold, decode) and compared to what went in.
@Suite struct MessageComposerTests {
    static let date = Date(timeIntervalSince1970: 1_796_464_807)  // Sat, 5 Dec 2026 10:00:07 UTC

    func draft(subject: String = "Lunch on Friday?", body: String = "Hi", to: [String] = ["bob@example.test"], cc: [String] = [],
               name: String? = "Alice Example") -> OutgoingDraft {
        OutgoingDraft(fromAddress: "alice@corp.test", fromName: name, to: to, cc: cc, subject: subject, body: body,
                      messageID: "<bramble.2A00F00D.7@corp.test>", date: Self.date)
    }

    func original(text: String = "See you.\n", attachments: [RawPart] = []) -> OriginalMail {
        OriginalMail(messageID: "<m1@outside.test>", references: "<root@outside.test>\r\n <mid@outside.test>", subject: "Grüße",
                     from: ["rene@outside.test"], to: ["alice@corp.test", "bob@example.test"], cc: ["carol@example.test"],
                     fromDisplay: "René <rene@outside.test>", date: "Fri, 4 Dec 2026 18:30:00 +0100", text: text, attachments: attachments)
    }

    @Test func aPlainSendIsExactlyThisMessage() {
        let body = "Hi Bob,\nare we still on for lunch = noon? \n\nAlice"
        let message = MessageComposer.compose(draft(body: body, to: ["bob@example.test", "carol@example.test"]))
        let expected = "From: \"Alice Example\" <alice@corp.test>\r\n"
            + "To: bob@example.test, carol@example.test\r\n"
            + "Subject: Lunch on Friday?\r\n"
            + "Date: Sat, 5 Dec 2026 10:00:07 +0000\r\n"
            + "Message-ID: <bramble.2A00F00D.7@corp.test>\r\n"
            + "MIME-Version: 1.0\r\n"
            + "Content-Type: text/plain; charset=utf-8\r\n"
            + "Content-Transfer-Encoding: quoted-printable\r\n"
            + "\r\n"
            + "Hi Bob,\r\n"
            + "are we still on for lunch =3D noon?=20\r\n"
            + "\r\n"
            + "Alice\r\n"
        #expect(String(decoding: message, as: UTF8.self) == expected)
        expectWellFormed(message)
    }

    @Test func ccIsWrittenWhenThereIsOneAndABareAddressWithoutAName() {
        let message = MessageComposer.compose(draft(cc: ["carol@example.test"], name: nil))
        let h = headers(message)
        #expect(h["from"] == "alice@corp.test" && h["cc"] == "carol@example.test" && h["to"] == "bob@example.test")
        #expect(headers(MessageComposer.compose(draft()))["cc"] == nil)
        #expect(headers(MessageComposer.compose(draft(name: "Bob \"the builder\" \\o/")))["from"] == "\"Bob \\\"the builder\\\" \\\\o/\" <alice@corp.test>")
    }

    @Test func datesAreRFC5322InUTC() {
        #expect(MessageComposer.rfc5322Date(Date(timeIntervalSince1970: 0)) == "Thu, 1 Jan 1970 00:00:00 +0000")
        #expect(MessageComposer.rfc5322Date(Date(timeIntervalSince1970: 1_796_464_807.9)) == "Sat, 5 Dec 2026 10:00:07 +0000")
        #expect(MessageComposer.rfc5322Date(Date(timeIntervalSince1970: 951_782_400)) == "Tue, 29 Feb 2000 00:00:00 +0000")
    }

    @Test func nonASCIISubjectsAndNamesAreEncodedWordsThatFoldAndDecodeBack() {
        let subjects = [
            "Grüße aus Zürich",
            String(repeating: "Grüße aus Zürich — Ελληνικά και 日本語のテキスト 😀 ", count: 6),
            String(repeating: "x", count: 300),  // ASCII, but no place to fold: encoded so it can be
            "Looks like =?UTF-8?B?SGk=?= but is what the user typed",
            "a  b   spaced",
        ]
        for subject in subjects {
            let message = MessageComposer.compose(draft(subject: subject, name: "René Müller-Lüdenscheidt, Ελένη"))
            expectWellFormed(message)
            let h = headers(message)
            #expect(MailText.decodeHeader(h["subject"] ?? "") == subject.trimmingCharacters(in: .whitespaces), "its ends trimmed: \(subject)")
            #expect(h["from"].map(MailText.decodeHeader) == "René Müller-Lüdenscheidt, Ελένη <alice@corp.test>")
            #expect(headerLines(message).allSatisfy { $0.utf8.count <= 78 }, "\(headerLines(message))")
            #expect(headerLines(message).allSatisfy { $0.utf8.allSatisfy { $0 < 0x80 } }, "headers are ASCII")
        }
        // Plain ASCII folds at spaces and stays readable.
        let long = (1...30).map { "word\($0)" }.joined(separator: " ")
        let message = MessageComposer.compose(draft(subject: long))
        #expect(headers(message)["subject"] == long && !String(decoding: message, as: UTF8.self).contains("=?"))
        #expect(headerLines(message).filter { $0.hasPrefix(" ") }.count >= 2)
    }

    @Test func aLineBreakInASubjectNameOrAddressCannotStartAHeader() {
        let hostile = ["Hello\r\nBcc: spy@evil.test", "Hello\nBcc: spy@evil.test", "Hello\rBcc: spy@evil.test", "Grüße\r\nBcc: spy@evil.test",
                       "x\u{0}\r\n\r\nBcc: spy@evil.test", "\r\n\u{301}Bcc: spy@evil.test"]
        for text in hostile {
            let d = draft(subject: text, to: ["bob@example.test\r\nBcc: spy@evil.test"], name: text)
            for message in [MessageComposer.compose(d), MessageComposer.reply(d, to: original()), MessageComposer.forward(d, of: original())] {
                expectWellFormed(message)
                let lines = headerLines(message)
                #expect(!lines.contains { $0.lowercased().hasPrefix("bcc") }, "\(text.debugDescription): \(lines)")
                // Every header line is a known field or a continuation.
                let known = ["From:", "To:", "Cc:", "Subject:", "Date:", "Message-ID:", "In-Reply-To:", "References:", "MIME-Version:", "Content-Type:",
                             "Content-Transfer-Encoding:"]
                #expect(lines.allSatisfy { line in line.hasPrefix(" ") || known.contains { line.hasPrefix($0) } }, "\(lines)")
                #expect(!headers(message)["subject"]!.utf8.contains(0))
            }
        }
        #expect(MailText.decodeHeader(headers(MessageComposer.compose(draft(subject: "Grüße\r\nBcc: x@y")))["subject"]!) == "Grüße Bcc: x@y")
    }

    @Test func nulsAreDroppedFromTheBodyAndLongLinesGetSoftBreaks() throws {
        let longLine = String(repeating: "0123456789é ", count: 100)
        let message = MessageComposer.compose(draft(body: "a\u{0}b\n\(longLine)\n\u{0}"))
        expectWellFormed(message)
        let body = try #require(bodyLines(message))
        #expect(body.allSatisfy { $0.count <= 76 }, "quoted-printable lines")
        #expect(!message.contains(0))
        #expect(decodedText(message) == "ab\r\n\(longLine)\r\n")
    }

    @Test func aReplyThreadsUnderTheOriginalAndQuotesItsWholeText() throws {
        var lines: [String] = []
        var n = 0
        while lines.joined().utf8.count < 10_000 {
            n += 1
            switch n % 7 {
            case 0: lines.append("")
            case 1: lines.append("Zeile \(n): Grüße aus Zürich — Ελληνικά 日本語 😀 = 100% sicher")
            case 2: lines.append(String(repeating: "lang ünd läng ", count: 20))  // 300 bytes: soft breaks
            case 3: lines.append("> already quoted \(n)")
            case 4: lines.append(".a dot first, then trailing space ")
            case 5: lines.append("From the start of a line\t")
            default: lines.append("\(n)")
            }
        }
        // Mixed line endings, as real mail's decoded text has them.
        let text = lines.enumerated().map { $0.element + ($0.offset % 3 == 0 ? "\r\n" : "\n") }.joined()
        #expect(text.utf8.count > 10_000)
        let d = draft(subject: "", body: "Yes, see you there.\nA.", to: ["rene@outside.test"])
        let message = MessageComposer.reply(d, to: original(text: text))
        expectWellFormed(message)
        #expect(headerLines(message).allSatisfy { $0.utf8.count <= 78 })
        let h = headers(message)
        #expect(h["in-reply-to"] == "<m1@outside.test>")
        #expect(h["references"] == "<root@outside.test> <mid@outside.test> <m1@outside.test>")
        #expect(MailText.decodeHeader(h["subject"] ?? "") == "Re: Grüße", "an empty subject comes from the original")
        #expect(h["content-type"] == "text/plain; charset=utf-8")
        #expect(try #require(bodyLines(message)).allSatisfy { $0.count <= 76 })
        let quoted = lines.map { $0.isEmpty ? ">" : "> " + $0 }.joined(separator: "\r\n")
        let expected = "Yes, see you there.\r\nA.\r\n\r\nOn Fri, 4 Dec 2026 18:30:00 +0100, René <rene@outside.test> wrote:\r\n" + quoted + "\r\n"
        let decoded = decodedText(message)
        #expect(decoded == expected)
        if decoded != expected, let diff = zip(decoded.utf8, expected.utf8).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset {
            Issue.record("first difference at byte \(diff): \(String(decoding: Array(decoded.utf8).dropFirst(max(0, diff - 40)).prefix(80), as: UTF8.self).debugDescription)")
        }
    }

    @Test func aReplyToMailWithoutAnIDOrDateHasNoThreadingHeadersAndAVeryLongThreadIsCapped() {
        var o = original()
        o.messageID = ""
        o.date = ""
        let bare = MessageComposer.reply(draft(subject: "Re: x"), to: o)
        let plain = headers(bare)
        #expect(plain["in-reply-to"] == nil && plain["references"] == nil && plain["subject"] == "Re: x")
        #expect(decodedText(bare) == "Hi\r\n\r\nRené <rene@outside.test> wrote:\r\n> See you.\r\n", "no Date, no \"On ,\"")

        o.messageID = "<m99@outside.test>"
        o.references = (1...80).map { "<thread-message-number-\($0)@a-rather-long-host-name.outside.test>" }.joined(separator: "\r\n ") + " junk <bad id@x>"
        let message = MessageComposer.reply(draft(), to: o)
        expectWellFormed(message)
        #expect(headerLines(message).allSatisfy { $0.utf8.count <= 78 })
        let ids = headers(message)["references"]!.split(separator: " ").map(String.init)
        #expect(ids.count == 40)
        #expect(ids.first == "<thread-message-number-1@a-rather-long-host-name.outside.test>", "the root stays")
        #expect(ids.dropLast().last == "<thread-message-number-80@a-rather-long-host-name.outside.test>" && ids.last == "<m99@outside.test>")
    }

    @Test func replyAndForwardSubjectsGetTheirPrefixOnce() {
        #expect(MessageComposer.replySubject("Hello") == "Re: Hello")
        #expect(MessageComposer.replySubject("Re: Hello") == "Re: Hello")
        #expect(MessageComposer.replySubject("RE: Re: re :Hello") == "Re: Hello")
        #expect(MessageComposer.replySubject("  Re:Hello") == "Re: Hello")
        #expect(MessageComposer.replySubject("Fwd: Hello") == "Re: Fwd: Hello")
        #expect(MessageComposer.replySubject("Regarding: x") == "Re: Regarding: x")
        #expect(MessageComposer.replySubject("Re") == "Re: Re")
        #expect(MessageComposer.replySubject("Ré: x") == "Re: Ré: x")
        #expect(MessageComposer.forwardSubject("Hello") == "Fwd: Hello")
        #expect(MessageComposer.forwardSubject("FW: fwd: Hello") == "Fwd: Hello")
        #expect(MessageComposer.forwardSubject("Re: Hello") == "Fwd: Re: Hello")
        #expect(MessageComposer.forwardSubject("Fwx: y") == "Fwd: Fwx: y")
    }

    @Test func replyRecipientsAreTheSenderOrEveryoneButTheUser() {
        let o = OriginalMail(messageID: "<m@x>", subject: "s", from: ["rene@outside.test"],
                             to: ["ALICE@corp.test", "bob@example.test"], cc: ["Carol@Example.TEST", "BOB@example.test", "rene@OUTSIDE.test"],
                             fromDisplay: "René", date: "d", text: "t")
        #expect(MessageComposer.replyRecipients(to: o, user: "alice@corp.test", all: false) == (["rene@outside.test"], []))
        let all = MessageComposer.replyRecipients(to: o, user: "alice@corp.test", all: true)
        #expect(all.to == ["rene@outside.test"] && all.cc == ["bob@example.test", "Carol@example.test"])

        var listMail = o
        listMail.replyTo = ["list@lists.test"]
        #expect(MessageComposer.replyRecipients(to: listMail, user: "Alice@Corp.test", all: false).to == ["list@lists.test"])
        listMail.replyTo = ["list@lists.test\r\nBcc: spy@evil.test", "\"List\" <list@lists.test>"]
        #expect(MessageComposer.replyRecipients(to: listMail, user: "alice@corp.test", all: false).to == ["rene@outside.test"],
                "a Reply-To of nothing usable: the sender")

        var own = o
        own.from = ["alice@corp.test"]
        let toOwn = MessageComposer.replyRecipients(to: own, user: "alice@corp.test", all: true)
        #expect(toOwn.to == ["bob@example.test"] && toOwn.cc == ["Carol@example.test", "rene@outside.test"], "a reply to one's own mail goes to its To")

        let toSelf = OriginalMail(messageID: "<m@x>", subject: "s", from: ["alice@corp.test"], to: ["alice@corp.test"], fromDisplay: "",
                                  date: "", text: "")
        #expect(MessageComposer.replyRecipients(to: toSelf, user: "alice@corp.test", all: true) == (["alice@corp.test"], []))
    }

    @Test func aForwardCopiesEveryAttachmentByteForByte() throws {
        var generator = SplitMix64(seed: 14)  // the same attachment on every run
        let random = (0..<200 * 1024).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let base64 = Array(Data(random).base64EncodedString().utf8)
        let base64Body = stride(from: 0, to: base64.count, by: 76).flatMap { base64[$0..<min($0 + 76, base64.count)] + [0x0D, 0x0A] }
        let binaryHeader = "Content-Type: application/octet-stream; name=\"r.bin\"\r\n"
            + "Content-Disposition: attachment;\r\n filename=\"r.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        let binary = RawPart(mimeHeader: Array(binaryHeader.utf8), body: base64Body)
        // BODY[n.MIME] without its blank line and with bare LFs; an 8-bit Latin-1 body
        // that holds things that look like delimiters.
        let notesHeader = "Content-Type: text/plain; charset=iso-8859-1\nContent-Disposition: attachment; filename=\"notes.txt\""
        let notes = RawPart(mimeHeader: Array(notesHeader.utf8), body: [0x63, 0x61, 0x66, 0xE9] + Array("\r\n--\r\n--=_bramble_\r\n=_\r\nend".utf8))
        let d = draft(subject: "", body: "FYI", to: ["dave@example.test"])
        let message = MessageComposer.forward(d, of: original(text: "The report is attached.\nRené", attachments: [binary, notes]))
        expectWellFormed(message)
        #expect(message == MessageComposer.forward(d, of: original(text: "The report is attached.\nRené", attachments: [binary, notes])), "deterministic")
        #expect(headerLines(message).allSatisfy { $0.utf8.count <= 78 })
        let h = headers(message)
        #expect(MailText.decodeHeader(h["subject"] ?? "") == "Fwd: Grüße")
        let contentType = try #require(h["content-type"])
        #expect(contentType.hasPrefix("multipart/mixed; boundary=\""))
        let boundary = String(contentType.split(separator: "\"")[1])

        // Read back as a MIME reader does: the parts lie between "CRLF--boundary" lines.
        let pieces = split(message, on: Array("\r\n--\(boundary)".utf8))
        try #require(pieces.count == 5, "preamble, three parts, epilogue")
        #expect(pieces[4] == Array("--\r\n".utf8))
        let parts = try pieces[1...3].map { piece in
            #expect(piece.starts(with: [0x0D, 0x0A]))
            let part = Array(piece.dropFirst(2))
            let end = try #require(firstIndex(of: [0x0D, 0x0A, 0x0D, 0x0A], in: part))
            return (header: Array(part[..<(end + 2)]), body: Array(part[(end + 4)...]))
        }
        #expect(parts[1].header == binary.mimeHeader.dropLast(2).map { $0 })
        #expect(parts[1].body == binary.body, "the binary attachment, byte for byte")
        #expect(MailText.base64(parts[1].body) == random)
        #expect(parts[2].header == Array("Content-Type: text/plain; charset=iso-8859-1\r\nContent-Disposition: attachment; filename=\"notes.txt\"\r\n".utf8))
        #expect(parts[2].body == notes.body)

        #expect(String(decoding: parts[0].header, as: UTF8.self) == "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n")
        let text = String(decoding: MailText.quotedPrintable(parts[0].body), as: UTF8.self)
        #expect(text == "FYI\r\n\r\n---------- Forwarded message ---------\r\nFrom: René <rene@outside.test>\r\nDate: Fri, 4 Dec 2026 18:30:00 +0100\r\n"
            + "Subject: Grüße\r\nTo: alice@corp.test, bob@example.test\r\nCc: carol@example.test\r\n\r\nThe report is attached.\r\nRené")
    }

    @Test func aForwardWithoutAttachmentsIsOneTextPart() {
        let message = MessageComposer.forward(draft(subject: "Fwd: look", body: ""), of: original())
        expectWellFormed(message)
        let h = headers(message)
        #expect(h["content-type"] == "text/plain; charset=utf-8" && h["subject"] == "Fwd: look" && h["in-reply-to"] == nil)
        #expect(decodedText(message).hasPrefix("---------- Forwarded message ---------\r\nFrom: René <rene@outside.test>\r\n"))
        #expect(decodedText(message).hasSuffix("\r\n\r\nSee you.\r\n"))
    }

    @Test func theBoundaryIsInNoPart() {
        let parts = [Array("=_bramble_ and more".utf8), [0, 1, 2]]
        let boundary = MessageComposer.boundary(avoiding: parts, seed: "<x@y>")
        #expect(boundary.hasPrefix("=_bramble_") && boundary.utf8.count == 34)
        #expect(!parts.contains { MessageComposer.occurs(Array(boundary.utf8), in: $0) })
        #expect(MessageComposer.occurs(Array("abc".utf8), in: Array("xxabcxx".utf8)) && !MessageComposer.occurs(Array("abd".utf8), in: Array("ab".utf8)))
    }

    // MARK: Reading messages back

    /// Every line ends in CRLF, no CR or LF stands alone, no line passes 998 bytes.
    func expectWellFormed(_ message: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
        var bad: [String] = []
        var lineStart = 0
        for i in message.indices {
            if message[i] == 0x0D, i + 1 >= message.count || message[i + 1] != 0x0A { bad.append("bare CR at \(i)") }
            if message[i] == 0x0A {
                if i == 0 || message[i - 1] != 0x0D { bad.append("bare LF at \(i)") }
                if i - 1 - lineStart > 998 { bad.append("a \(i - 1 - lineStart)-byte line at \(lineStart)") }
                lineStart = i + 1
            }
        }
        if lineStart != message.count { bad.append("no CRLF at the end") }
        #expect(bad.isEmpty, "\(bad.prefix(5))", sourceLocation: sourceLocation)
    }

    func headerLines(_ message: [UInt8]) -> [String] {
        let end = firstIndex(of: [0x0D, 0x0A, 0x0D, 0x0A], in: message) ?? message.count
        return String(decoding: message[..<end], as: UTF8.self).components(separatedBy: "\r\n")
    }

    /// Header fields by lower-case name, unfolded.
    func headers(_ message: [UInt8]) -> [String: String] {
        var out: [String: String] = [:]
        var name = ""
        for line in headerLines(message) {
            if line.hasPrefix(" ") || line.hasPrefix("\t") {
                out[name, default: ""] += line
            } else if let colon = line.firstIndex(of: ":") {
                name = line[..<colon].lowercased()
                out[name] = String(line[line.index(after: colon)...].drop { $0 == " " })
            }
        }
        return out
    }

    func bodyLines(_ message: [UInt8]) -> [ArraySlice<UInt8>]? {
        guard let end = firstIndex(of: [0x0D, 0x0A, 0x0D, 0x0A], in: message) else { return nil }
        return message[(end + 4)...].split(separator: 0x0A, omittingEmptySubsequences: false).dropLast().map { $0.dropLast() }
    }

    /// A single-part message's text, quoted-printable decoded.
    func decodedText(_ message: [UInt8]) -> String {
        guard let end = firstIndex(of: [0x0D, 0x0A, 0x0D, 0x0A], in: message) else { return "" }
        return String(decoding: MailText.quotedPrintable(Array(message[(end + 4)...])), as: UTF8.self)
    }

    func firstIndex(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        return (0...(haystack.count - needle.count)).first { haystack[$0..<($0 + needle.count)].elementsEqual(needle) }
    }

    func split(_ bytes: [UInt8], on separator: [UInt8]) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var rest = bytes[...]
        while let i = firstIndex(of: separator, in: Array(rest)) {
            out.append(Array(rest.prefix(i)))
            rest = rest.dropFirst(i + separator.count)
        }
        return out + [Array(rest)]
    }
}
