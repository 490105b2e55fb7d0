@testable import BrambleTestSupport
import BrambleAPI
import BrambleCore
import Foundation
import Testing

/// The push path end to end against real processes: PostgreSQL, relay, node, devices.
@Suite(.serialized) struct PushPathTests {
    static let email = "alice@example.test"
    static let pin = "2A00F00D"

    /// Pushes `count` items to `to`, `concurrency` at a time; returns the accepted ids.
    static func pushMany(_ cluster: TestCluster, to: String, count: Int, concurrency: Int, prefix: String,
                         pause: Duration = .zero) async throws -> [String] {
        try await withThrowingTaskGroup(of: [String].self) { group in
            for worker in 0..<concurrency {
                group.addTask {
                    var ids: [String] = []
                    for n in stride(from: worker, to: count, by: concurrency) {
                        if let id = await cluster.pushID(to: to, subject: "\(prefix) \(n)") { ids.append(id) }
                        if pause > .zero { try await Task.sleep(for: pause) }
                    }
                    return ids
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
    }

    /// Every accepted push shown exactly once, and nothing shown that was not accepted.
    static func expectExactlyOnce(_ cluster: TestCluster, pin: String, accepted: [String]) async throws {
        try await cluster.waitFor("\(accepted.count) items shown", seconds: 90) {
            cluster.shown(pin: pin).count >= accepted.count
        }
        try await Task.sleep(for: .milliseconds(500))  // room for a stray duplicate to show up
        let shown = cluster.shown(pin: pin)
        let shownIDs = shown.map(\.push_id)
        #expect(shown.count == accepted.count, "shown \(shown.count), accepted \(accepted.count)")
        #expect(Set(shownIDs).count == shownIDs.count, "an item was shown twice")
        #expect(Set(shownIDs) == Set(accepted), "shown and accepted differ")
        #expect(Set(shown.map(\.ref)) == Set((1...UInt64(accepted.count)).map { $0 }), "sequence numbers are not 1…n")
    }

    @Test func aThousandPushesArriveExactlyOnce() async throws {
        try await TestCluster.with { cluster in
            try cluster.provision(email: Self.email, pin: Self.pin)
            try cluster.startDevice(pin: Self.pin)
            let accepted = try await Self.pushMany(cluster, to: Self.email, count: 1000, concurrency: 32, prefix: "item")
            #expect(accepted.count == 1000)
            try await Self.expectExactlyOnce(cluster, pin: Self.pin, accepted: accepted)
            try await cluster.waitFor("acknowledgements recorded") {
                try await cluster.admin.call(.GET, PushAPI.statusPath(accepted.last!), as: PushStatus.self).state == .acked
            }
        }
    }

    @Test func aDeviceKilledAndRestartedMidStreamShowsEveryItemOnce() async throws {
        try await TestCluster.with { cluster in
            try cluster.provision(email: Self.email, pin: Self.pin)
            try cluster.startDevice(pin: Self.pin)
            async let pushed = Self.pushMany(cluster, to: Self.email, count: 400, concurrency: 4, prefix: "kill",
                                             pause: .milliseconds(5))
            for round in 1...3 {
                try await cluster.waitFor("items before kill \(round)") { cluster.shown(pin: Self.pin).count >= 80 * round }
                cluster.device(Self.pin)!.kill()
                try await Task.sleep(for: .milliseconds(300))
                try cluster.startDevice(pin: Self.pin)
            }
            let accepted = try await pushed
            #expect(accepted.count == 400)
            try await Self.expectExactlyOnce(cluster, pin: Self.pin, accepted: accepted)
        }
    }

    @Test func aRelayRestartedMidStreamLosesNothingAccepted() async throws {
        try await TestCluster.with { cluster in
            try cluster.provision(email: Self.email, pin: Self.pin)
            try cluster.startDevice(pin: Self.pin)
            async let pushed = Self.pushMany(cluster, to: Self.email, count: 400, concurrency: 4, prefix: "relay",
                                             pause: .milliseconds(5))
            try await cluster.waitFor("items before the relay dies") { cluster.shown(pin: Self.pin).count >= 100 }
            cluster.relay!.kill()
            try await Task.sleep(for: .milliseconds(500))
            try cluster.startRelay()
            let accepted = try await pushed
            #expect(accepted.count == 400, "the node accepts pushes while the relay is down")
            try await Self.expectExactlyOnce(cluster, pin: Self.pin, accepted: accepted)
        }
    }

    @Test func itemsForAnOfflineDeviceWaitAndArriveWhenItConnects() async throws {
        try await TestCluster.with { cluster in
            try cluster.provision(email: Self.email, pin: Self.pin)
            var accepted: [String] = []
            for n in 0..<12 { accepted.append(try #require(await cluster.pushID(to: Self.pin, subject: "offline \(n)"))) }
            let before = try await cluster.admin.call(.GET, PushAPI.statusPath(accepted[0]), as: PushStatus.self)
            #expect(before.state != .acked && before.devices.allSatisfy { $0.state != .acked })
            try cluster.startDevice(pin: Self.pin)
            try await Self.expectExactlyOnce(cluster, pin: Self.pin, accepted: accepted)
        }
    }
}
