@testable import BrambleTestSupport
import BrambleAPI
import BrambleCore
import BrambleNet
import NIOHTTP1
@testable import BrambleServer
import Foundation
import Logging
import PostgresNIO
import Testing

/// The admin and push APIs' refusals: they answer clearly and change nothing.
@Suite(.serialized) struct AdminAPITests {
    @Test func badRequestsAreRefusedClearlyAndChangeNothing() async throws {
        try await TestCluster.with { cluster in
            try cluster.provision(email: "dave@example.test", pin: "DA7E")
            let noToken = BrambleClient(baseURL: cluster.nodeURL, token: "wrong-token-wrong-token", http: cluster.http)
            struct Push: Encodable { var to: String; var subject: String? }

            for (method, path, body) in [(HTTPMethod.POST, "/push", Push(to: "DA7E", subject: "x") as any Encodable),
                                         (.GET, "/admin/users", nil), (.POST, "/admin/users", ["email": "mallory@example.test"]),
                                         (.GET, "/admin/pair/events", nil)] {
                let reply = try await noToken.raw(method, path, body: body)
                #expect(reply.status == 401 && reply.error?.code == .unauthorized, "\(path) without the token")
            }

            let a = cluster.admin
            func expectRefused(_ method: HTTPMethod, _ path: String, _ body: (any Encodable)?, headers: [(String, String)] = [],
                               _ code: APIErrorCode, mentioning word: String? = nil) async throws {
                let reply = try await a.raw(method, path, body: body, headers: headers)
                #expect(reply.status == code.status && reply.error?.code == code, "\(method) \(path): \(reply.status) \(reply.error?.error ?? "")")
                if let word { #expect(reply.error?.error.contains(word) == true, "\(reply.error?.error ?? "")") }
            }
            try await expectRefused(.POST, "/push", Push(to: "nobody@example.test", subject: "x"), .notFound, mentioning: "no active device")
            try await expectRefused(.POST, "/push", Push(to: "not a pin", subject: "x"), .badRequest)
            try await expectRefused(.POST, "/push", Push(to: "DA7E", subject: nil), .badRequest, mentioning: "subject")
            try await expectRefused(.POST, "/push", Push(to: "DA7E", subject: String(repeating: "s", count: 2000)), .badRequest)
            try await expectRefused(.POST, "/push", Push(to: "DA7E", subject: "x"), headers: [("Idempotency-Key", "")], .badRequest,
                                    mentioning: "Idempotency-Key")
            try await expectRefused(.POST, "/push", Push(to: "DA7E", subject: "x"), headers: [("Idempotency-Key", String(repeating: "k", count: 256))],
                                    .badRequest, mentioning: "Idempotency-Key")
            // NUL, which the database's text cannot hold, is refused before it reaches a batch.
            try await expectRefused(.POST, "/push", Push(to: "DA7E", subject: "a\u{0}b"), .badRequest, mentioning: "NUL")
            try await expectRefused(.POST, "/push", PushRequestBody(to: "DA7E", subject: "s", body: "\u{0}\u{308}"), .badRequest, mentioning: "NUL")
            try await expectRefused(.POST, "/admin/users", ["email": "nul@example.test", "name": "a\u{0}"], .badRequest, mentioning: "NUL")
            try await expectRefused(.POST, "/admin/users", ["email": "n\u{0}ul@example.test"], .badRequest)
            try await expectRefused(.POST, "/admin/filters", ["field": "subject", "contains": "x\u{0}", "action": "do_not_forward"], .badRequest, mentioning: "NUL")
            try await expectRefused(.GET, "/push/not-a-uuid", nil, .badRequest)
            try await expectRefused(.GET, "/push/\(UUID())", nil, .notFound)
            try await expectRefused(.POST, "/admin/users", ["email": "dave@example.test"], .conflict)
            try await expectRefused(.POST, "/admin/users", ["email": "no-at-sign"], .badRequest)
            try await expectRefused(.POST, "/admin/devices", ["email": "dave@example.test", "pin": "DA7E"], .conflict)
            try await expectRefused(.POST, "/admin/devices", ["email": "ghost@example.test", "pin": "1"], .notFound)
            try await expectRefused(.GET, "/admin/pair/events?limit=0", nil, .badRequest)
            try await expectRefused(.GET, "/admin/pair/events?since_ms=yesterday", nil, .badRequest, mentioning: "since_ms")

            // None of that queued anything or added anyone.
            #expect(try await a.call(.GET, AdminAPI.device("DA7E"), as: DeviceRecord.self).last_seq == 0)
            let users = try await a.call(.GET, AdminAPI.users, as: UserList.self).users.map(\.email)
            #expect(users == ["dave@example.test"], "\(users)")
        }
    }

    /// One address, one user, however it is spelled: an address is stored trimmed,
    /// lower-case and NFC, so "josé" with é as one scalar or as e and a combining accent
    /// is the same user (a push to either reaches that user's device and no one else's),
    /// and an address the CLI percent-encodes in a path is found.
    @Test func anAddressIsOneUserHoweverItIsSpelled() async throws {
        try await TestCluster.with { cluster in
            let decomposed = "Jose\u{301}@example.test", composed = "jos\u{E9}@example.test"
            try cluster.provision(email: decomposed, pin: "E5E0001")
            try cluster.provision(email: "other@example.test", pin: "E5E0002")
            let again = try await cluster.admin.raw(.POST, AdminAPI.users, body: ["email": composed])
            #expect(again.status == 409, "the other spelling is the same user: \(again.status)")
            let users = try await cluster.admin.call(.GET, AdminAPI.users, as: UserList.self).users.map(\.email)
            #expect(users.filter { Array($0.utf8) == Array(composed.utf8) }.count == 1, "\(users.map { Array($0.utf8) })")
            // Pushes to both spellings in one burst (one group commit, likely): each reaches
            // that user's device only.
            async let a = cluster.admin.push(PushRequestBody(to: decomposed, subject: "a"))
            async let b = cluster.admin.push(PushRequestBody(to: composed, subject: "b"))
            async let c = cluster.admin.push(PushRequestBody(to: "other@example.test", subject: "c"))
            let (ra, rb, rc) = try await (a, b, c)
            #expect(ra.devices == ["0E5E0001"] && rb.devices == ["0E5E0001"] && rc.devices == ["0E5E0002"], "\(ra.devices) \(rb.devices) \(rc.devices)")
            // Shown and removed by either spelling, through the CLI's percent-encoded path.
            #expect(try cluster.bramble("user", "show", decomposed).contains("E5E0001"))
            try cluster.bramble("user", "remove", composed)
            #expect(try await cluster.admin.call(.GET, AdminAPI.users, as: UserList.self).users.map(\.email) == ["other@example.test"])
        }
    }

    /// `PATCH /admin/users/{email}`: reconciliation is on for a new user, turned off and on
    /// again, shown in the record; an unknown user is a 404, a body that is not settings a 400.
    @Test func aUsersReconciliationIsOnByDefaultAndSetThroughPATCH() async throws {
        try await TestCluster.with { cluster in
            try cluster.provision(email: "rec@example.test", pin: "E5E0003")
            let path = AdminAPI.user("rec@example.test")
            #expect(try await cluster.admin.call(.GET, path, as: UserRecord.self).reconciliation == true, "on by default")
            let off = try await cluster.admin.call(.PATCH, path, body: UserSettings(reconciliation: false), as: UserRecord.self)
            #expect(off.reconciliation == false && off.devices == ["0E5E0003"])
            #expect(try await cluster.admin.call(.GET, path, as: UserRecord.self).reconciliation == false)
            #expect(try await cluster.admin.call(.PATCH, path, body: UserSettings(), as: UserRecord.self).reconciliation == false, "nil leaves it")
            #expect(try await cluster.admin.call(.PATCH, path, body: UserSettings(reconciliation: true), as: UserRecord.self).reconciliation == true)
            #expect(try await cluster.admin.raw(.PATCH, AdminAPI.user("nobody@example.test"), body: UserSettings(reconciliation: false)).status == 404)
            #expect(try await cluster.admin.raw(.PATCH, path, body: ["reconciliation": "sometimes"]).status == 400)
            #expect(try cluster.bramble("user", "set", "rec@example.test", "--reconciliation", "off").contains("reconciliation off"))
            #expect(try cluster.bramble("user", "show", "rec@example.test").contains("reconciliation: off"))
            #expect(throws: (any Error).self) { try cluster.bramble("user", "set", "rec@example.test", "--reconciliation", "maybe") }
        }
    }

    /// The IETF draft's Idempotency-Key: a retry gets the first answer and adds nothing; the
    /// key used again for another push is refused.
    @Test func aPushRepeatedWithItsIdempotencyKeyIsCommittedOnceAndTheKeyCannotBeReusedForAnotherPush() async throws {
        try await TestCluster.with { cluster in
            try cluster.provision(email: "ida@example.test", pin: "1DA")
            let a = cluster.admin
            let push = PushRequestBody(to: "ida@example.test", subject: "once", body: "only once")
            let first = try await a.raw(.POST, PushAPI.path, body: push, headers: [(PushAPI.idempotencyKeyHeader, "order-17")])
            let again = try await a.raw(.POST, PushAPI.path, body: push, headers: [(PushAPI.idempotencyKeyHeader, "order-17")])
            #expect(first.status == 202 && again.status == 202)
            #expect(try first.decode(PushAccepted.self) == again.decode(PushAccepted.self), "the retry answers with the first push's id")
            #expect(first.headers[PushAPI.replayedHeader].isEmpty && again.headers[PushAPI.replayedHeader] == ["true"])
            let other = try await a.raw(.POST, PushAPI.path, body: PushRequestBody(to: "ida@example.test", subject: "another"),
                                        headers: [(PushAPI.idempotencyKeyHeader, "order-17")])
            #expect(other.status == 422 && other.error?.code == .idempotencyKeyReused)
            // Many at once with one key: still one commit. A request that meets another with
            // its key in the middle of committing hears 409 in progress, and its retry gets
            // the same push.
            let racing = try await withThrowingTaskGroup(of: (id: String, waited: Bool).self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        var waited = false
                        while true {
                            do {
                                return (try await a.push(PushRequestBody(to: "ida@example.test", subject: "race"), idempotencyKey: "race-1").id, waited)
                            } catch let failure as BrambleClient.Failure where failure.code == .idempotencyKeyInProgress {
                                waited = true
                                try await Task.sleep(for: .milliseconds(50))
                            }
                        }
                    }
                }
                return try await group.reduce(into: [(id: String, waited: Bool)]()) { $0.append($1) }
            }
            #expect(Set(racing.map(\.id)).count == 1, "eight concurrent requests with one key share one push id")
            #expect(try await a.call(.GET, AdminAPI.device("1DA"), as: DeviceRecord.self).last_seq == 2, "two pushes committed, not ten")
            try cluster.startDevice(pin: "1DA")
            try await cluster.waitFor("both items shown") { cluster.shown(pin: "1DA").count == 2 }
            try await Task.sleep(for: .milliseconds(500))
            #expect(cluster.shown(pin: "1DA").map(\.subject).sorted() == ["once", "race"])
        }
    }

    @Test func theCLIManagesUsersAndDevicesAndFollowsAPush() async throws {
        try await TestCluster.with { cluster in
            let env = cluster.cliEnvironment(cluster.nodeURL)
            let cli = TestCluster.bin + "/bramble"
            try runCommand(cli, ["user", "add", "--email", "Erin@Example.test", "--name", "Erin"], environment: env)
            #expect(try runCommand(cli, ["user", "list"], environment: env).contains("erin@example.test"))
            try cluster.provision(email: "erin@example.test", pin: "E1")
            #expect(try runCommand(cli, ["device", "show", "E1", "--json"], environment: env).contains("\"pin\":\"000000E1\""))
            let pushed = try runCommand(cli, ["push", "--to", "erin@example.test", "--subject", "hi", "--json"], environment: env)
            let id = try JSONDecoder().decode([String: AnyDecodable].self, from: Data(pushed.utf8))["id"]!.string!
            let before = try runCommand(cli, ["message", "status", id], environment: env)
            #expect(before.contains("queued") || before.contains("sent"), "no device yet, so not acked: \(before)")
            try cluster.startDevice(pin: "E1")
            try await cluster.waitFor("acked") { try runCommand(cli, ["message", "status", id], environment: env).contains("acked") }
            #expect(throws: CommandFailed.self) { try runCommand(cli, ["device", "provision", "--email", "x@example.test", "--pin", "zz", "--out", "/tmp/none"], environment: env) }
            #expect(try runCommand(cli, ["user", "remove", "erin@example.test"], environment: env).contains("removed"))
            #expect(throws: CommandFailed.self) { try runCommand(cli, ["user", "show", "erin@example.test"], environment: env) }
        }
    }

    /// A push application's token pushes and reads back its own pushes' state, and does
    /// nothing else; revoking it ends it at once; the admin token still does everything;
    /// tokens are never listed.
    @Test func aPushApplicationsTokenOnlyPushesAndIsRevokedAtOnce() async throws {
        try await TestCluster.with { cluster in
            try cluster.provision(email: "erin@example.test", pin: "E7170001")
            let tokenFile = cluster.dir + "/alpha-token"
            try cluster.bramble("app", "add", "alpha", "--out", tokenFile)
            #expect(((try FileManager.default.attributesOfItem(atPath: tokenFile))[.posixPermissions] as? Int) == 0o600)
            let token = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(PushAppToken.isWellFormed(token), "\(token)")
            let app = BrambleClient(baseURL: cluster.nodeURL, token: token, http: cluster.http)

            let accepted = try await app.push(PushRequestBody(to: "erin@example.test", subject: "from alpha", body: "hi"))
            #expect(accepted.devices == ["E7170001"])
            for (method, path) in [(HTTPMethod.GET, "/admin/users"), (.GET, "/admin/apps"), (.DELETE, "/admin/apps/alpha"),
                                   (.POST, "/admin/failover"), (.GET, PushAPI.path), (.DELETE, PushAPI.statusPath(accepted.id)),
                                   (.GET, PushAPI.statusPath(accepted.id) + "/x")] {
                let reply = try await app.raw(method, path)
                #expect(reply.status == 403 && reply.error?.code == .forbidden, "\(method) \(path) with a push token: \(reply.status)")
            }
            // Its own push's state it reads; the operator's and another application's pushes
            // are unknown to it (404, as for no push at all), and the operator reads them all.
            let own = try await app.raw(.GET, PushAPI.statusPath(accepted.id))
            #expect(own.status == 200, "its own push: \(own.status)")
            #expect(try own.decode(PushStatus.self).devices.map(\.pin) == ["E7170001"])
            let operatorsPush = try await cluster.admin.push(PushRequestBody(to: "erin@example.test", subject: "from the operator"))
            #expect(try await app.raw(.GET, PushAPI.statusPath(operatorsPush.id)).status == 404)
            let betaFile = cluster.dir + "/beta-token"
            try cluster.bramble("app", "add", "beta", "--out", betaFile)
            let beta = BrambleClient(baseURL: cluster.nodeURL, token: try String(contentsOfFile: betaFile, encoding: .utf8)
                                        .trimmingCharacters(in: .whitespacesAndNewlines), http: cluster.http)
            let betasPush = try await beta.push(PushRequestBody(to: "erin@example.test", subject: "from beta"))
            #expect(try await app.raw(.GET, PushAPI.statusPath(betasPush.id)).status == 404, "alpha reads beta's push")
            #expect(try await beta.raw(.GET, PushAPI.statusPath(accepted.id)).status == 404, "beta reads alpha's push")
            for id in [accepted.id, betasPush.id] {
                #expect(try await cluster.admin.call(.GET, PushAPI.statusPath(id), as: PushStatus.self).devices.map(\.pin) == ["E7170001"])
            }

            // A token that only looks like one, or a push app's token off the push route, costs no lookup.
            let forged = BrambleClient(baseURL: cluster.nodeURL, token: "bpa_" + String(repeating: "A", count: 43), http: cluster.http)
            #expect(try await forged.raw(.POST, PushAPI.path, body: PushRequestBody(to: "erin@example.test", subject: "x")).status == 401)
            let notify = try await app.raw(.POST, MailAPI.notify + "?user=erin@example.test")
            #expect(notify.status == 401 || notify.status == 404, "the mail notification takes only its own token: \(notify.status)")

            // Its Idempotency-Keys are its own: the same key from the operator is another push.
            let first = try await app.push(PushRequestBody(to: "erin@example.test", subject: "order 1"), idempotencyKey: "order-1")
            let again = try await app.push(PushRequestBody(to: "erin@example.test", subject: "order 1"), idempotencyKey: "order-1")
            #expect(again.id == first.id, "a retry with its key is the first push")
            let operators = try await cluster.admin.push(PushRequestBody(to: "erin@example.test", subject: "something else"), idempotencyKey: "order-1")
            #expect(operators.id != first.id, "the operator's key 'order-1' is not the application's")
            // A client cannot claim to be the application to reach its keys: the header is the node's own.
            let claimed = try await cluster.admin.raw(.POST, PushAPI.path, body: PushRequestBody(to: "erin@example.test", subject: "order 1"),
                                                      headers: [("Idempotency-Key", "order-1"), ("Bramble-Push-Application", "alpha")])
            // (In alpha's keys this body would replay its first push; in the operator's, whose
            // 'order-1' was another push, it is a reused key.)
            #expect(claimed.status == 422 && claimed.error?.code == .idempotencyKeyReused, "the operator's own key, not alpha's: \(claimed.status)")

            // Listed without its token; a second app of that name is a conflict.
            let listed = try cluster.bramble("app", "list", "--json")
            #expect(listed.contains("\"alpha\"") && !listed.contains(token) && !listed.contains("bpa_"))
            #expect(throws: CommandFailed.self) { try cluster.bramble("app", "add", "alpha") }

            // Revoked: the very next push is refused, as an unknown token; the admin token still pushes.
            try cluster.bramble("app", "revoke", "alpha")
            let after = try await app.raw(.POST, PushAPI.path, body: PushRequestBody(to: "erin@example.test", subject: "late"))
            #expect(after.status == 401 && after.error?.code == .unauthorized)
            #expect(try cluster.bramble("app", "list").contains("revoked"))
            _ = try await cluster.admin.push(PushRequestBody(to: "erin@example.test", subject: "from the operator"))
            #expect(throws: CommandFailed.self) { try cluster.bramble("app", "revoke", "alpha") }
        }
    }

    @Test func twoNodesMigratingAnEmptyDatabaseAtOnceApplyEachMigrationOnce() async throws {
        try await TestCluster.with { cluster in
            try runCommand("/usr/bin/psql", ["-h", cluster.dir + "/pg/socket", "-p", "\(cluster.pgPort)", "-U", "postgres", "-d", "postgres",
                                             "-c", "CREATE DATABASE fresh OWNER bramble"])
            let logger = Logger(label: "test")
            let client = PostgresClient(configuration: try cluster.databaseConfiguration(database: "fresh"), backgroundLogger: logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await client.run() }
                let store = ConfigStore(client: client, vault: MasterKeyVault(kek: cluster.keyEncryptionKey), logger: logger)
                try await withThrowingTaskGroup(of: Void.self) { racers in
                    for _ in 0..<4 { racers.addTask { try await store.migrate() } }
                    try await racers.waitForAll()
                }
                try await store.migrate()
                var versions: [Int] = []
                for try await v in try await client.query("SELECT version FROM schema_migrations ORDER BY version").decode(Int.self) {
                    versions.append(v)
                }
                #expect(versions == Migrations.all.map(\.version), "each migration applied exactly once")
                group.cancelAll()
            }
        }
    }
}

/// Just enough to read one string field out of a JSON object.
struct AnyDecodable: Decodable {
    let string: String?
    init(from decoder: any Decoder) throws { string = try? decoder.singleValueContainer().decode(String.self) }
}
