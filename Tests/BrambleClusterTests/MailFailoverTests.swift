@testable import BrambleTestSupport
import Foundation
import Testing

/// Mail through the HA pair on real processes (Postfix, Dovecot, PostgreSQL, the relay,
/// two nodes, devices): every mail Postfix accepted (250) is shown exactly once on its
/// user's device, whatever happens to the primary; More asked across a failover acts once.
@Suite(.serialized) struct MailFailoverTests {
    /// Two mailboxes with a device each.
    static let users = [("demo1@example.test", "2A00F00D"), ("demo2@example.test", "2A00F00E")]

    func withMailPair(policy: SubmissionPolicy? = nil, _ body: (TestCluster) async throws -> Void) async throws {
        var options = TestCluster.Options()
        options.nodes = ["node-a", "node-b"]
        options.mail = true
        options.submissionPolicy = policy
        try await TestCluster.with(options) { cluster in
            for (email, pin) in Self.users {
                try cluster.provision(email: email, pin: pin)
                try cluster.startDevice(pin: pin)
            }
            try await cluster.waitFor("both mailboxes watched") {
                try await cluster.healthDetail("node-a", "messaging_agent")?.hasPrefix("watching 2 of 2") == true
            }
            try await body(cluster)
        }
    }

    /// Sends `count` mails, one every `everyMs`, alternating between the users; `midway`
    /// runs once after `midwayAfter` of them. Returns each accepted Message-ID's device.
    func mailStream(_ cluster: TestCluster, count: Int, everyMs: Int, midwayAfter: Int = .max,
                    midway: () async throws -> Void = {}) async throws -> [String: String] {
        var accepted: [String: String] = [:]
        for i in 0..<count {
            let (email, pin) = Self.users[i % Self.users.count]
            let id = "<stream-\(i)-\(UUID().uuidString.prefix(8))@bramble.test>"
            // Postfix's 250 is the promise; a mail it did not accept is not counted.
            if (try? await cluster.sendMail(to: email, subject: "mail \(i)", body: "body \(i)", messageID: id)) != nil { accepted[id] = pin }
            if i + 1 == midwayAfter { try await midway() }
            try await Task.sleep(for: .milliseconds(everyMs))
        }
        return accepted
    }

    /// Every accepted mail shown once on its device, none twice, none elsewhere; the relay
    /// never had two primaries registered.
    func expectEachMailOnce(_ cluster: TestCluster, _ accepted: [String: String], seconds: Double = 60) async throws {
        for (_, pin) in Self.users {
            let wanted = Set(accepted.filter { $0.value == pin }.keys)
            try await cluster.waitFor("device \(pin) to show \(wanted.count) mails", seconds: seconds) {
                wanted.isSubset(of: Set(cluster.mailShown(pin: pin).filter { $0.service == "mail" }.map(\.message_id)))
            }
        }
        try await Task.sleep(for: .seconds(1))  // room for a duplicate to show up
        for (_, pin) in Self.users {
            let ids = cluster.mailShown(pin: pin).filter { $0.service == "mail" }.map(\.message_id)
            let repeats = Dictionary(grouping: ids, by: { $0 }).filter { $0.value.count > 1 }.keys
            #expect(repeats.isEmpty, "device \(pin) showed \(repeats.count) mails twice: \(repeats.prefix(3))")
            #expect(Set(ids).isSubset(of: Set(accepted.filter { $0.value == pin }.keys)), "device \(pin) showed a mail not its own")
        }
        let relay = cluster.relayAudit()
        #expect(relay.maxServingPrimaries <= 1 && relay.staleDeliveries == 0, "one primary at a time, nothing from a fenced epoch")
    }

    @Test func aPrimaryKilledMidStreamOfMailLosesNoneAndShowsNoneTwiceAndMoreActsOnce() async throws {
        try await withMailPair { cluster in
            let (email, pin) = Self.users[0]
            let long = "<long-\(UUID().uuidString)@bramble.test>"
            try await cluster.sendMail(to: email, subject: "long", body: String(repeating: "0123456789", count: 700), messageID: long)
            try await cluster.waitFor("the long mail") { cluster.mailShown(pin: pin).contains { $0.message_id == long } }
            var accepted = try await mailStream(cluster, count: 40, everyMs: 50, midwayAfter: 15) {
                // More asked, then the primary killed: the request may be recorded by
                // node-a or only by node-b; either way it acts once.
                try cluster.requestMore(pin: pin, messageID: long)
                cluster.nodes["node-a"]!.kill()
            }
            try await cluster.waitFor("node-b primary", seconds: 10) { await cluster.primaries() == ["node-b"] }
            accepted[long] = pin
            try await expectEachMailOnce(cluster, accepted)
            try await cluster.waitFor("the More chunk") { cluster.mailShown(pin: pin).contains { $0.service == "more" } }
            try await Task.sleep(for: .seconds(3))  // past the device's retry of the request
            let chunks = cluster.mailShown(pin: pin).filter { $0.service == "more" }
            #expect(chunks.map(\.offset) == [2048], "one More, from where the first chunk ended: \(chunks.map(\.offset))")
        }
    }

