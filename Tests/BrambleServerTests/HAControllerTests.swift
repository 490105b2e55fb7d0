import BrambleCore
import BrambleNet
@testable import BrambleServer
import MetricsTestKit
import Testing

/// The HA manager in process: two managers over one in-memory pair store, followers that
/// record what they are told, and a clock the test advances — no database, no sleeping
/// for real time to pass.
@Suite struct HAControllerTests {
    final class Node: Sendable {
        let name: String
        let ha: HAController
        let inbox = HAInbox()
        let snapshot = HASnapshotBox()
        let health: SettableHealth
        let log: CallLog
        let metrics: TestMetrics

        init(_ name: String, store: InMemoryPairStore, clock: ManualClock, log: CallLog, score: Int = 12) {
            self.name = name
            self.log = log
            health = SettableHealth(score: score)
            let (nodeMetrics, factory) = testMetrics()
            metrics = factory
            var configuration = HAController.Configuration(pair: "p", node: name, apiURL: "http://\(name)")
            configuration.promotionHoldOffMs = 3_000
            ha = HAController(configuration: configuration, store: store,
                              followers: [RecordingFollower(followerName: "\(name).dispatcher", log: log),
                                          RecordingFollower(followerName: "\(name).router", log: log)],
                              drained: { log.append("\(name).drained") }, health: health, inbox: inbox, snapshot: snapshot,
                              clock: clock, metrics: nodeMetrics, logger: quietLogger)
        }

        var role: NodeRole { snapshot.value.role }
        var epoch: UInt64? { snapshot.value.epoch }
    }

    let clock = ManualClock()
    let log = CallLog()
    let store: InMemoryPairStore

    init() { store = InMemoryPairStore(clock: clock) }

    /// Runs `body` with the nodes' managers running; stops them after.
    func with(_ nodes: [Node], _ body: ([Task<Void, any Error>]) async throws -> Void) async throws {
        let tasks = nodes.map { node in Task { try await node.ha.run() } }
        defer { tasks.forEach { $0.cancel() } }
        try await body(tasks)
    }

    func promoted(_ node: Node) async throws {
        try await advance(clock, by: 5_000, until: { node.role == .primary })
        try await eventually("\(node.name) primary") { node.role == .primary }
    }

    @Test func theFirstNodeTakesTheLeaseAtEpochOneAndItsFollowersServeInTheirOrder() async throws {
        let a = Node("a", store: store, clock: clock, log: log)
        try await with([a]) { _ in
            try await promoted(a)
            #expect(a.epoch == 1 && store.lease()?.holder == "a")
            #expect(log.entries == ["a.dispatcher.serve(1)", "a.router.serve(1)"])
            try await eventually("the promotion recorded") { store.events.contains { $0.kind == .promote && $0.epoch == 1 } }
            #expect(try a.metrics.expectCounter("bramble_promotions_total").totalValue == 1)
        }
    }

    @Test func theStandbyTakesOverAtTheNextEpochWhenThePrimaryStopsRenewing() async throws {
        let a = Node("a", store: store, clock: clock, log: log)
        let b = Node("b", store: store, clock: clock, log: log)
        try await with([a]) { aTask in
            try await promoted(a)
            try await with([b]) { _ in
                try await advance(clock, by: 1_000)
                #expect(b.role == .standby, "a healthy primary keeps the lease")
                aTask[0].cancel()  // a dies: no demotion, no release
                try await eventually("a's loop to end") { a.inbox.isClosedForTest }
                try await advance(clock, by: 3_000, until: { b.role == .primary })
                try await eventually("b primary") { b.role == .primary }
                #expect(b.epoch == 2 && store.lease()?.holder == "b")
                #expect(log.entries.suffix(2) == ["b.dispatcher.serve(2)", "b.router.serve(2)"])
                let promotion = store.events.last { $0.kind == .promote }
                #expect(promotion?.reason == .leaseExpired || promotion?.reason == .peerStale)
            }
        }
    }

