@testable import BrambleTestSupport
import BrambleCore
import BrambleNet
import Foundation
import Testing

/// The Messaging Agent's mail clients against the real servers (scripts/mail-private):
/// `SMTPSession` sends through Postfix, `IMAPSession` logs in as the service account
/// (a Dovecot master user) and reads the watermarks, the envelope, the structure and a
/// bounded range of the text part.
@Suite(.serialized) struct MailClientTests {
    func withMailHost(_ body: (TestMailHost) async throws -> Void) async throws {
        let dir = NSTemporaryDirectory() + "bramble-test-mailclient-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let host = try TestMailHost.start(in: dir)
        defer { host.stop() }
        try await body(host)
    }

    /// `body` on `user`'s `folder`, opened as the service account once it holds mail (LMTP
    /// delivery follows the 250; up to 5 s), or at once unless `waiting`.
    func inFolder<T: Sendable>(_ host: TestMailHost, _ user: String, _ folder: String = "INBOX", waiting: Bool = true,
                               _ body: (inout IMAPSession, IMAPSession.Selected) async throws -> T) async throws -> T {
        try await IMAPSession.with(to: host.imap, tls: host.tls) { imap in
            try await imap.login(user: "\(user)*\(host.serviceUser)", password: try host.servicePassword)
            var selected = try await imap.select(folder, readOnly: true)
            for _ in 0..<(waiting ? 50 : 0) where selected.exists == 0 {
                try await Task.sleep(for: .milliseconds(100))
                selected = try await imap.select(folder, readOnly: true)
            }
            let result = try await body(&imap, selected)
            await imap.logout()
            return result
        }
    }

    @Test func aMessageSentByTheSMTPClientIsReadByTheIMAPClientWithItsEnvelopeStructureAndText() async throws {
        try await withMailHost { host in
            let messageID = "<\(UUID().uuidString)@bramble.test>"
            let body = String(repeating: "Ceci est un café. ", count: 400)  // 7.2 KB of Latin-1 text, quoted-printable
            let message = """
                From: =?UTF-8?Q?Ren=C3=A9?= <rene@outside.test>
                To: demo1@example.test
                Cc: demo2@example.test
                Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=
                Message-ID: \(messageID)
                MIME-Version: 1.0
                Content-Type: multipart/mixed; boundary="b1"

                --b1
                Content-Type: text/plain; charset=iso-8859-1
                Content-Transfer-Encoding: quoted-printable

                \(body.replacingOccurrences(of: "é", with: "=E9"))
                --b1
                Content-Type: application/pdf; name="a.pdf"
                Content-Disposition: attachment; filename="a.pdf"
                Content-Transfer-Encoding: base64

                JVBERi0xLjQK
                --b1--
                """
            let reply = try await SMTPSession.with(to: host.smtp, tls: host.tls) { smtp in
                try await smtp.send(from: "rene@outside.test", to: ["demo1@example.test"], message: message)
            }
            #expect(reply.code == 250, "Postfix queued it: \(reply.text)")
            // A recipient that does not exist is refused with a permanent failure.
            await #expect(throws: SMTPSession.Refused.self) {
                try await SMTPSession.with(to: host.smtp, tls: host.tls) { smtp in try await smtp.send(from: "a@outside.test", to: ["nobody@example.test"], message: "Subject: x\n\nx") }
            }

            try await IMAPSession.with(to: host.imap, tls: host.tls) { imap in
                try await imap.login(user: "demo1@example.test*\(host.serviceUser)", password: try host.servicePassword)
                var selected = try await imap.select("INBOX", readOnly: true)
                for _ in 0..<50 where selected.exists == 0 {  // LMTP delivery follows the 250
                    try await Task.sleep(for: .milliseconds(100))
                    selected = try await imap.select("INBOX", readOnly: true)
                }
                #expect(selected.exists == 1 && selected.uidValidity != nil && selected.uidNext == 2)
                let fetched = try await imap.uidFetch("1:*", "UID RFC822.SIZE ENVELOPE BODYSTRUCTURE")
                let (uid, attributes) = try #require(fetched.first)
                #expect(uid == 1)
                let envelope = try #require(attributes["ENVELOPE"].flatMap(MailEnvelope.init))
                #expect(envelope.messageID == messageID && envelope.subject == "Grüße")
                #expect(envelope.from == ["René <rene@outside.test>"] && envelope.cc == ["demo2@example.test"])
                let parts = MailStructure.parts(try #require(attributes["BODYSTRUCTURE"]))
                let text = try #require(MailStructure.textPart(parts))
                #expect(text.section == "1" && text.charset == "iso-8859-1" && text.encoding == "quoted-printable")
                #expect(MailStructure.attachments(parts, text: text).map(\.name) == ["a.pdf"])
                // The first 2 KB of the text, from a bounded range of the part.
                let range = try await imap.uidFetch("\(uid)", "BODY.PEEK[\(text.section)]<0.4096>")
                let raw = try #require(range.first?.attributes["BODY[\(text.section)]<0>"]?.bytes)
                #expect(raw.count == 4096)
                let shown = MailText.prefix(MailText.decode(MailText.decodeTransfer(raw, encoding: text.encoding), charset: text.charset), maxBytes: 2048)
                #expect(shown.hasPrefix("Ceci est un café. Ceci est un café.") && shown.utf8.count <= 2048 && shown.utf8.count > 2000)
                await imap.logout()
            }
            // The user's own password works; a wrong one is refused.
            try await IMAPSession.with(to: host.imap, tls: host.tls) { imap in
                try await imap.login(user: "demo2@example.test", password: try #require(host.passwords["demo2@example.test"]))
                await imap.logout()
            }
            await #expect(throws: IMAPSession.Refused.self) {
                try await IMAPSession.with(to: host.imap, tls: host.tls) { imap in try await imap.login(user: "demo2@example.test", password: "wrong") }
            }
        }
    }

