@testable import BrambleTestSupport
import BrambleCore
import BrambleNet
import Foundation
import Testing

/// The Messaging Agent against the real servers: Postfix and Dovecot (scripts/mail-private)
/// with Dovecot's notifications to the node, PostgreSQL, the relay, a node and devices.
@Suite(.serialized) struct MessagingAgentTests {
    static let email = "demo1@example.test"
    static let pin = "2A00F00D"

    static func mailCluster(_ adjust: (inout TestCluster.Options) -> Void = { _ in },
                            _ body: (TestCluster) async throws -> Void) async throws {
        var options = TestCluster.Options()
        options.mail = true
        adjust(&options)
        try await TestCluster.with(options) { cluster in
            try cluster.provision(email: email, pin: pin)
            try cluster.startDevice(pin: pin)
            // The Agent watches the mailbox once it has found the new user.
            try await cluster.waitFor("the mailbox watched") {
                try await cluster.healthDetail("node-a", "messaging_agent")?.hasPrefix("watching 1 of 1") == true
            }
            try await body(cluster)
        }
    }

    static func id() -> String { "<\(UUID().uuidString)@bramble.test>" }

    @Test func aMailArrivesOnTheDeviceOnceWithItsEnvelopeAndFirstChunk() async throws {
        try await Self.mailCluster { cluster in
            let messageID = Self.id()
            try await cluster.sendMail(to: Self.email, subject: "Quarterly figures", body: "Hello Alice,\nthe figures are in.",
                                       messageID: messageID, headers: "Cc: demo2@example.test")
            try await cluster.waitFor("the mail shown") { cluster.mailShown(pin: Self.pin).contains { $0.message_id == messageID } }
            try await Task.sleep(for: .seconds(1))  // room for a duplicate to show up
            let lines = cluster.mailShown(pin: Self.pin).filter { $0.message_id == messageID }
            #expect(lines.count == 1, "shown once")
            let mail = try #require(lines.first)
            #expect(mail.service == "mail" && mail.subject == "Quarterly figures" && mail.from == "Sender <sender@outside.test>")
            #expect(mail.to == [Self.email] && mail.body.hasPrefix("Hello Alice,\nthe figures are in.") && !mail.more_available)
            #expect(mail.attachments == [])
            // Another user's mail never reaches this device.
            try await cluster.sendMail(to: "demo2@example.test", subject: "not yours", body: "x", messageID: Self.id())
            try await Task.sleep(for: .seconds(1))
            #expect(cluster.mailShown(pin: Self.pin).count == 1)
        }
    }

    @Test func withoutNotificationsTheSweepStillFindsTheMail() async throws {
        try await Self.mailCluster({ $0.mailNotifications = false; $0.mailSweepMs = 1_000 }) { cluster in
            let messageID = Self.id()
            try await cluster.sendMail(to: Self.email, subject: "found by the sweep", body: "x", messageID: messageID)
            try await cluster.waitFor("the mail shown", seconds: 10) { cluster.mailShown(pin: Self.pin).contains { $0.message_id == messageID } }
            #expect(cluster.mailShown(pin: Self.pin).count == 1)
        }
    }

