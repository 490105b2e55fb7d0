@testable import BrambleTestSupport
import BrambleCore
import BrambleNet
import Foundation
import Testing

/// Reconciliation both ways against the real Dovecot: a device's read, unread, delete and
/// file change the user's mailbox (read back as the user over IMAP) and reach the user's
/// other device as `state` lines; changes a desktop client makes reach the devices as
/// exactly one `state` line each; `folders` lists the user's folders; off, nothing moves.
@Suite(.serialized) struct ReconciliationTests {
    static let demo1 = "demo1@example.test"
    /// demo1's two devices: the one that acts, and the other one.
    static let (pinA, pinB) = ("2A00F00D", "2A00F00F")

    /// `sweepMs`: how often every mailbox is checked anyway (the tests of the mailbox →
    /// device direction leave it at 30 s, so Dovecot's notifications alone make it quick).
    static func reconcileCluster(deviceDelete: String? = nil, sweepMs: Int = 500, _ body: (TestCluster) async throws -> Void) async throws {
        var options = TestCluster.Options()
        options.mail = true
        options.mailSweepMs = sweepMs
        options.mailDeviceDelete = deviceDelete
        try await TestCluster.with(options) { cluster in
            for pin in [pinA, pinB] {
                try cluster.provision(email: demo1, pin: pin)
                try cluster.startDevice(pin: pin)
            }
            try await cluster.waitFor("the mailbox watched") {
                try await cluster.healthDetail("node-a", "messaging_agent")?.hasPrefix("watching 1 of 1") == true
            }
            try await body(cluster)
        }
    }

    /// A mail to demo1, shown on both devices.
    static func deliver(_ cluster: TestCluster, _ id: String) async throws {
        try await cluster.sendMail(to: demo1, subject: "Reconcile \(id)", body: "Text of \(id).", messageID: id)
        try await cluster.waitFor("\(id) on both devices") {
            cluster.mailShown(pin: pinA).contains { $0.message_id == id } && cluster.mailShown(pin: pinB).contains { $0.message_id == id }
        }
    }

    static func find(_ cluster: TestCluster, _ id: String, in folder: String) async throws -> TestCluster.StoredMessage? {
        try await cluster.messages(demo1, in: folder).first { $0.messageID == id }
    }

    static func waitForState(_ cluster: TestCluster, pin: String, _ expected: TestCluster.StateLine.Shape, seconds: Double = 15) async throws {
        try await cluster.waitFor("\(pin) shows \(expected)", seconds: seconds) {
            cluster.stateLines(pin: pin).contains { $0.shape == expected }
        }
    }

