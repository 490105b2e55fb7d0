@testable import BrambleTestSupport
import BrambleAPI
import BrambleNet
import Foundation
import Logging
import PostgresNIO
import Testing

/// A push's answer tells the truth about its commit, against a real PostgreSQL made to
/// stall: "not accepted" only when the commit cannot have happened (so the item never
/// arrives), "outcome unknown" when it may have (and a retry with the same
/// Idempotency-Key then shows it exactly once).
@Suite(.serialized) struct PushOutcomeTests {
    static let email = "olga@example.test"
    static let pin = "0D6A"

    /// Runs `body` with a superuser connection to the cluster's database.
    func asSuperuser(_ cluster: TestCluster, _ body: (PostgresClient) async throws -> Void) async throws {
        let client = PostgresClient(configuration: cluster.superuserConfiguration(), backgroundLogger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            try await body(client)
        }
    }

    @Test func aPushStuckBeforeItsCommitIsAnsweredNotAcceptedAndNeverArrives() async throws {
        try await TestCluster.with { cluster in
            try cluster.provision(email: Self.email, pin: Self.pin)
            try cluster.startDevice(pin: Self.pin)
            try await asSuperuser(cluster) { pg in
                // Another session holds the device's row: the push's transaction waits for it,
                // before COMMIT, past its 2 s bound.
                let log = Logger(label: "test")
                let holder = Task {
                    try await pg.withConnection { connection in
                        try await connection.query("BEGIN", logger: log)
                        try await connection.query("SELECT pin FROM devices WHERE pin = \(Int64(0x0D6A)) FOR UPDATE", logger: log)
                        try await Task.sleep(for: .seconds(4))
                        try await connection.query("ROLLBACK", logger: log)
                    }
                }
                try await Task.sleep(for: .milliseconds(300))
                let reply = try await cluster.admin.raw(.POST, PushAPI.path, body: PushRequestBody(to: Self.pin, subject: "refused"))
                #expect(reply.status == 503 && reply.error?.code == .notAccepted, "\(reply.status) \(reply.error?.error ?? "")")
                try await holder.value
            }
            // The stalled transaction went on once the row was free, found its caller gone,
            // and rolled back: nothing to deliver, the sequence untouched.
            let accepted = try #require(await cluster.pushID(to: Self.pin, subject: "after"))
            try await cluster.waitFor("the later push shown") { cluster.shown(pin: Self.pin).map(\.push_id) == [accepted] }
            try await Task.sleep(for: .seconds(1))
            #expect(cluster.shown(pin: Self.pin).map(\.subject) == ["after"], "the refused push never arrives")
            #expect(try await cluster.admin.call(.GET, AdminAPI.device(Self.pin), as: DeviceRecord.self).last_seq == 1)
        }
    }

    @Test func aPushStuckInItsCommitIsAnsweredOutcomeUnknownAndARetryWithItsKeyShowsItOnce() async throws {
        try await TestCluster.with { cluster in
            try cluster.provision(email: Self.email, pin: Self.pin)
            try cluster.startDevice(pin: Self.pin)
            try await asSuperuser(cluster) { pg in
                // Every COMMIT now waits for a synchronous standby that does not exist: the
                // push's commit is written locally but not yet acknowledged.
                try await pg.query("ALTER SYSTEM SET synchronous_standby_names = 'nobody'")
                try await pg.query("SELECT pg_reload_conf()")
                let push = PushRequestBody(to: Self.pin, subject: "maybe")
                let first = try await cluster.admin.raw(.POST, PushAPI.path, body: push, headers: [(PushAPI.idempotencyKeyHeader, "k-maybe")])
                #expect(first.status == 504 && first.error?.code == .outcomeUnknown, "\(first.status) \(first.error?.error ?? "")")
                // A retry while the first is still stuck in its commit does not wait behind it
                // only to say "not accepted": the key is in progress.
                let early = try await cluster.admin.raw(.POST, PushAPI.path, body: push, headers: [(PushAPI.idempotencyKeyHeader, "k-maybe")])
                #expect(early.status == 409 && early.error?.code == .idempotencyKeyInProgress, "\(early.status) \(early.error?.error ?? "") \(String(decoding: early.body, as: UTF8.self))")
                try await pg.query("ALTER SYSTEM RESET synchronous_standby_names")
                try await pg.query("SELECT pg_reload_conf()")
                // The retry the answer asked for, with the same key; while the first attempt is
                // still finishing its commit the key is in progress: again a little later (README).
                var answered: PushAccepted?
                for _ in 0..<50 where answered == nil {
                    do {
                        answered = try await cluster.admin.push(push, idempotencyKey: "k-maybe")
                    } catch let failure as BrambleClient.Failure {
                        guard case .api(_, let answer) = failure, answer.code == .idempotencyKeyInProgress else { throw failure }
                        try await Task.sleep(for: .milliseconds(200))
                    }
                }
                let retry = try #require(answered, "the retry was accepted within 10 s")
                try await cluster.waitFor("the item shown") { cluster.shown(pin: Self.pin).map(\.push_id) == [retry.id] }
                try await Task.sleep(for: .seconds(1))
                #expect(cluster.shown(pin: Self.pin).count == 1, "shown exactly once")
            }
        }
    }
}