    @Test func moreBringsTheNextChunksToTheEndAndTheCapEndsIt() async throws {
        try await Self.mailCluster({ $0.mailChunkBytes = 1_000; $0.mailMaxTextBytes = 2_500 }) { cluster in
            let messageID = Self.id()
            // 4,000 bytes of text: the cap (2,500) ends it after 1,000 + 1,000 + 500.
            let text = (0..<100).map { String(format: "line %03d of the long mail, here.\n", $0) }.joined()
            #expect(text.utf8.count == 3_300)
            try await cluster.sendMail(to: Self.email, subject: "long", body: text, messageID: messageID)
            try await cluster.waitFor("the mail shown") { cluster.mailShown(pin: Self.pin).contains { $0.message_id == messageID } }
            var lines = cluster.mailShown(pin: Self.pin)
            #expect(lines.count == 1 && lines[0].body.utf8.count == 1_000 && lines[0].more_available)
            for expected in 2...4 {
                try cluster.requestMore(pin: Self.pin, messageID: messageID)
                try await cluster.waitFor("chunk \(expected)") { cluster.mailShown(pin: Self.pin).count >= expected }
            }
            try await Task.sleep(for: .milliseconds(500))
            lines = cluster.mailShown(pin: Self.pin)
            #expect(lines.map(\.service) == ["mail", "more", "more", "more"])
            #expect(lines.dropFirst().map(\.offset) == [1_000, 2_000, 2_500])
            #expect(lines.dropFirst().map { $0.body.utf8.count } == [1_000, 500, 0])
            #expect(lines.dropFirst().map(\.more_available) == [true, false, false], "the cap ends it")
            let shown = lines.map(\.body).joined()
            #expect(shown == String(text.utf8.prefix(2_500))!, "the chunks continue one another")
            // A request for a mail the device never got is recorded and answered with nothing.
            try cluster.requestMore(pin: Self.pin, messageID: "<nothing@bramble.test>")
            try await cluster.waitFor("the request recorded") { (try await cluster.metric("bramble_device_requests_total") ?? 0) >= 4 }
            try await Task.sleep(for: .milliseconds(500))
            #expect(cluster.mailShown(pin: Self.pin).count == 4)
        }
    }

    @Test func aUIDValidityChangeSendsNeitherOldMailAgainNorLosesNewMail() async throws {
        try await Self.mailCluster { cluster in
            let before = Self.id()
            try await cluster.sendMail(to: Self.email, subject: "before", body: "x", messageID: before)
            try await cluster.waitFor("the first mail") { cluster.mailShown(pin: Self.pin).count == 1 }
            // The mailbox gets a new UIDVALIDITY (as after a restore or a rebuilt index):
            // every UID the node holds is void.
            try runCommand("/usr/bin/doveadm", ["-c", cluster.dir + "/mail/dovecot.conf", "mailbox", "update", "-u", Self.email,
                                                "--uid-validity", "\(Int(Date().timeIntervalSince1970) - 1000)", "INBOX"])
            let after = Self.id()
            try await cluster.sendMail(to: Self.email, subject: "after", body: "y", messageID: after)
            try await cluster.waitFor("the new mail") { cluster.mailShown(pin: Self.pin).contains { $0.message_id == after } }
            try await Task.sleep(for: .seconds(1))
            #expect(cluster.mailShown(pin: Self.pin).map(\.message_id) == [before, after], "the old mail not again, the new one once")
        }
    }

    @Test func hostileMailIsShownBoundedAndAThirtyMegabyteMailStillSendsItsFirstChunk() async throws {
        try await Self.mailCluster { cluster in
            // Malformed MIME (a boundary never closed), an unknown charset, raw 8-bit headers.
            let malformed = Self.id(), unknown = Self.id(), eightBit = Self.id(), huge = Self.id()
            try await cluster.sendRawMail(to: Self.email, """
                From: a@outside.test
                To: \(Self.email)
                Subject: broken
                Message-ID: \(malformed)
                MIME-Version: 1.0
                Content-Type: multipart/mixed; boundary="never"

                --never
                Content-Type: text/plain; charset=utf-8
                Content-Transfer-Encoding: base64

                SGVsbG8g!!!d29ybGQ=
                """)
            try await cluster.sendRawMail(to: Self.email, """
                From: b@outside.test
                To: \(Self.email)
                Subject: =?x-unknown?Q?caf=E9?=
                Message-ID: \(unknown)
                Content-Type: text/plain; charset=x-klingon

                plain words
                """)
            try await cluster.sendRawMail(to: Self.email, "From: Zoë <c@outside.test>\nTo: \(Self.email)\nSubject: Grüße aus Köln\nMessage-ID: \(eightBit)\n\nKöln\n")
            // 30 MB: the text part's first bytes are read, never the whole.
            let line = String(repeating: "0123456789", count: 7) + "\n"
            try await cluster.sendRawMail(to: Self.email, "From: d@outside.test\nTo: \(Self.email)\nSubject: huge\nMessage-ID: \(huge)\n\n"
                                          + String(repeating: line, count: 30 * 1024 * 1024 / line.utf8.count))
            try await cluster.waitFor("four mails", seconds: 60) { cluster.mailShown(pin: Self.pin).count >= 4 }
            let shown = Dictionary(uniqueKeysWithValues: cluster.mailShown(pin: Self.pin).map { ($0.message_id, $0) })
            #expect(shown[malformed]?.subject == "broken")
            #expect(shown[unknown]?.body.hasPrefix("plain words") == true)
            #expect(shown[eightBit]?.subject == "Grüße aus Köln" && shown[eightBit]?.from == "Zoë <c@outside.test>")
            let big = try #require(shown[huge])
            #expect(big.body.utf8.count == 2048 && big.body.hasPrefix("0123456789") && big.more_available)
            // The node's memory stayed bounded: it read at most the fetch bound of the part.
            let rss = try #require(cluster.node.map { try processMemoryKiB(pid: $0.pid).rss / 1024 })
            #expect(rss < 200, "node resident memory \(rss) MB after a 30 MB mail")
        }
    }