    @Test func aNodeStoppedAndStartedAgainMissesNoMail() async throws {
        try await withMailPair { cluster in
            var accepted = try await mailStream(cluster, count: 10, everyMs: 20)
            cluster.nodes["node-a"]!.stop()
            try await cluster.waitFor("node-b primary", seconds: 10) { await cluster.primaries() == ["node-b"] }
            accepted.merge(try await mailStream(cluster, count: 10, everyMs: 20)) { a, _ in a }
            try cluster.startNode("node-a")
            try await cluster.waitFor("node-a standby", seconds: 30) { try await cluster.get(cluster.nodeURL("node-a") + "/standby").status == 200 }
            accepted.merge(try await mailStream(cluster, count: 10, everyMs: 20)) { a, _ in a }
            // Back to node-a by a planned switchover, and more mail after it.
            try cluster.bramble(["failover", "--url", cluster.nodeURL("node-b"), "--to", "node-a"])
            try await cluster.waitFor("node-a primary", seconds: 10) { await cluster.primaries() == ["node-a"] }
            accepted.merge(try await mailStream(cluster, count: 10, everyMs: 20)) { a, _ in a }
            #expect(accepted.count == 40, "Postfix accepted every mail")
            try await expectEachMailOnce(cluster, accepted)
        }
    }

    // MARK: A device's mail in doubt

    /// demo1's device sends one mail to demo2; the mail server holds its answer to the
    /// final dot (`answer`), node-a is SIGKILLed while it waits, node-b takes over. Returns
    /// the device's `sent` line once it came, after checking the invariants: one copy in
    /// demo2's INBOX and one in demo1's Sent, one outcome line, never two primaries.
    func sendWhileThePrimaryDies(_ answer: SubmissionPolicy.Answer) async throws -> (TestCluster.RequestLine, inDoubt: [String: Double]) {
        let policy = try await SubmissionPolicy.start(plan: [answer])
        defer { policy.stop() }
        var result: (TestCluster.RequestLine, [String: Double])?
        try await withMailPair(policy: policy) { cluster in
            let (email, pin) = Self.users[0]
            try cluster.control(pin: pin, ["send", "--to", Self.users[1].0, "--subject", "in doubt", "--body", "sent as node-a died"])
            try await cluster.waitFor("the mail server asked about the message", seconds: 20) { policy.requests >= 1 }
            cluster.nodes["node-a"]!.kill()  // while the server holds its answer to the final dot
            try await cluster.waitFor("node-b primary", seconds: 10) { await cluster.primaries() == ["node-b"] }
            var sent: TestCluster.RequestLine?
            try await cluster.waitFor("the device hears what became of its mail", seconds: 60) {
                sent = cluster.requestLines(pin: pin).first { $0.service == "sent" }
                return sent != nil
            }
            let line = try #require(sent)
            let id = try #require(line.message_id)
            #expect(line.state == "sent", "\(line.reason ?? "")")
            try await cluster.waitFor("the mail in demo2's INBOX and demo1's Sent") {
                let inbox = try await cluster.messages(Self.users[1].0), sentFolder = try await cluster.messages(email, in: "Sent")
                return inbox.contains { $0.messageID == id } && sentFolder.contains { $0.messageID == id }
            }
            try await Task.sleep(for: .seconds(3))  // room for a second copy, or a second outcome
            #expect(try await cluster.messages(Self.users[1].0).filter { $0.messageID == id }.count == 1, "delivered once")
            #expect(try await cluster.messages(email, in: "Sent").filter { $0.messageID == id }.count == 1, "one copy in Sent")
            #expect(cluster.requestLines(pin: pin).filter { $0.service == "sent" }.count == 1, "one outcome line")
            #expect(cluster.relayAudit().maxServingPrimaries <= 1, "one primary at a time")
            var settled: [String: Double] = [:]
            for resolution in ["witness", "resent"] {
                settled[resolution] = try await cluster.metric("bramble_mail_in_doubt_total{resolution=\"\(resolution)\"}", node: "node-b") ?? 0
            }
            result = (line, settled)
        }
        return try #require(result)
    }

    /// Killed after the final dot, before the answer: the server accepted the mail, and
    /// node-b finds its copy in Sent (the witness), records it sent, and never sends it again.
    @Test func aPrimaryKilledBeforeTheAnswerToItsFinalDotLeavesAMailThatIsSentOnce() async throws {
        let (_, inDoubt) = try await sendWhileThePrimaryDies(.init(holdMs: 4_000, action: "DUNNO"))
        #expect(inDoubt == ["witness": 1, "resent": 0], "settled by its copy in Sent: \(inDoubt)")
    }