    @Test func theDevicesReadUnreadFileAndDeleteChangeTheMailboxAndTheOtherDeviceHearsEachOnce() async throws {
        try await Self.reconcileCluster { cluster in
            let (id, gone) = ("<reconcile-1@outside.test>", "<reconcile-2@outside.test>")
            try await Self.deliver(cluster, id)
            try await Self.deliver(cluster, gone)
            #expect(try await Self.find(cluster, id, in: "INBOX")?.flags.contains("\\Seen") == false)
            try await cluster.desktop(Self.demo1) { imap in _ = try await imap.run("CREATE Projekte") }

            var started = Date()
            try cluster.control(pin: Self.pinA, ["read", id])
            try await cluster.waitFor("\\Seen in the mailbox") { try await Self.find(cluster, id, in: "INBOX")?.flags.contains("\\Seen") == true }
            print("device read → mailbox: \(Int(Date().timeIntervalSince(started) * 1000)) ms")
            try await Self.waitForState(cluster, pin: Self.pinB, .init(id, read: true, deleted: false, folder: "INBOX"))

            try cluster.control(pin: Self.pinA, ["unread", id])
            try await cluster.waitFor("\\Seen cleared") { try await Self.find(cluster, id, in: "INBOX")?.flags.contains("\\Seen") == false }
            try await Self.waitForState(cluster, pin: Self.pinB, .init(id, read: false, deleted: false, folder: "INBOX"))

            started = Date()
            try cluster.control(pin: Self.pinA, ["file", id, "Projekte"])
            try await cluster.waitFor("filed in Projekte") { try await Self.find(cluster, id, in: "Projekte") != nil }
            print("device file → mailbox: \(Int(Date().timeIntervalSince(started) * 1000)) ms")
            #expect(try await Self.find(cluster, id, in: "INBOX") == nil, "moved, not copied")
            try await Self.waitForState(cluster, pin: Self.pinB, .init(id, read: false, deleted: false, folder: "Projekte"))

            // A read of a mail filed elsewhere finds it where it is now.
            try cluster.control(pin: Self.pinA, ["read", id])
            try await cluster.waitFor("\\Seen in Projekte") { try await Self.find(cluster, id, in: "Projekte")?.flags.contains("\\Seen") == true }
            try await Self.waitForState(cluster, pin: Self.pinB, .init(id, read: true, deleted: false, folder: "Projekte"))

            try cluster.control(pin: Self.pinA, ["delete", gone])
            try await cluster.waitFor("expunged") { try await Self.find(cluster, gone, in: "INBOX") == nil }
            #expect(try await Self.find(cluster, gone, in: "Trash") == nil, "expunged, not in Trash (the default)")
            try await Self.waitForState(cluster, pin: Self.pinB, .init(gone, read: false, deleted: true, folder: ""))

            // Room for echoes (the Agent's own changes seen again in the mailbox) and repeats.
            try await Task.sleep(for: .seconds(3))
            #expect(cluster.stateLines(pin: Self.pinA).isEmpty, "the requester gets no state line for what it did")
            let lines = cluster.stateLines(pin: Self.pinB).map(\.shape)
            #expect(lines == [.init(id, read: true, deleted: false, folder: "INBOX"), .init(id, read: false, deleted: false, folder: "INBOX"),
                              .init(id, read: false, deleted: false, folder: "Projekte"), .init(id, read: true, deleted: false, folder: "Projekte"),
                              .init(gone, read: false, deleted: true, folder: "")], "one line per change, in order: \(lines)")
        }
    }

    @Test func aDeleteMovesToTrashWhenTheNodeSaysSoAndAFailedFileTellsTheRequesterTheTrueState() async throws {
        try await Self.reconcileCluster(deviceDelete: "trash") { cluster in
            let id = "<reconcile-trash@outside.test>"
            try await Self.deliver(cluster, id)
            try cluster.control(pin: Self.pinA, ["delete", id])
            try await cluster.waitFor("in Trash") { try await Self.find(cluster, id, in: "Trash") != nil }
            #expect(try await Self.find(cluster, id, in: "INBOX") == nil)
            try await Self.waitForState(cluster, pin: Self.pinB, .init(id, read: false, deleted: true, folder: "Trash"))

            try cluster.control(pin: Self.pinA, ["file", id, "Nirgendwo"])
            try await Self.waitForState(cluster, pin: Self.pinA, .init(id, read: false, deleted: true, folder: "Trash"))
            #expect(try await Self.find(cluster, id, in: "Trash") != nil, "left where it was")
        }
    }

    /// Quick through Dovecot's notification of the change (push.lua in protocol imap), not
    /// the sweep (30 s here).
    @Test func aDesktopClientsReadUnreadFileAndExpungeReachTheDevicesAsOneStateLineEach() async throws {
        try await Self.reconcileCluster(sweepMs: 30_000) { cluster in
            let (id, gone) = ("<desktop-1@outside.test>", "<desktop-2@outside.test>")
            try await Self.deliver(cluster, id)
            try await Self.deliver(cluster, gone)
            // Let a check record the folders' watermarks first.
            try await Task.sleep(for: .seconds(1.5))

            func change(_ what: String, _ expected: TestCluster.StateLine.Shape, _ act: @escaping (inout IMAPSession) async throws -> Void) async throws {
                let started = Date()
                try await cluster.desktop(Self.demo1) { imap in try await act(&imap) }
                for pin in [Self.pinA, Self.pinB] { try await Self.waitForState(cluster, pin: pin, expected, seconds: 5) }
                let ms = Int(Date().timeIntervalSince(started) * 1000)
                print("desktop \(what) → device: \(ms) ms")
                #expect(ms < 3_000, "\(what) took \(ms) ms: the notification, not the 30 s sweep")
            }
            func uid(_ imap: inout IMAPSession, _ messageID: String) async throws -> UInt64 {
                try #require(try await imap.uidSearch(header: "Message-ID", value: messageID).first)
            }
            try await change("read", .init(id, read: true, deleted: false, folder: "INBOX")) { imap in
                _ = try await imap.select("INBOX")
                try await imap.uidStore("\(try await uid(&imap, id))", flags: ["\\Seen"], add: true)
            }
            try await change("unread", .init(id, read: false, deleted: false, folder: "INBOX")) { imap in
                _ = try await imap.select("INBOX")
                try await imap.uidStore("\(try await uid(&imap, id))", flags: ["\\Seen"], add: false)
            }
            try await change("file", .init(id, read: false, deleted: false, folder: "Archiv")) { imap in
                _ = try await imap.run("CREATE Archiv")
                _ = try await imap.select("INBOX")
                try await imap.uidMove("\(try await uid(&imap, id))", to: "Archiv")
            }
            try await change("expunge", .init(gone, read: false, deleted: true, folder: "")) { imap in
                _ = try await imap.select("INBOX")
                let u = try await uid(&imap, gone)
                try await imap.uidStore("\(u)", flags: ["\\Deleted"], add: true)
                try await imap.uidExpunge("\(u)")
            }
            // Several checks later, nothing repeats.
            try await Task.sleep(for: .seconds(3))
            for pin in [Self.pinA, Self.pinB] {
                let lines = cluster.stateLines(pin: pin).map(\.shape)
                #expect(lines == [.init(id, read: true, deleted: false, folder: "INBOX"), .init(id, read: false, deleted: false, folder: "INBOX"),
                                  .init(id, read: false, deleted: false, folder: "Archiv"), .init(gone, read: false, deleted: true, folder: "")],
                        "\(pin): exactly one line per change: \(lines)")
            }
        }
    }

    @Test func foldersListsTheUsersFoldersWithSentAndTrash() async throws {
        try await Self.reconcileCluster { cluster in
            try cluster.control(pin: Self.pinA, ["folders"])
            try await cluster.waitFor("the folders line") { !cluster.foldersLines(pin: Self.pinA).isEmpty }
            let folders = try #require(cluster.foldersLines(pin: Self.pinA).first).folders
            #expect(folders.contains(.init(name: "Sent", special_use: "\\Sent")))
            #expect(folders.contains(.init(name: "Trash", special_use: "\\Trash")))
            #expect(folders.contains { $0.name == "INBOX" })
            #expect(cluster.foldersLines(pin: Self.pinB).isEmpty, "only the device that asked")
        }
    }

    @Test func reconciliationOffThroughTheCLIChangesNothingAndSendsNothing() async throws {
        try await Self.reconcileCluster { cluster in
            let id = "<reconcile-off@outside.test>"
            try await Self.deliver(cluster, id)
            let out = try cluster.bramble("user", "set", Self.demo1, "--reconciliation", "off")
            #expect(out.contains("reconciliation off"))
            let shown = try cluster.bramble("user", "show", Self.demo1, "--json")
            #expect(shown.contains("\"reconciliation\" : false") || shown.contains("\"reconciliation\":false"), "\(shown)")

            try cluster.control(pin: Self.pinA, ["read", id])
            try await cluster.waitFor("the read recorded") { cluster.requestLines(pin: Self.pinA).contains { $0.verb == "read" } }
            try await cluster.desktop(Self.demo1) { imap in
                _ = try await imap.select("INBOX")
                let u = try #require(try await imap.uidSearch(header: "Message-ID", value: id).first)
                try await imap.uidMove("\(u)", to: "Trash")
            }
            try await Task.sleep(for: .seconds(3))
            #expect(try await Self.find(cluster, id, in: "Trash")?.flags.contains("\\Seen") == false, "the device's read did nothing")
            #expect(cluster.stateLines(pin: Self.pinA).isEmpty && cluster.stateLines(pin: Self.pinB).isEmpty, "no state line")

            // On again: the mail's true state reaches the devices.
            try cluster.bramble("user", "set", Self.demo1, "--reconciliation", "on")
            try await Self.waitForState(cluster, pin: Self.pinB, .init(id, read: false, deleted: true, folder: "Trash"))
        }
    }
}
