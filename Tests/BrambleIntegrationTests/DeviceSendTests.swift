@testable import BrambleTestSupport
import BrambleCore
import BrambleNet
import Foundation
import Testing

/// Mail written on a device (send, reply, forward) going out through the real Postfix
/// submission service as the user, with its copy in the user's Sent folder marked read,
/// and the device told what became of it; failures say why and leave nothing behind.
@Suite(.serialized) struct DeviceSendTests {
    static let (demo1, pin1) = ("demo1@example.test", "2A00F00D")
    static let (demo2, pin2) = ("demo2@example.test", "2A00F00E")

    static func sendCluster(_ body: (TestCluster) async throws -> Void) async throws {
        var options = TestCluster.Options()
        options.mail = true
        try await TestCluster.with(options) { cluster in
            for (email, pin) in [(demo1, pin1), (demo2, pin2)] {
                try cluster.provision(email: email, pin: pin)
                try cluster.startDevice(pin: pin)
            }
            try await cluster.waitFor("the mailboxes watched") {
                try await cluster.healthDetail("node-a", "messaging_agent")?.hasPrefix("watching 2 of 2") == true
            }
            try await body(cluster)
        }
    }

    /// The outcome line of the device's request `verb` number `n` (0: its first).
    static func outcome(_ cluster: TestCluster, pin: String, verb: String, _ n: Int = 0) async throws -> TestCluster.RequestLine {
        var found: TestCluster.RequestLine?
        try await cluster.waitFor("the device's \(verb) answered", seconds: 20) {
            let lines = cluster.requestLines(pin: pin)
            let refs = lines.filter { $0.service == "request" && $0.verb == verb }.map(\.ref)
            guard refs.count > n else { return false }
            found = lines.first { $0.service == "sent" && $0.ref == refs[n] }
            return found != nil
        }
        return try #require(found)
    }

    static func waitForMessage(_ cluster: TestCluster, _ user: String, in folder: String = "INBOX", id: String) async throws -> TestCluster.StoredMessage {
        var found: TestCluster.StoredMessage?
        try await cluster.waitFor("\(id) in \(user)'s \(folder)", seconds: 10) {
            found = try await cluster.messages(user, in: folder).first { $0.messageID == id }
            return found != nil
        }
        return try #require(found)
    }

    @Test func aSendReachesTheRecipientOnceWithItsCopyReadInSentAndTheDeviceHearsSent() async throws {
        try await Self.sendCluster { cluster in
            try cluster.control(pin: Self.pin1, ["send", "--to", Self.demo2, "--subject", "Grüße aus dem Zug", "--body", "Ankunft 18:40.\nBis gleich!"])
            let sent = try await Self.outcome(cluster, pin: Self.pin1, verb: "send")
            #expect(sent.state == "sent" && sent.reason == nil)
            let id = try #require(sent.message_id)
            #expect(id == OutgoingMessageID.make(pin: PIN(Self.pin1)!, ref: sent.ref, domain: "example.test"), "derived from (PIN, ref)")

            let delivered = try await Self.waitForMessage(cluster, Self.demo2, id: id)
            #expect(delivered.text.contains("From: demo1@example.test") && delivered.text.contains("To: demo2@example.test"))
            #expect(delivered.text.contains("Subject: =?UTF-8?"), "a non-ASCII subject as an encoded word")
            #expect(MailText.decodeHeader(Self.header("Subject", delivered.text)) == "Grüße aus dem Zug")
            // The recipient's device shows it.
            try await cluster.waitFor("demo2's device shows it") { cluster.mailShown(pin: Self.pin2).contains { $0.message_id == id } }
            #expect(cluster.mailShown(pin: Self.pin2).first { $0.message_id == id }?.body.hasPrefix("Ankunft 18:40.\nBis gleich!") == true)
            // The copy in Sent, marked read by the Agent.
            try await cluster.waitFor("the Sent copy marked read") {
                try await cluster.messages(Self.demo1, in: "Sent").first { $0.messageID == id }?.flags.contains("\\Seen") == true
            }
            try await Task.sleep(for: .seconds(1))  // room for a second copy to show up
            #expect(try await cluster.messages(Self.demo2).filter { $0.messageID == id }.count == 1, "delivered once")
            #expect(try await cluster.messages(Self.demo1, in: "Sent").filter { $0.messageID == id }.count == 1, "one copy in Sent")
            #expect(cluster.requestLines(pin: Self.pin1).filter { $0.service == "sent" }.count == 1, "one outcome line")
        }
    }

