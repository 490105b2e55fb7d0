@testable import BrambleTestSupport
import BrambleCore
import BrambleNet
import Foundation
import Testing

/// Instant messaging through the HA pair on real processes (Prosody, PostgreSQL, the
/// relay, two nodes, devices): every message the IM server accepted for a logged-in
/// device user is shown exactly once on the device, whatever happens to the primary or to
/// the IM server; the new primary logs the cached sessions back in by itself.
@Suite(.serialized) struct IMFailoverTests {
    static let users = [("demo1@example.test", "2A00F20D"), ("demo2@example.test", "2A00F20E")]
    static let sender = "im-sender@example.test"

    func withIMPair(_ body: (TestCluster) async throws -> Void) async throws {
        var options = TestCluster.Options()
        options.nodes = ["node-a", "node-b"]
        options.im = true
        try await TestCluster.with(options) { cluster in
            for (email, pin) in Self.users {
                try cluster.provision(email: email, pin: pin)
                try cluster.startDevice(pin: pin)
                try await cluster.imLogin(pin: pin, jid: email)
            }
            for (_, pin) in Self.users { #expect(try await cluster.imSession(pin: pin).state == "logged-in") }
            try await body(cluster)
        }
    }

    /// Sends `count` messages, one every `everyMs`, alternating between the users; `midway`
    /// runs after `midwayAfter`. A message counts once the IM server routed it (the
    /// sender's ping after it answered); the sender logs in again if its session drops.
    func imStream(_ cluster: TestCluster, count: Int, everyMs: Int, midwayAfter: Int = .max,
                  midway: () async throws -> Void = {}) async throws -> [String: String] {
        var accepted: [String: String] = [:]
        var desk: XMPPChatClient? = try await cluster.desk(Self.sender)
        for i in 0..<count {
            let (email, pin) = Self.users[i % Self.users.count]
            let id = "im-\(i)-\(UUID().uuidString.prefix(8))"
            if desk == nil || desk?.isConnected == false { desk = try? await cluster.desk(Self.sender) }
            if let desk, (try? await desk.send(to: email, body: "message \(i)", id: id)) != nil { accepted[id] = pin }
            if i + 1 == midwayAfter { try await midway() }
            try await Task.sleep(for: .milliseconds(everyMs))
        }
        await desk?.close()
        return accepted
    }

    func expectEachOnce(_ cluster: TestCluster, _ accepted: [String: String], seconds: Double = 60) async throws {
        for (_, pin) in Self.users {
            let wanted = Set(accepted.filter { $0.value == pin }.keys)
            try await cluster.waitFor("device \(pin) to show \(wanted.count) messages", seconds: seconds) {
                wanted.isSubset(of: Set(cluster.shown(pin: pin, service: "im").map { $0.id ?? "" }))
            }
        }
        try await Task.sleep(for: .seconds(1))  // room for a duplicate to show up
        for (_, pin) in Self.users {
            let ids = cluster.shown(pin: pin, service: "im").compactMap(\.id)
            let repeats = Dictionary(grouping: ids, by: { $0 }).filter { $0.value.count > 1 }.keys
            #expect(repeats.isEmpty, "device \(pin) showed \(repeats.count) messages twice: \(repeats.prefix(3))")
            #expect(Set(ids).isSubset(of: Set(accepted.filter { $0.value == pin }.keys)), "device \(pin) showed a message not its own")
        }
    }

    /// node-a is SIGKILLed mid-stream: node-b logs both sessions back in from the cache
    /// (no device logs in again) and catches up from the archive; a device's own message
    /// after the failover goes out once.
    @Test func aSIGKILLedPrimaryLosesAndDoublesNoMessageAndTheSessionsComeBack() async throws {
        try await withIMPair { cluster in
            let accepted = try await imStream(cluster, count: 60, everyMs: 50, midwayAfter: 20) {
                cluster.nodes["node-a"]!.kill()
            }
            #expect(accepted.count >= 50, "the IM server accepted \(accepted.count) of 60")
            try await expectEachOnce(cluster, accepted)
            #expect(await cluster.primaries() == ["node-b"])
            #expect(try await cluster.metric("bramble_im_sessions_resumed_total", node: "node-b") == 2)
            for (_, pin) in Self.users { #expect(cluster.shown(pin: pin, service: "im-session").count == 1, "no second login line") }
            // The device's own message after the failover, once.
            let desk = try await cluster.desk(Self.sender)
            try cluster.control(pin: Self.users[0].1, ["im", "send", "--to", Self.sender, "--body", "after the failover"])
            try await cluster.waitFor("the sender receives it") { desk.received.contains { $0.body == "after the failover" } }
            try await Task.sleep(for: .milliseconds(500))
            #expect(desk.received.filter { $0.body == "after the failover" }.count == 1)
            await desk.close()
        }
    }

    /// The primary dies before its sessions saw any message (their archives were empty at
    /// login): what arrives during the failover is still found, from the archive's start.
    @Test func aSIGKILLBeforeAnyMessageStillFindsEverythingSentDuringTheFailover() async throws {
        try await withIMPair { cluster in
            cluster.nodes["node-a"]!.kill()
            let accepted = try await imStream(cluster, count: 20, everyMs: 50)
            #expect(accepted.count == 20, "the IM server accepted \(accepted.count) of 20")
            try await expectEachOnce(cluster, accepted)
            #expect(await cluster.primaries() == ["node-b"])
        }
    }

    /// Prosody is restarted mid-stream: every session ends, the primary logs them back in
    /// as soon as it is back, and what was accepted before and after is shown once.
    @Test func prosodyRestartedUnderLoadLosesAndDoublesNothing() async throws {
        try await withIMPair { cluster in
            let accepted = try await imStream(cluster, count: 60, everyMs: 50, midwayAfter: 20) {
                try cluster.imHost!.restart()
            }
            #expect(accepted.count >= 40, "the IM server accepted \(accepted.count) of 60")
            try await expectEachOnce(cluster, accepted)
            #expect(try await cluster.metric("bramble_im_sessions_resumed_total", node: "node-a") ?? 0 >= 2)
        }
    }
}
