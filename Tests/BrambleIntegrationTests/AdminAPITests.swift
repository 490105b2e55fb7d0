@testable import BrambleTestSupport
import BrambleNet
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
            let noToken = AdminClient(baseURL: cluster.nodeURL, token: "wrong-token-wrong-token", http: cluster.http)
            struct Push: Encodable { var to: String; var subject: String? }

            #expect(try await noToken.send(.POST, "/push", json: Push(to: "DA7E", subject: "x")).status == 401)
            #expect(try await noToken.send(.GET, "/admin/users").status == 401)
            #expect(try await noToken.send(.POST, "/admin/users", json: ["email": "mallory@example.test"]).status == 401)
            #expect(try await noToken.send(.GET, "/admin/pair/events").status == 401)

            let a = cluster.admin
            var reply = try await a.send(.POST, "/push", json: Push(to: "nobody@example.test", subject: "x"))
            #expect(reply.status == 404)
            #expect(reply.errorMessage.contains("no active device"))
            reply = try await a.send(.POST, "/push", json: Push(to: "not a pin", subject: "x"))
            #expect(reply.status == 400)
            reply = try await a.send(.POST, "/push", json: Push(to: "DA7E", subject: nil))
            #expect(reply.status == 400)
            #expect(reply.errorMessage.contains("subject"))
            reply = try await a.send(.POST, "/push", json: Push(to: "DA7E", subject: String(repeating: "s", count: 2000)))
            #expect(reply.status == 400)
            #expect(try await a.send(.GET, "/push/not-a-uuid").status == 400)
            #expect(try await a.send(.GET, "/push/\(UUID())").status == 404)
            #expect(try await a.send(.POST, "/admin/users", json: ["email": "dave@example.test"]).status == 409)
            #expect(try await a.send(.POST, "/admin/users", json: ["email": "no-at-sign"]).status == 400)
            #expect(try await a.send(.POST, "/admin/devices", json: ["email": "dave@example.test", "pin": "DA7E"]).status == 409)
            #expect(try await a.send(.POST, "/admin/devices", json: ["email": "ghost@example.test", "pin": "1"]).status == 404)
            #expect(try await a.send(.GET, "/admin/pair/events?limit=0").status == 400)
            #expect(try await a.send(.GET, "/admin/pair/events?since_ms=yesterday").errorMessage.contains("since_ms"))

            // None of that queued anything or added anyone.
            let device = String(decoding: try await a.send(.GET, "/admin/devices/DA7E").body, as: UTF8.self)
            #expect(device.contains("\"last_seq\":0"), "\(device)")
            let users = String(decoding: try await a.send(.GET, "/admin/users").body, as: UTF8.self)
            #expect(!users.contains("mallory") && !users.contains("no-at-sign"))
        }
    }

    @Test func theCLIManagesUsersAndDevicesAndFollowsAPush() async throws {
        try await TestCluster.with { cluster in
            let env = ["BRAMBLE_TOKEN": cluster.token, "BRAMBLE_URL": cluster.nodeURL]
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

    @Test func twoNodesMigratingAnEmptyDatabaseAtOnceApplyEachMigrationOnce() async throws {
        try await TestCluster.with { cluster in
            try runCommand("/usr/bin/psql", ["-h", "127.0.0.1", "-p", "\(cluster.pgPort)", "-U", "postgres", "-d", "postgres",
                                             "-c", "CREATE DATABASE fresh OWNER bramble"])
            let logger = Logger(label: "test")
            let client = PostgresClient(configuration: .init(host: "127.0.0.1", port: cluster.pgPort, username: "bramble",
                                                             password: nil, database: "fresh", tls: .disable), backgroundLogger: logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await client.run() }
                let store = ConfigStore(client: client, logger: logger)
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
