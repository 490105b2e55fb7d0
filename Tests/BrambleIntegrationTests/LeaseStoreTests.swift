@testable import BrambleTestSupport
import BrambleCore
import BrambleNet
import BrambleServer
import Logging
import NIOConcurrencyHelpers
import PostgresNIO
import Testing

/// The HA lease statements against a real PostgreSQL: one winner per epoch, renewals and
/// fenced writes fail once the lease has moved on.
@Suite(.serialized) struct LeaseStoreTests {
    func withStore(_ body: (ConfigStore) async throws -> Void) async throws {
        try await withConfigStore(body)
    }

    @Test func ofTwoNodesRacingForTheLeaseExactlyOneWinsAndTheEpochGoesUpByOne() async throws {
        try await withStore { store in
            for round in 0..<5 {
                let expected = try await store.readPair("p", node: "a").lease?.epoch ?? 0
                async let a = store.takeLease("p", node: "a", expectedEpoch: expected, durationMs: 1000)
                async let b = store.takeLease("p", node: "b", expectedEpoch: expected, durationMs: 1000)
                let winners = [try await a, try await b].compactMap { $0 }
                #expect(winners == [expected + 1], "round \(round)")
            }
        }
    }

    @Test func aNodeThatLostTheLeaseCannotRenewItNorCommitAFencedWrite() async throws {
        try await withStore { store in
            let epochA = try #require(try await store.takeLease("p", node: "a", expectedEpoch: 0, durationMs: 1000))
            #expect(try await store.renewLease("p", node: "a", epoch: epochA, durationMs: 1000))
            let fencedOK = try await store.fenced("p", node: "a", epoch: epochA) { _ in true }
            #expect(fencedOK)

            let epochB = try #require(try await store.takeLease("p", node: "b", expectedEpoch: epochA, durationMs: 1000))
            #expect(epochB == epochA + 1)
            #expect(try await store.renewLease("p", node: "a", epoch: epochA, durationMs: 1000) == false)
            await #expect(throws: ConfigStore.FencedError.self) {
                try await store.fenced("p", node: "a", epoch: epochA) { conn in
                    try await conn.query("INSERT INTO events (node, kind, detail) VALUES ('a', 'stale-write', 'must not commit')", logger: Logger(label: "test"))
                }
            }
            var stale = 0
            for try await n in try await store.client.query("SELECT count(*) FROM events WHERE kind = 'stale-write'").decode(Int.self) { stale = n }
            #expect(stale == 0, "a fenced transaction committed nothing")
        }
    }

    /// The holder's renewal does not wait for its own fenced transactions in flight (after
    /// a database switchover, commits waiting for a synchronous standby that has just
    /// rejoined kept the lease row locked until a renewal timed out and the pair failed
    /// over); another node's take does wait for them, so no write of the old epoch
    /// commits after the new epoch begins.
    @Test func aRenewalDoesNotWaitForTheHoldersFencedWritesButATakeByAnotherNodeDoes() async throws {
        try await withStore { store in
            let logger = Logger(label: "test")
            let e = try #require(try await store.takeLease("p", node: "a", expectedEpoch: 0, durationMs: 60_000))
            /// A fenced transaction of node a, open (its write made, not committed) until
            /// `release` yields; `open` yields once it holds its lock. Bounded: 15 s.
            func inFlight(_ detail: String, open: AsyncStream<Void>.Continuation, release: AsyncStream<Void>) -> Task<Void, any Error> {
                Task {
                    defer { open.finish() }  // a body that failed early does not leave its waiter waiting
                    try await store.fenced("p", node: "a", epoch: e) { conn in
                        try await conn.query("INSERT INTO events (node, kind, detail) VALUES ('a', 'in-flight', \(detail))", logger: logger)
                        open.yield()
                        try await withDeadline(ms: 15_000) { for await _ in release { return } }
                    }
                }
            }

            // The renewal answers while the write is still open: had it waited for the
            // write's lock, it would not answer before the write ended (the deadline says so).
            let (opened, open) = AsyncStream.makeStream(of: Void.self)
            let (released, release) = AsyncStream.makeStream(of: Void.self)
            let write = inFlight("before the renewal", open: open, release: released)
            for await _ in opened { break }
            let renewed = try await withDeadline(ms: 5_000) { try await store.renewLease("p", node: "a", epoch: e, durationMs: 60_000) }
            #expect(renewed)
            release.yield()
            try await write.value

            // Another node's take waits until the write in flight has committed.
            let (opened2, open2) = AsyncStream.makeStream(of: Void.self)
            let (released2, release2) = AsyncStream.makeStream(of: Void.self)
            let write2 = inFlight("before the take", open: open2, release: released2)
            for await _ in opened2 { break }
            let takenAt = NIOLockedValueBox<Bool>(false)
            let take = Task {
                defer { takenAt.withLockedValue { $0 = true } }
                return try await store.takeLease("p", node: "b", expectedEpoch: e, durationMs: 1_000)
            }
            // Seen waiting for the row's lock on the server (bounded), and not done.
            let deadline = ContinuousClock.now + .seconds(10)
            var waiting = 0
            while waiting == 0, ContinuousClock.now < deadline {
                for try await n in try await store.client.query("""
                    SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'WITH locked AS%'
                    """).decode(Int.self) { waiting = n }
                if waiting == 0 { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(waiting == 1 && !takenAt.withLockedValue { $0 }, "the take waits for the old epoch's write in flight")
            release2.yield()
            try await write2.value
            #expect(try await take.value == e + 1)
            var committed = 0
            for try await n in try await store.client.query("SELECT count(*) FROM events WHERE kind = 'in-flight'").decode(Int.self) { committed = n }
            #expect(committed == 2, "both writes of the old epoch committed")
        }
    }

    @Test func aHandoverNamesTheNextHolderAndTheHeartbeatShowsThePeer() async throws {
        try await withStore { store in
            let e = try #require(try await store.takeLease("p", node: "a", expectedEpoch: 0, durationMs: 1000))
            try await store.writeHeartbeat(.init(pair: "p", node: "a", role: .primary, epoch: e, score: 11, requestsLease: false, apiURL: ""))
            try await store.writeHeartbeat(.init(pair: "p", node: "b", role: .standby, epoch: nil, score: 9, requestsLease: true, apiURL: ""))
            try await store.releaseLease("p", node: "a", epoch: e, handoverTo: "b")
            let seenByB = try await store.readPair("p", node: "b")
            #expect(seenByB.lease?.holder == nil)
            #expect(seenByB.lease?.handoverTo == "b")
            #expect(seenByB.peer?.node == "a" && seenByB.peer?.score == 11)
            #expect(try await store.readPair("p", node: "a").peer?.requestsLease == true)
        }
    }

    @Test func aFencedTransactionLeftOpenByAFrozenNodeDoesNotBlockTheTakeoverForLong() async throws {
        try await TestCluster.with { cluster in
            let logger = Logger(label: "test")
            var database = NodeConfiguration.Database()
            database.port = cluster.pgPort
            database.password = try cluster.databasePassword
            database.tls = TLSFiles(ca: cluster.tls.ca)
            // Each node as the server configures it, with a 1 s lease.
            let frozenClient = PostgresClient(configuration: try ConfigStore.clientConfiguration(database, leaseMs: 1_000, maximumConnections: 2),
                                              backgroundLogger: logger)
            let standbyClient = PostgresClient(configuration: try ConfigStore.clientConfiguration(database, leaseMs: 1_000, maximumConnections: 2),
                                               backgroundLogger: logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await frozenClient.run() }
                group.addTask { await standbyClient.run() }
                let frozen = ConfigStore(client: frozenClient, vault: MasterKeyVault(kek: cluster.keyEncryptionKey), logger: logger)
                let standby = ConfigStore(client: standbyClient, vault: MasterKeyVault(kek: cluster.keyEncryptionKey), logger: logger)
                let e = try #require(try await frozen.takeLease("p", node: "a", expectedEpoch: 0, durationMs: 1_000))
                // Node a freezes inside a fenced transaction, holding the lease row FOR KEY SHARE.
                _ = Task {
                    try await frozen.fenced("p", node: "a", epoch: e) { conn in
                        try await Task.sleep(for: .seconds(4))
                        try await conn.query("INSERT INTO events (node, kind, detail) VALUES ('a', 'frozen-write', 'must not commit')", logger: Logger(label: "test"))
                    }
                }
                try await Task.sleep(for: .milliseconds(300))
                let started = ContinuousClock.now
                let taken = try await standby.takeLease("p", node: "b", expectedEpoch: e, durationMs: 1_000)
                let waited = ContinuousClock.now - started
                #expect(taken == e + 1)
                #expect(waited < .seconds(3), "the server ended the frozen session; the take waited \(waited)")
                // (The frozen task itself is left behind: postgres-nio 1.33.2 does not return
                // from a transaction whose session the server ended; the node bounds such
                // calls with a deadline.)
                try await Task.sleep(for: .seconds(5))  // past the frozen body's 4 s
                var writes = 0
                for try await n in try await standby.client.query("SELECT count(*) FROM events WHERE kind = 'frozen-write'").decode(Int.self) { writes = n }
                #expect(writes == 0)
                group.cancelAll()
            }
        }
    }
}

/// A `ConfigStore` on a test cluster's database (migrated by its node).
func withConfigStore(_ body: (ConfigStore) async throws -> Void) async throws {
    try await TestCluster.with { cluster in
        let logger = Logger(label: "test")
        let client = PostgresClient(configuration: try cluster.databaseConfiguration(), backgroundLogger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            try await body(ConfigStore(client: client, vault: MasterKeyVault(kek: cluster.keyEncryptionKey), logger: logger))
            group.cancelAll()
        }
    }
}
