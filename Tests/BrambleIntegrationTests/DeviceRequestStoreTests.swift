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

    /// A send, reply and forward are recorded whole, each with its outgoing mail and the
    /// Message-ID derived from (PIN, ref) and the user's domain, in the transaction that
    /// records the request; a retry adds nothing, and a stale epoch records nothing. More
    /// requests are still read back as before, and the mail to send is not among them.
    @Test func aSendIsRecordedOnceWithItsDerivedMessageID() async throws {
        try await withConfigStore { store in
            let pin = PIN(0x0F10_0002)
            _ = try await store.addUser(email: "sender@Example.TEST", displayName: "")
            _ = try await store.provisionDevice(email: "sender@Example.TEST", pin: pin, key: SymmetricKey(size: .bits256))
            let epoch = try #require(try await store.takeLease("q", node: "x", expectedEpoch: 0, durationMs: 60_000))
            let requests: [PendingRequest] = [
                .init(pin: pin, ref: 10, request: .send(to: ["demo2@example.test"], cc: [], subject: "hi", body: "hello")),
                .init(pin: pin, ref: 11, request: .reply(messageID: "<m@x>", body: "yes", all: true)),
                .init(pin: pin, ref: 12, request: .forward(messageID: "<m@x>", to: ["d@e.test"], cc: [], body: "fyi")),
                .init(pin: pin, ref: 13, request: .more(messageID: "<m@x>")),
            ]
            var (repeats, refused) = try await store.recordRequests(requests, pair: "q", node: "x", epoch: epoch)
            #expect(repeats.isEmpty && refused.isEmpty)
            (repeats, refused) = try await store.recordRequests(Array(requests.prefix(2)), pair: "q", node: "x", epoch: epoch)
            #expect(Set(repeats.map(\.ref)) == [10, 11], "a retry is a repeat")

            var rows: [(Int64, String, String)] = []
            for try await row in try await store.client.query(
                "SELECT ref, message_id, state FROM outgoing_mail ORDER BY ref").decode((Int64, String, String).self) { rows.append(row) }
            #expect(rows.map(\.0) == [10, 11, 12])
            #expect(rows.map(\.1) == [10, 11, 12].map { OutgoingMessageID.make(pin: pin, ref: $0, domain: "Example.TEST") })
            #expect(rows.allSatisfy { $0.2 == "pending" })
            var stored: [DeviceRequest] = []
            for try await bytes in try await store.client.query(
                "SELECT payload FROM device_requests WHERE payload IS NOT NULL ORDER BY ref").decode(ByteBuffer.self) {
                stored.append(try DeviceRequest.decode(Array(buffer: bytes)))
            }
            #expect(stored == requests.prefix(3).map(\.request), "each recorded whole")
            #expect(try await store.pendingRequests().map(\.ref) == [13], "More requests alone wait for answerMore")

            // A node that lost the lease records nothing.
            let newer = try #require(try await store.takeLease("q", node: "y", expectedEpoch: epoch, durationMs: 60_000))
            #expect(newer > epoch)
            await #expect(throws: ConfigStore.FencedError.self) {
                _ = try await store.recordRequests([.init(pin: pin, ref: 20, request: .send(to: ["a@b"], cc: [], subject: "", body: ""))],
                                                   pair: "q", node: "x", epoch: epoch)
            }
            var count = -1
            for try await n in try await store.client.query("SELECT count(*) FROM outgoing_mail").decode(Int.self) { count = n }
            #expect(count == 3)
        }
    }
}
