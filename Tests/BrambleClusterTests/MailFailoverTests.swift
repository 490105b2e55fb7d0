@testable import BrambleTestSupport
import Foundation
import Testing

/// Mail through the HA pair on real processes (Postfix, Dovecot, PostgreSQL, the relay,
/// two nodes, devices): every mail Postfix accepted (250) is shown exactly once on its
/// user's device, whatever happens to the primary; More asked across a failover acts once.
@Suite(.serialized) struct MailFailoverTests {
    /// Two mailboxes with a device each.
    static let users = [("demo1@example.test", "2A00F00D"), ("demo2@example.test", "2A00F00E")]

    func withMailPair(_ body: (TestCluster) async throws -> Void) async throws {
        var options = TestCluster.Options()
        options.nodes = ["node-a", "node-b"]
        options.mail = true
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
}