    @Test func filterRulesDecideInTheirOrderAndBadRulesAreRefused() async throws {
        try await Self.mailCluster { cluster in
            try cluster.bramble("filter", "add", "--field", "subject", "--contains", "Newsletter", "--action", "do_not_forward")
            try cluster.bramble("filter", "add", "--field", "from", "--contains", "boss@", "--action", "forward_high_priority")
            try cluster.bramble("filter", "add", "--field", "importance", "--contains", "HIGH", "--action", "forward_high_priority")
            // Before the others: mail cc'd to the archive is not forwarded.
            try cluster.bramble("filter", "add", "--field", "cc", "--contains", "archive@", "--action", "do_not_forward", "--position", "1")
            let list = try cluster.bramble("filter", "list")
            #expect(list.contains("1. [id 4] if cc contains \"archive@\": do_not_forward") && list.contains("4. [id 3] if importance is \"high\""), "\(list)")
            // Bad input: a clear error, nothing changed.
            for bad in [["--field", "body", "--contains", "x", "--action", "forward"], ["--field", "from", "--contains", "x", "--action", "bounce"],
                        ["--field", "importance", "--contains", "urgent", "--action", "forward"]] {
                #expect(throws: CommandFailed.self) { try cluster.bramble(["filter", "add"] + bad) }
            }
            #expect(throws: CommandFailed.self) { try cluster.bramble("filter", "remove", "99") }
            #expect(try cluster.bramble("filter", "list") == list)

            let dropped = Self.id(), archived = Self.id(), boss = Self.id(), important = Self.id(), plain = Self.id()
            try await cluster.sendMail(to: Self.email, subject: "Weekly newsletter", body: "x", messageID: dropped)
            try await cluster.sendMail(to: Self.email, subject: "from the boss, archived", body: "x", messageID: archived,
                                       headers: "Cc: archive@example.test")
            try await cluster.sendRawMail(to: Self.email, "From: The Boss <boss@outside.test>\nTo: \(Self.email)\nSubject: now\nMessage-ID: \(boss)\n\nx\n")
            try await cluster.sendMail(to: Self.email, subject: "important", body: "x", messageID: important, headers: "X-Priority: 1 (Highest)")
            try await cluster.sendMail(to: Self.email, subject: "plain", body: "x", messageID: plain)
            try await cluster.waitFor("the plain mail") { cluster.mailShown(pin: Self.pin).contains { $0.message_id == plain } }
            try await Task.sleep(for: .seconds(1))
            let shown = Dictionary(uniqueKeysWithValues: cluster.mailShown(pin: Self.pin).map { ($0.message_id, $0) })
            #expect(shown[dropped] == nil && shown[archived] == nil, "not forwarded")
            #expect(shown[boss]?.priority == "high" && shown[important]?.priority == "high", "forwarded with high priority")
            #expect(shown[plain] != nil && shown[plain]?.priority == nil, "no rule matched: forwarded")

            // Order: the cc rule moved last, the archived mail from the boss is forwarded, marked.
            try cluster.bramble("filter", "move", "4", "--to", "9")
            try cluster.bramble("filter", "remove", "1")
            #expect(try cluster.bramble("filter", "list").contains("3. [id 4] if cc contains"))
            let second = Self.id()
            try await cluster.sendRawMail(to: Self.email, "From: boss@outside.test\nTo: \(Self.email)\nCc: archive@example.test\nSubject: Newsletter\nMessage-ID: \(second)\n\nx\n")
            try await cluster.waitFor("the second mail") { cluster.mailShown(pin: Self.pin).contains { $0.message_id == second } }
            #expect(cluster.mailShown(pin: Self.pin).first { $0.message_id == second }?.priority == "high")
        }
    }