    /// A reply quotes the original's full text (10 KB, far past the 2 KB the device holds)
    /// and threads (In-Reply-To, References); a forward carries a 200 KB PDF byte for byte.
    @Test func aReplyQuotesTheWholeOriginalAndAForwardCarriesItsAttachment() async throws {
        try await Self.sendCluster { cluster in
            let originalID = "<orig-\(UUID().uuidString)@example.test>"
            let lines = (0..<250).map { String(format: "Zeile %03d des Berichts, mit Umlauten: äöü.", $0) }
            let pdf = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }
            let pdfBase64 = Data(pdf).base64EncodedString(options: [.lineLength76Characters, .endLineWithCarriageReturn, .endLineWithLineFeed])
            try await cluster.sendRawMail(to: Self.demo1, """
                From: Demo Two <demo2@example.test>
                To: demo1@example.test
                Subject: Bericht
                Message-ID: \(originalID)
                References: <root@example.test>
                MIME-Version: 1.0
                Content-Type: multipart/mixed; boundary="b0"

                --b0
                Content-Type: text/plain; charset=utf-8
                Content-Transfer-Encoding: 8bit

                \(lines.joined(separator: "\n"))
                --b0
                Content-Type: application/pdf; name="bericht.pdf"
                Content-Disposition: attachment; filename="bericht.pdf"
                Content-Transfer-Encoding: base64

                \(pdfBase64)
                --b0--
                """)
            try await cluster.waitFor("the original on demo1's device") { cluster.mailShown(pin: Self.pin1).contains { $0.message_id == originalID } }

            try cluster.control(pin: Self.pin1, ["reply", originalID, "--body", "Danke, gelesen."])
            let replied = try await Self.outcome(cluster, pin: Self.pin1, verb: "reply")
            #expect(replied.state == "sent", "\(replied.reason ?? "")")
            let reply = try await Self.waitForMessage(cluster, Self.demo2, id: try #require(replied.message_id))
            #expect(Self.header("In-Reply-To", reply.text) == originalID)
            #expect(Self.header("References", reply.text).contains("<root@example.test>") && Self.header("References", reply.text).contains(originalID))
            #expect(MailText.decodeHeader(Self.header("Subject", reply.text)) == "Re: Bericht")
            let replyText = Self.decodedText(reply.bytes)
            #expect(replyText.hasPrefix("Danke, gelesen."))
            #expect(lines.allSatisfy { replyText.contains("> " + $0) }, "every line of the 10 KB original quoted")

            try cluster.control(pin: Self.pin1, ["forward", originalID, "--to", "demo3@example.test", "--body", "Zur Info."])
            let forwarded = try await Self.outcome(cluster, pin: Self.pin1, verb: "forward")
            #expect(forwarded.state == "sent", "\(forwarded.reason ?? "")")
            let forward = try await Self.waitForMessage(cluster, "demo3@example.test", id: try #require(forwarded.message_id))
            #expect(MailText.decodeHeader(Self.header("Subject", forward.text)) == "Fwd: Bericht")
            #expect(Self.attachment(named: "bericht.pdf", in: forward.bytes) == pdf, "the PDF arrives byte for byte")
            #expect(lines.allSatisfy { Self.decodedText(forward.bytes).contains($0) }, "the original's full text")
        }
    }

    /// An unknown recipient and a message over the submission limit fail with a reason the
    /// device shows; nothing reaches any INBOX or Sent. A bad address fails before SMTP.
    @Test func refusedMailFailsWithAReasonAndLeavesNothingBehind() async throws {
        try await Self.sendCluster { cluster in
            try cluster.control(pin: Self.pin1, ["send", "--to", Self.demo2, "--to", "nobody@example.test", "--subject", "s", "--body", "b"])
            let unknown = try await Self.outcome(cluster, pin: Self.pin1, verb: "send")
            #expect(unknown.state == "failed")
            #expect(unknown.reason?.contains("unknown recipient <nobody@example.test>") == true, "\(unknown.reason ?? "")")

            // A forward of a mail whose attachment is over the tests' 1 MiB submission limit
            // (its text from a file, as --body-file reads it).
            let note = NSTemporaryDirectory() + "bramble-note-\(UUID().uuidString.prefix(8)).txt"
            try Data("Siehe Anhang.\n".utf8).write(to: URL(fileURLWithPath: note))
            defer { try? FileManager.default.removeItem(atPath: note) }
            let largeID = "<large-\(UUID().uuidString)@example.test>"
            let blob = Data((0..<1_200_000).map { UInt8(truncatingIfNeeded: $0) }).base64EncodedString(options: .lineLength76Characters)
            try await cluster.sendRawMail(to: Self.demo1, """
                From: demo2@example.test
                To: demo1@example.test
                Subject: large
                Message-ID: \(largeID)
                MIME-Version: 1.0
                Content-Type: multipart/mixed; boundary="b1"

                --b1
                Content-Type: text/plain

                see attachment
                --b1
                Content-Type: application/octet-stream; name="blob.bin"
                Content-Transfer-Encoding: base64

                \(blob)
                --b1--
                """)
            try await cluster.waitFor("the large mail on the device") { cluster.mailShown(pin: Self.pin1).contains { $0.message_id == largeID } }
            try cluster.control(pin: Self.pin1, ["forward", largeID, "--to", Self.demo2, "--body-file", note])
            let tooLarge = try await Self.outcome(cluster, pin: Self.pin1, verb: "forward")
            #expect(tooLarge.state == "failed")
            #expect(tooLarge.reason?.contains("message too large") == true, "\(tooLarge.reason ?? "")")

            try cluster.control(pin: Self.pin1, ["reply", "<never-seen@example.test>", "--body", "?"])
            let missing = try await Self.outcome(cluster, pin: Self.pin1, verb: "reply")
            #expect(missing.state == "failed" && missing.reason?.contains("original not found") == true, "\(missing.reason ?? "")")

            try await Task.sleep(for: .seconds(2))  // room for anything half-done to arrive
            let failedIDs = Set([unknown, tooLarge, missing].compactMap(\.message_id))
            for (user, folder) in [(Self.demo2, "INBOX"), (Self.demo1, "Sent"), ("demo3@example.test", "INBOX")] {
                let ids = Set(try await cluster.messages(user, in: folder).map(\.messageID))
                #expect(ids.isDisjoint(with: failedIDs), "nothing of a failed send in \(user)'s \(folder)")
            }
        }
    }

    /// A mail the device filed away (here into Trash) can still be replied to: the
    /// original is looked for in every folder, not only the INBOX.
    @Test func aFiledMailCanStillBeRepliedTo() async throws {
        try await Self.sendCluster { cluster in
            let originalID = "<filed-\(UUID().uuidString)@example.test>"
            try await cluster.sendRawMail(to: Self.demo1, """
                From: demo2@example.test
                To: demo1@example.test
                Subject: filed
                Message-ID: \(originalID)

                Put this away.
                """)
            try await cluster.waitFor("the mail on demo1's device") { cluster.mailShown(pin: Self.pin1).contains { $0.message_id == originalID } }
            try cluster.control(pin: Self.pin1, ["file", originalID, "Trash"])
            _ = try await Self.waitForMessage(cluster, Self.demo1, in: "Trash", id: originalID)
            try cluster.control(pin: Self.pin1, ["reply", originalID, "--body", "Found it again."])
            let replied = try await Self.outcome(cluster, pin: Self.pin1, verb: "reply")
            #expect(replied.state == "sent", "\(replied.reason ?? "")")
            let reply = try await Self.waitForMessage(cluster, Self.demo2, id: try #require(replied.message_id))
            #expect(Self.decodedText(reply.bytes).contains("> Put this away."))
        }
    }

    // MARK: Reading messages back

    /// A header's value, unfolded, from a stored message.
    static func header(_ name: String, _ message: String) -> String { MailHeaders.value(name, in: Array(message.utf8)) ?? "" }

    /// The first text/plain part's text, decoded (quoted-printable or 8 bit).
    static func decodedText(_ bytes: [UInt8]) -> String {
        for part in parts(bytes) where part.header.lowercased().contains("text/plain") {
            let encoding = part.header.lowercased().contains("quoted-printable") ? "quoted-printable" : nil
            return String(decoding: MailText.decodeTransfer(part.body, encoding: encoding), as: UTF8.self).replacingOccurrences(of: "\r\n", with: "\n")
        }
        return ""
    }

    /// The decoded bytes of the attachment called `name`.
    static func attachment(named name: String, in bytes: [UInt8]) -> [UInt8]? {
        parts(bytes).first { $0.header.contains(name) }.map { MailText.decodeTransfer($0.body, encoding: "base64") }
    }

    /// The leaf parts of a message (one level of multipart, or the message itself).
    static func parts(_ bytes: [UInt8]) -> [(header: String, body: [UInt8])] {
        func split(_ b: ArraySlice<UInt8>) -> (String, [UInt8]) {
            let marker: [UInt8] = [13, 10, 13, 10]
            guard let i = b.indices.first(where: { b[$0...].starts(with: marker) }) else { return (String(decoding: b, as: UTF8.self), []) }
            return (String(decoding: b[..<i], as: UTF8.self), Array(b[(i + 4)...]))
        }
        let (head, body) = split(bytes[...])
        let unfolded = head.replacingOccurrences(of: "\r\n ", with: " ").replacingOccurrences(of: "\r\n\t", with: " ")
        guard let range = unfolded.range(of: #"boundary="?([^";\r\n]+)"?"#, options: [.regularExpression, .caseInsensitive]) else { return [(head, body)] }
        let boundary = String(unfolded[range]).replacingOccurrences(of: #"(?i)boundary="?"#, with: "", options: .regularExpression)
            .trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        let delimiter = Array("\r\n--\(boundary)".utf8)
        var pieces: [(String, [UInt8])] = []
        var rest = ArraySlice([13, 10] + body)
        while let start = rest.indices.first(where: { rest[$0...].starts(with: delimiter) }) {
            let after = rest[(start + delimiter.count)...]
            if after.starts(with: Array("--".utf8)) { break }
            let lineEnd = after.indices.first { after[$0...].starts(with: [13, 10]) } ?? after.endIndex
            var partBytes = after[min(lineEnd + 2, after.endIndex)...]
            if let next = partBytes.indices.first(where: { partBytes[$0...].starts(with: delimiter) }) {
                pieces.append(split(partBytes[..<next]))
                partBytes = partBytes[next...]
            }
            rest = partBytes
        }
        return pieces
    }
}