    /// A text with CRLF lines, one of them a lone dot followed by SMTP commands, reaches
    /// the mailbox whole: the lone dot is stuffed, so nothing after it is read as a
    /// command (before, a split at "\n" missed CRLF lines: Postfix ended the message there
    /// and took the rest as a second, smuggled message to demo2).
    @Test func aLoneDotInACRLFTextIsSentAsTextNotAsTheEndOfTheMessage() async throws {
        try await withMailHost { host in
            let message = "From: a@outside.test\r\nTo: demo1@example.test\r\nSubject: dots\r\n\r\nbefore\r\n.\r\n"
                + "MAIL FROM:<smuggled@outside.test>\r\nRCPT TO:<demo2@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nafter\r\n"
            let reply = try await SMTPSession.with(to: host.smtp, tls: host.tls) { smtp in
                try await smtp.send(from: "a@outside.test", to: ["demo1@example.test"], message: message)
            }
            #expect(reply.code == 250)
            // A second message after it on the same connection still works, and is demo2's only one.
            _ = try await SMTPSession.with(to: host.smtp, tls: host.tls) { smtp in
                try await smtp.send(from: "a@outside.test", to: ["demo2@example.test"], message: "Subject: marker\r\n\r\nmarker")
            }
            try await inFolder(host, "demo2@example.test") { imap, _ in
                let subjects = try await imap.uidFetch("1:*", "ENVELOPE").compactMap { $0.attributes["ENVELOPE"].flatMap(MailEnvelope.init)?.subject }
                #expect(subjects == ["marker"], "demo2 got \(subjects)")
            }
            try await inFolder(host, "demo1@example.test") { imap, demo1 in
                #expect(demo1.exists == 1)
                let text = try #require(try await imap.uidFetch("1", "BODY.PEEK[TEXT]").first?.attributes["BODY[TEXT]"]?.bytes)
                #expect(String(decoding: text, as: UTF8.self) == "before\r\n.\r\nMAIL FROM:<smuggled@outside.test>\r\nRCPT TO:<demo2@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nafter\r\n")
            }
        }
    }

