@testable import BrambleTestSupport
import BrambleCore
import BrambleNet
import Foundation
import Testing

/// `IMAPSession`'s writes and QRESYNC against the real Dovecot (scripts/mail-private), as
/// the service account for demo1: what the Messaging Agent will do to keep devices and
/// mailboxes reconciled.
@Suite(.serialized) struct IMAPWriteTests {
    func withMailHost(_ body: (TestMailHost) async throws -> Void) async throws {
        let dir = NSTemporaryDirectory() + "bramble-test-imapwrite-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let host = try TestMailHost.start(in: dir)
        defer { host.stop() }
        try await body(host)
    }

    /// Delivers mails to demo1 by the public port, and opens demo1's session once they are in.
    func withDemo1(_ host: TestMailHost, mails: [String], _ body: (inout IMAPSession) async throws -> Void) async throws {
        for mail in mails {
            _ = try await SMTPSession.with(to: host.smtp, tls: host.tls) { smtp in
                try await smtp.send(from: "a@outside.test", to: ["demo1@example.test"], message: mail)
            }
        }
        try await IMAPSession.with(to: host.imap, tls: host.tls) { imap in
            try await imap.login(user: "demo1@example.test*\(host.serviceUser)", password: try host.servicePassword)
            for _ in 0..<50 where try await imap.select("INBOX", readOnly: true).exists < mails.count {
                try await Task.sleep(for: .milliseconds(100))
            }
            try await body(&imap)
            await imap.logout()
        }
    }

    func mail(_ messageID: String, body: String = "hello") -> String {
        "From: a@outside.test\r\nTo: demo1@example.test\r\nSubject: s\r\nMessage-ID: \(messageID)\r\n\r\n\(body)\r\n"
    }

