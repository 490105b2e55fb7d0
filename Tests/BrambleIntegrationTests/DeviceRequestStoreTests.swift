import BrambleCore
@testable import BrambleServer
@preconcurrency import Crypto
import Logging
import PostgresNIO
import Testing

/// A device's requests against a real PostgreSQL: a repeat is recognised while its row is
/// kept, and once answered requests are pruned the device's floor makes a replay of one
/// still a repeat.
@Suite(.serialized) struct DeviceRequestStoreTests {
    @Test func aReplayedRequestStaysARepeatAfterItsRowWasPruned() async throws {
        try await withConfigStore { store in
            let pin = PIN(0x0F10_0001)
            _ = try await store.addUser(email: "floor@example.test", displayName: "")
            _ = try await store.provisionDevice(email: "floor@example.test", pin: pin, key: SymmetricKey(size: .bits256))
            let epoch = try #require(try await store.takeLease("q", node: "x", expectedEpoch: 0, durationMs: 60_000))
            func record(_ refs: [UInt64]) async throws -> Set<UInt64> {
                let requests = refs.map { PendingRequest(pin: pin, ref: $0, request: .more(messageID: "<m\($0)@x>")) }
                let (repeats, refused) = try await store.recordRequests(requests, pair: "q", node: "x", epoch: epoch)
                #expect(refused.isEmpty)
                return Set(repeats.map(\.ref))
            }
            #expect(try await record([1, 2]).isEmpty)
            #expect(try await record([2]) == [2], "a repeat while its row is kept")

            // Both answered eight days ago, then pruned (requests are kept seven days).
            try await store.client.query(
                "UPDATE device_requests SET state = 'done', done_at = now() - interval '8 days' WHERE pin = \(Int64(pin.value))")
            try await store.pruneMail(mailDays: 30, requestDays: 7)
            var rows = -1
            for try await n in try await store.client.query("SELECT count(*) FROM device_requests").decode(Int.self) { rows = n }
            #expect(rows == 0)

            #expect(try await record([1, 2, 3]) == [1, 2], "replays of pruned requests are repeats; a new number is new")
            var pending = -1
            for try await n in try await store.client.query("SELECT count(*) FROM device_requests WHERE state = 'pending'").decode(Int.self) {
                pending = n
            }
            #expect(pending == 1, "only request 3 waits to be acted on")
        }
    }
}