    @Test func userShowReportsTheWatchAndUserListEachUsersState() async throws {
        try await Self.mailCluster { cluster in
            let messageID = Self.id()
            try await cluster.sendMail(to: Self.email, subject: "seen", body: "x", messageID: messageID)
            try await cluster.waitFor("the mail shown") { cluster.mailShown(pin: Self.pin).contains { $0.message_id == messageID } }
            let show = try cluster.bramble("user", "show", Self.email, "--json")
            let user = try #require(try JSONSerialization.jsonObject(with: Data(show.utf8)) as? [String: Any])
            let mailbox = try #require(user["mailbox"] as? [String: Any], "\(show)")
            #expect(mailbox["last_message_id"] as? String == messageID && (mailbox["last_uid"] as? Int ?? 0) >= 1 && mailbox["uid_validity"] is Int, "\(show)")
            #expect(mailbox["last_error"] == nil && mailbox["checked_at"] is String)
            let human = try cluster.bramble("user", "show", Self.email)
            #expect(human.contains("last mail: ") && human.contains(messageID) && human.contains("last error: none"), "\(human)")
            try cluster.bramble("user", "add", "--email", "demo3@example.test")
            let list = try cluster.bramble("user", "list")
            #expect(list.contains("\(Self.email)\t-\tdevices: \(Self.pin)\tmailbox: watched"), "\(list)")
            #expect(list.contains("demo3@example.test\t-\tdevices: none\tmailbox: not watched (no device)"), "\(list)")
            // Bad input: a clear error.
            #expect(throws: CommandFailed.self) { try cluster.bramble("user", "show", "not-an-address") }
            #expect(throws: CommandFailed.self) { try cluster.bramble("user", "show", "nobody@example.test") }
        }
    }

    @Test func aMailboxThatCannotBeOpenedIsReportedAndTheOthersStillWork() async throws {
        try await Self.mailCluster { cluster in
            // A user whose mailbox the mail server does not have.
            try cluster.provision(email: "ghost@example.test", pin: "2A00F0FF")
            try await cluster.waitFor("the failing mailbox reported") {
                try await cluster.healthDetail("node-a", "messaging_agent")?.contains("1 failing (see `bramble user list`)") == true
            }
            // The mail server answered (it refused the login): not counted as unreachable.
            #expect(try await cluster.healthDetail("node-a", "messaging_server_reachable") == "mail server reachable for 2 of 2 mailboxes")
            #expect(try cluster.bramble("user", "list").contains("ghost@example.test\t-\tdevices: 2A00F0FF\tmailbox: failing: IMAP LOGIN answered NO"))
            let messageID = Self.id()
            try await cluster.sendMail(to: Self.email, subject: "still here", body: "x", messageID: messageID)
            try await cluster.waitFor("the mail shown") { cluster.mailShown(pin: Self.pin).contains { $0.message_id == messageID } }
            // A user removed at run time is no longer watched.
            try cluster.bramble("user", "remove", "ghost@example.test")
            try await cluster.waitFor("the removed user's mailbox dropped") {
                try await cluster.healthDetail("node-a", "messaging_agent") == "watching 1 of 1 mailboxes at epoch 1"
            }
        }
    }
}