    @Test func aHandoverStopsTheFollowersInReverseRecordsTheDeliveriesAndOnlyThenReleasesTheLease() async throws {
        let a = Node("a", store: store, clock: clock, log: log)
        let b = Node("b", store: store, clock: clock, log: log)
        try await with([a]) { _ in
            try await promoted(a)
            try await with([b]) { _ in
                try await advance(clock, by: 600)  // a has read b's heartbeat
                try await eventually("a to see its standby") { a.snapshot.value.peer?.node == "b" }
                let outcome = await a.inbox.requestFailover(to: nil)
                #expect(outcome == .handedOver(epoch: 1, to: "b"))
                let aSide = log.entries.filter { $0.hasPrefix("a.") }
                #expect(aSide == ["a.dispatcher.serve(1)", "a.router.serve(1)", "a.router.stop(1)", "a.dispatcher.stop(1)", "a.drained"])
                let demotion = try #require(store.events.last { $0.kind == .demote })
                #expect(demotion.reason == .operatorRequest && demotion.detail.hasSuffix("handed over to b"))
                #expect(store.lease()?.holder == nil && store.lease()?.handoverTo == "b", "released, to b, after the event")
                try await advance(clock, by: 1_000, until: { b.role == .primary })
                try await eventually("b primary") { b.role == .primary }
                #expect(b.epoch == 2)
                #expect(store.events.last { $0.kind == .promote }?.reason == .handover)
            }
        }
    }

    @Test func aSwitchoverToAStandbyThatCannotServeIsRefusedAndChangesNothing() async throws {
        let a = Node("a", store: store, clock: clock, log: log)
        let b = Node("b", store: store, clock: clock, log: log, score: 1)
        try await with([a, b]) { _ in
            try await promoted(a)
            try await advance(clock, by: 600)
            try await eventually("a to see its standby") { a.snapshot.value.peer?.node == "b" }
            #expect(await a.inbox.requestFailover(to: nil) == .refused(.standbyBelowPromotion(standby: "b", score: 1, threshold: 3)))
            #expect(await b.inbox.requestFailover(to: nil) == .refused(.notPrimary(role: .standby)))
            #expect(a.role == .primary && a.epoch == 1)
        }
    }

    @Test func aFencedWriteMakesThePrimaryDemote() async throws {
        let a = Node("a", store: store, clock: clock, log: log)
        try await with([a]) { _ in
            try await promoted(a)
            a.inbox.reportFenced(epoch: 1)
            try await eventually("a demoted") { a.role == .standby }
            #expect(store.events.last { $0.kind == .demote }?.reason == .leaseLost)
            #expect(log.entries.suffix(3) == ["a.router.stop(1)", "a.dispatcher.stop(1)", "a.drained"])
        }
    }

    @Test func aPrimaryThatLosesTheDatabaseKeepsServingDegradedAndRenewsWhenItReturns() async throws {
        let a = Node("a", store: store, clock: clock, log: log)
        try await with([a]) { _ in
            try await promoted(a)
            store.state.withLockedValue { $0.reachable = false }
            try await advance(clock, by: 2_000, until: { a.role == .primaryDegraded })
            #expect(a.role == .primaryDegraded, "no other node can promote without the database either")
            #expect(!log.entries.contains("a.router.stop(1)"))
            let renewals = store.state.withLockedValue { $0.renewals }
            store.state.withLockedValue { $0.reachable = true }
            try await advance(clock, by: 1_000, until: { a.role == .primary })
            #expect(a.role == .primary && a.epoch == 1)
            #expect(store.state.withLockedValue { $0.renewals } > renewals)
        }
    }

    @Test func afterTheManagerStopsEveryRequestIsAnsweredAtOnce() async throws {
        let a = Node("a", store: store, clock: clock, log: log)
        try await with([a]) { _ in
            try await promoted(a)
            await a.inbox.shutdown()
            #expect(a.role == .stopped)
            #expect(store.events.last { $0.kind == .demote }?.reason == .shutdown)
            #expect(store.lease()?.holder == nil, "the lease released on the way out")
            #expect(store.state.withLockedValue { $0.heartbeats["a"]?.beat.role } == .stopped)
            // Nothing waits for a loop that has ended.
            #expect(await a.inbox.requestFailover(to: nil) == .unavailable("the node is stopping"))
            await a.inbox.shutdown()
        }
    }
}