    /// The submission service (what the Messaging Agent will send a device's mail
    /// through): AUTH first, as the user or as the service account for the user; From must
    /// be the authenticated user and recipients local; Postfix files a copy in the sender's
    /// Sent, which nobody can address from the public port.
    @Test func theSubmissionServiceSendsOnlyAsTheAuthenticatedUserAndFilesACopyInSent() async throws {
        try await withMailHost { host in
            let messageID = "<\(UUID().uuidString)@example.test>"
            let mail = "From: demo1@example.test\r\nTo: demo2@example.test\r\nSubject: from the device\r\nMessage-ID: \(messageID)\r\n\r\nhello\r\n"
            let service = (login: host.serviceUser, password: try host.servicePassword)
            let queued = try await SMTPSession.with(to: host.submission, tls: host.tls) { smtp in
                try await smtp.authenticatePlain(as: "demo1@example.test", login: service.login, password: service.password)
                return try await smtp.send(from: "demo1@example.test", to: ["demo2@example.test"], message: mail)
            }
            #expect(queued.code == 250)
            // A user with their own password sends as themselves.
            let own = try await SMTPSession.with(to: host.submission, tls: host.tls) { smtp in
                try await smtp.authenticatePlain(login: "demo3@example.test", password: host.passwords["demo3@example.test"]!)
                return try await smtp.send(from: "demo3@example.test", to: ["demo4@example.test"], message: "Subject: own\r\n\r\nx")
            }
            #expect(own.code == 250)

            // Refused: another sender, another domain, an unknown user, no AUTH, a wrong password.
            func refusal(as user: String? = "demo1@example.test", password: String? = nil, from: String = "demo1@example.test",
                         to: String = "demo2@example.test") async throws -> Int {
                do {
                    try await SMTPSession.with(to: host.submission, tls: host.tls) { smtp in
                        if let user { try await smtp.authenticatePlain(as: user, login: service.login, password: password ?? service.password) }
                        try await smtp.send(from: from, to: [to], message: "Subject: no\r\n\r\nno")
                    }
                    return 250
                } catch let refused as SMTPSession.Refused { return refused.reply.code }
            }
            #expect(try await refusal(from: "demo2@example.test") == 553, "another user's address as From")
            #expect(try await refusal(to: "someone@outside.test") == 554, "relaying")
            #expect(try await refusal(to: "nobody@example.test") == 550, "an unknown recipient")
            #expect(try await refusal(as: nil) == 554, "no AUTH")
            #expect(try await refusal(password: "wrong") == 535, "a wrong password")
            // Nor into another user's folders (their Sent above all: the witness of a send in doubt).
            #expect(try await refusal(to: "demo2+Sent@example.test") == 554, "a +detail recipient through the service account")
            let ownLogin = try await {
                do {
                    try await SMTPSession.with(to: host.submission, tls: host.tls) { smtp in
                        try await smtp.authenticatePlain(login: "demo3@example.test", password: host.passwords["demo3@example.test"]!)
                        try await smtp.send(from: "demo3@example.test", to: ["demo4+Projekte@example.test"], message: "Subject: no\r\n\r\nno")
                    }
                    return 250
                } catch let refused as SMTPSession.Refused { return refused.reply.code }
            }()
            #expect(ownLogin == 554, "a +detail recipient through a user's own login")
            // The public port will not file into anyone's folder.
            await #expect(throws: SMTPSession.Refused.self) {
                try await SMTPSession.with(to: host.smtp, tls: host.tls) { smtp in
                    try await smtp.send(from: "a@outside.test", to: ["demo1+Sent@example.test"], message: "Subject: forged\r\n\r\nx")
                }
            }

            // The mail reached demo2; its copy is in demo1's Sent (Sent and Trash exist for all).
            func messageIDs(_ user: String, _ folder: String, waiting: Bool = true) async throws -> [String] {
                try await inFolder(host, user, folder, waiting: waiting) { imap, selected in
                    guard selected.exists > 0 else { return [] }
                    return try await imap.uidFetch("1:*", "ENVELOPE").compactMap { $0.attributes["ENVELOPE"].flatMap(MailEnvelope.init)?.messageID }
                }
            }
            #expect(try await messageIDs("demo2@example.test", "INBOX") == [messageID])
            #expect(try await messageIDs("demo1@example.test", "Sent") == [messageID])
            #expect(try await messageIDs("demo1@example.test", "INBOX", waiting: false).isEmpty, "delivered already, with its copy")
            let folders = try await IMAPSession.with(to: host.imap, tls: host.tls) { imap in
                try await imap.login(user: "demo4@example.test*\(host.serviceUser)", password: service.password)
                let answer = try await imap.run("LIST \"\" \"*\"")
                await imap.logout()
                return answer.untagged.compactMap { if case .list(let attributes, _, let name) = $0 { "\(name) \(attributes.sorted())" } else { nil } }
            }
            #expect(folders.contains { $0.hasPrefix("Sent ") && $0.contains("\\Sent") }, "\(folders)")
            #expect(folders.contains { $0.hasPrefix("Trash ") && $0.contains("\\Trash") }, "\(folders)")
        }
    }
}