    @Test func aStoreAndAMoveShowInTheNextQResyncSelectAndExpungeRemoves() async throws {
        try await withMailHost { host in
            let ids = ["<one.\(UUID().uuidString)@outside.test>", "<two.\(UUID().uuidString)@outside.test>"]
            try await withDemo1(host, mails: ids.map { mail($0) }) { imap in
                #expect(try await imap.enable(["QRESYNC"]).contains("QRESYNC"))
                let first = try await imap.select("INBOX", qresync: nil)
                let validity = try #require(first.selected.uidValidity)
                let modSeq0 = try #require(first.selected.highestModSeq)
                #expect(first.selected.exists == 2 && first.vanished.isEmpty && first.changed.isEmpty)
                #expect(try await imap.uidSearch(header: "Message-ID", value: ids[0]) == [1])
                #expect(try await imap.uidSearch(header: "Message-ID", value: ids[1]) == [2])
                #expect(try await imap.uidSearch(header: "Message-ID", value: "<nowhere@outside.test>") == [])

                // STORE +\Seen on UID 1: the next QRESYNC select reports it, at a higher modseq.
                let stored = try await imap.uidStore("1", flags: ["\\Seen"], add: true)
                let afterStore = try await imap.select("INBOX", qresync: (validity, modSeq0, nil))
                let change = try #require(afterStore.changed.first { $0.uid == 1 })
                #expect(afterStore.changed.map(\.uid) == [1] && afterStore.vanished.isEmpty)
                let changeModSeq = try #require(change.modSeq)
                #expect(change.flags.contains("\\Seen") && changeModSeq > modSeq0)
                #expect(afterStore.selected.highestModSeq == change.modSeq)
                #expect(stored == [1: changeModSeq], "with QRESYNC enabled, Dovecot reports the MODSEQ of a .SILENT STORE")

                // -\Seen: changed again.
                try await imap.uidStore("1", flags: ["\\Seen"], add: false)
                let modSeq1 = try #require(afterStore.selected.highestModSeq)
                let unseen = try await imap.select("INBOX", qresync: (validity, modSeq1, nil))
                #expect(unseen.changed.first { $0.uid == 1 }.map { !$0.flags.contains("\\Seen") } == true)

                // MOVE UID 2 to Trash: COPYUID maps it; the next QRESYNC select says it vanished.
                let modSeq2 = try #require(unseen.selected.highestModSeq)
                let moved = try #require(try await imap.uidMove("2", to: "Trash"))
                let trashUID = try #require(moved[2])
                #expect(moved.count == 1)
                let afterMove = try await imap.select("INBOX", qresync: (validity, modSeq2, nil))
                #expect(afterMove.vanished == [2] && afterMove.selected.exists == 1, "\(afterMove)")
                let withKnown = try await imap.select("INBOX", readOnly: true, qresync: (validity, modSeq0, "1:2"))
                #expect(withKnown.vanished == [2])
                let otherValidity = try await imap.select("INBOX", readOnly: true, qresync: (validity + 1, modSeq0, nil))
                #expect(otherValidity.vanished.isEmpty && otherValidity.changed.isEmpty, "nothing for another UIDVALIDITY")

                // In Trash: found by Message-ID at the mapped UID; \Deleted and UID EXPUNGE remove only it.
                let trash = try await imap.select("Trash", qresync: nil)
                #expect(trash.selected.exists == 1)
                #expect(try await imap.uidSearch(header: "Message-ID", value: ids[1]) == [trashUID])
                let trashModSeq = try #require(trash.selected.highestModSeq)
                try await imap.uidStore("\(trashUID)", flags: ["\\Deleted"], add: true)
                try await imap.uidExpunge("\(trashUID)")
                let emptied = try await imap.select("Trash", qresync: (try #require(trash.selected.uidValidity), trashModSeq, nil))
                #expect(emptied.selected.exists == 0 && emptied.vanished == [trashUID])
            }
        }
    }

    @Test func listShowsTheSpecialUseFoldersAndAUTF8FolderRoundTrips() async throws {
        try await withMailHost { host in
            let id = "<\(UUID().uuidString)@outside.test>"
            try await withDemo1(host, mails: [mail(id)]) { imap in
                try await imap.run("CREATE \(IMAPSession.astring(MailboxName.encode("Entwürfe")))")
                try await imap.run("CREATE \(IMAPSession.astring(MailboxName.encode("台北 & Co")))")
                let folders = try await imap.list()
                #expect(folders.contains { $0.name == "Sent" && $0.attributes.contains("\\Sent") }, "\(folders)")
                #expect(folders.contains { $0.name == "Trash" && $0.attributes.contains("\\Trash") }, "\(folders)")
                #expect(folders.contains { $0.name == "INBOX" })
                #expect(folders.contains { $0.name == "Entwürfe" && $0.wireName == "Entw&APw-rfe" && $0.delimiter == "." }, "\(folders)")
                #expect(folders.contains { $0.name == "台北 & Co" && $0.wireName == "&U,BTFw- &- Co" }, "\(folders)")
                // A move into it by its UTF-8 name, and a select by that name.
                _ = try await imap.select("INBOX")
                let moved = try await imap.uidMove("1", to: "Entwürfe")
                #expect(moved?.count == 1)
                let drafts = try await imap.select("Entwürfe", readOnly: true)
                #expect(drafts.exists == 1)
                #expect(try await imap.uidSearch(header: "Message-ID", value: id) == [try #require(moved?[1])])
            }
        }
    }

    @Test func aLargeBodyIsFetchedInRangesUpToItsBound() async throws {
        try await withMailHost { host in
            let text = (0..<4_000).map { "line \($0) of a long text, to be fetched in ranges\r\n" }.joined()  // ~200 KB
            try await withDemo1(host, mails: [mail("<big@outside.test>", body: text)]) { imap in
                _ = try await imap.select("INBOX", readOnly: true)
                let whole = try await imap.uidFetchSection(1, section: "TEXT", maxBytes: 1 << 20, rangeBytes: 30_000)
                #expect(whole == Array((text + "\r\n").utf8) || whole == Array(text.utf8), "\(whole?.count ?? -1) bytes")
                let exact = try #require(whole).count
                #expect(try await imap.uidFetchSection(1, section: "TEXT", maxBytes: exact, rangeBytes: 7_000)?.count == exact)
                await #expect(throws: IMAPSession.TooLarge.self) {
                    try await imap.uidFetchSection(1, section: "TEXT", maxBytes: exact - 1, rangeBytes: 50_000)
                }
                let message = try #require(try await imap.uidFetchSection(1, section: "", maxBytes: 1 << 20))
                #expect(String(decoding: message, as: UTF8.self).contains("\r\nMessage-ID: <big@outside.test>\r\n"))
                #expect(message.count > exact && message.suffix(exact) == whole?[...])
                #expect(try await imap.uidFetchSection(99, section: "TEXT", maxBytes: 100) == nil, "no such message")
                await #expect(throws: IMAPSession.Refused.self) {
                    try await imap.uidFetchSection(1, section: "TEXT]<0.1> FLAGS (x", maxBytes: 100)
                }
            }
        }
    }
}