    /// Killed after the final dot, and the server then refused the mail: no copy in Sent,
    /// so once the attempt can no longer complete (its deadline, the server's timeout and
    /// delivery's grace past) node-b sends it again, under the same Message-ID, once.
    @Test func aPrimaryKilledBeforeARefusalOfItsFinalDotLeavesAMailThatIsSentAgainOnce() async throws {
        let (_, inDoubt) = try await sendWhileThePrimaryDies(.init(holdMs: 3_000, action: "REJECT refused while its sender died (test)"))
        #expect(inDoubt == ["witness": 0, "resent": 1], "settled by the missing copy: \(inDoubt)")
    }

    /// Reconciliation across a failover: a desktop client (IMAP as demo1, its own
    /// password) reads, files and expunges 20 mails while node-a is SIGKILLed and node-b
    /// promotes. Every mail ends on the device in its true state (as IMAP shows it), and no
    /// (mail, state) line comes twice: the watermarks and the mails' states moved together.
    @Test func reconciliationAcrossAKilledPrimaryEndsInTheTrueStateAndRepeatsNoLine() async throws {
        try await withMailPair { cluster in
            let (email, pin) = Self.users[0]
            let ids = (0..<20).map { "<rec-\($0)-\(UUID().uuidString.prefix(8))@bramble.test>" }
            for (i, id) in ids.enumerated() { try await cluster.sendMail(to: email, subject: "rec \(i)", body: "body \(i)", messageID: id) }
            try await cluster.waitFor("the 20 mails shown", seconds: 30) {
                Set(ids).isSubset(of: Set(cluster.mailShown(pin: pin).map(\.message_id)))
            }
            try await Task.sleep(for: .seconds(1))  // a check records the folders' watermarks
            try await cluster.desktop(email) { imap in _ = try await imap.run("CREATE Archiv") }
            // Each mail: 0 read, 1 read then filed, 2 filed, 3 expunged, 4 left alone.
            for (i, id) in ids.enumerated() {
                if i == 8 { cluster.nodes["node-a"]!.kill() }
                try await cluster.desktop(email) { imap in
                    _ = try await imap.select("INBOX")
                    guard let uid = try await imap.uidSearch(header: "Message-ID", value: id).first else { return }
                    switch i % 5 {
                    case 0: try await imap.uidStore("\(uid)", flags: ["\\Seen"], add: true)
                    case 1:
                        try await imap.uidStore("\(uid)", flags: ["\\Seen"], add: true)
                        try await imap.uidMove("\(uid)", to: "Archiv")
                    case 2: try await imap.uidMove("\(uid)", to: "Archiv")
                    case 3:
                        try await imap.uidStore("\(uid)", flags: ["\\Deleted"], add: true)
                        try await imap.uidExpunge("\(uid)")
                    default: break
                    }
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            try await cluster.waitFor("node-b primary", seconds: 10) { await cluster.primaries() == ["node-b"] }

            // The truth, as a desktop sees it.
            var truth: [String: TestCluster.StateLine.Shape] = [:]
            for folder in ["INBOX", "Archiv"] {
                for m in try await cluster.messages(email, in: folder) where ids.contains(m.messageID) {
                    truth[m.messageID] = .init(m.messageID, read: m.flags.contains("\\Seen"), deleted: false, folder: folder)
                }
            }
            for id in ids where truth[id] == nil { truth[id] = .init(id, read: false, deleted: true, folder: "") }
            /// The device's view: a mail's last state line, else as it arrived (unread, in the INBOX).
            func deviceView() -> [String: TestCluster.StateLine.Shape] {
                var view = Dictionary(uniqueKeysWithValues: ids.map { ($0, TestCluster.StateLine.Shape($0, read: false, deleted: false, folder: "INBOX")) })
                for line in cluster.stateLines(pin: pin) where view[line.message_id] != nil { view[line.message_id] = line.shape }
                return view
            }
            try await cluster.waitFor("every mail in its true state on the device", seconds: 40) { deviceView() == truth }
            try await Task.sleep(for: .seconds(2))  // room for a repeat to show up
            #expect(deviceView() == truth)
            let lines = cluster.stateLines(pin: pin).map(\.shape)
            let repeats = Dictionary(grouping: lines, by: { $0 }).filter { $0.value.count > 1 }.keys
            #expect(repeats.isEmpty, "state lines repeated: \(Array(repeats.prefix(3)))")
            #expect(lines.count <= 4 * 6, "at most one line per change (24 changes): \(lines.count)")
        }
    }
}
