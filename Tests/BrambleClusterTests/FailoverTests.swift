@testable import BrambleTestSupport
import AsyncHTTPClient
import BrambleAPI
import BrambleCore
import BrambleNet
import Foundation
import Testing

/// The HA pair on real processes: PostgreSQL, the relay, two nodes and devices on
/// loopback. Every test asserts the pair's invariants: every accepted push is shown
/// exactly once on every device, and the relay never accepts two primaries.
@Suite(.serialized) struct FailoverTests {
    static let pins = ["2A000001", "2A000002"]
    static let email = "pair@example.test"

    /// A pair with two devices of one user, both connected.
    func withPair(_ options: TestCluster.Options = .init(), _ body: (TestCluster) async throws -> Void) async throws {
        var options = options
        options.nodes = ["node-a", "node-b"]
        try await TestCluster.with(options) { cluster in
            for pin in Self.pins {
                try cluster.provision(email: Self.email, pin: pin)
                try cluster.startDevice(pin: pin)
            }
            try await body(cluster)
        }
    }

    /// What a stream of pushes got: the ids accepted, and the subjects of pushes a node
    /// answered as certainly not accepted (none of which may ever be shown).
    struct Pushed {
        var accepted: Set<String> = []
        var refused: Set<String> = []
        var count: Int { accepted.count }
        mutating func formUnion(_ other: Pushed) {
            accepted.formUnion(other.accepted)
            refused.formUnion(other.refused)
        }
    }

    /// Pushes `count` items, one every `everyMs`, alternating between the nodes, as an
    /// application with both URLs does: each push under its own Idempotency-Key; one whose
    /// outcome is unknown is sent again with the same key (to the other node); one a node
    /// did not accept is sent again under a new subject and key, and that node is left
    /// alone for 0.5 s. `midway` runs once, after `midwayAfter` pushes were accepted.
    func stream(_ cluster: TestCluster, count: Int, everyMs: Int, via: [String]? = nil, midwayAfter: Int = .max,
                midway: () async throws -> Void = {},
                acceptedAt: ((ContinuousClock.Instant) -> Void)? = nil) async throws -> Pushed {
        var pushed = Pushed()
        var didMidway = false
        let nodes = via ?? cluster.options.nodes
        var downUntil: [String: ContinuousClock.Instant] = [:]
        for i in 0..<count {
            var (subject, key) = ("s\(i)-0", UUID().uuidString)
            for attempt in 0..<(2 * nodes.count) {
                let node = nodes[(i + attempt) % nodes.count]
                if let until = downUntil[node], until > .now { continue }
                let answer = await cluster.push(to: Self.email, subject: subject, via: node, key: key, timeout: .seconds(2))
                if case .accepted(let id) = answer {
                    pushed.accepted.insert(id)
                    acceptedAt?(.now)
                    break
                }
                downUntil[node] = .now + .milliseconds(500)
                if answer == .notAccepted {
                    pushed.refused.insert(subject)
                    (subject, key) = ("s\(i)-\(attempt + 1)", UUID().uuidString)
                }
            }
            if !didMidway && pushed.count >= midwayAfter {
                didMidway = true
                try await midway()
            }
            try await Task.sleep(for: .milliseconds(everyMs))
        }
        #expect(didMidway || midwayAfter == .max, "the disruption ran")
        return pushed
    }

    /// Waits until every device showed every accepted push, then checks none was shown
    /// twice and nothing refused was shown at all.
    func expectExactlyOnce(_ cluster: TestCluster, _ pushed: Pushed, seconds: Double = 60) async throws {
        let accepted = pushed.accepted
        for pin in Self.pins {
            try await cluster.waitFor("device \(pin) to show \(accepted.count) accepted pushes", seconds: seconds) {
                accepted.isSubset(of: Set(cluster.shown(pin: pin).map(\.push_id)))
            }
        }
        for pin in Self.pins {
            let shown = cluster.shown(pin: pin)
            let ids = shown.map(\.push_id)
            let repeats = Dictionary(grouping: ids, by: { $0 }).filter { $0.value.count > 1 }.keys
            #expect(repeats.isEmpty, "device \(pin) showed \(repeats.count) pushes twice: \(repeats.prefix(3))")
            #expect(accepted.isSubset(of: Set(ids)), "device \(pin) lost \(accepted.subtracting(ids).count) accepted pushes")
            let phantoms = pushed.refused.intersection(shown.map(\.subject))
            #expect(phantoms.isEmpty, "device \(pin) showed \(phantoms.count) pushes answered as not accepted: \(phantoms.prefix(3))")
        }
        // The relay's own record, not the nodes' claims: never two primaries registered
        // at once, no item sent from an epoch below the registered one.
        let relay = cluster.relayAudit()
        #expect(relay.maxServingPrimaries <= 1, "the relay had \(relay.maxServingPrimaries) primaries registered at once")
        #expect(relay.staleDeliveries == 0, "the relay saw \(relay.staleDeliveries) items from a fenced epoch")
        #expect(relay.items > 0, "the relay's audit log recorded the items")
    }

    /// The demotions the pair's event log recorded for `node`.
    func demotions(_ env: [String: String], of node: String) throws -> [PairEvent] {
        try pairEvents(env).filter { $0.kind == .demote && $0.node == node }
    }

    /// The pair's event log, as `bramble pair events --json` prints it.
    func pairEvents(_ env: [String: String]) throws -> [PairEvent] {
        let json = try runCommand(TestCluster.bin + "/bramble", ["pair", "events", "--json"], environment: env)
        return try JSONDecoder().decode(PairEventLog.self, from: Data(json.utf8)).events
    }

    /// Each promotion as NODE@EPOCH, in order.
    func promotions(_ events: [PairEvent]) -> [String] {
        events.filter { $0.kind == .promote }.map { "\($0.node)@\($0.epoch ?? 0)" }
    }

    func role(_ cluster: TestCluster, _ node: String) async -> String? {
        try? await cluster.health(node)["role"] as? String
    }

    /// Registrations the relay accepted, from its metrics.
    func relayCounter(_ cluster: TestCluster, _ name: String) async throws -> Double {
        let text = String(decoding: try await cluster.get(cluster.relayHTTPURL + "/metrics").body, as: UTF8.self)
        for line in text.split(separator: "\n") where line.hasPrefix(name + " ") { return Double(line.split(separator: " ")[1]) ?? -1 }
        return 0
    }

    @Test func theStandbyServesAfterThePrimaryIsKilledAndEveryAcceptedPushIsShownOnce() async throws {
        try await withPair { cluster in
            let accepted = try await stream(cluster, count: 240, everyMs: 10, midwayAfter: 80) {
                cluster.nodes["node-a"]!.kill()
            }
            try await cluster.waitFor("node-b primary", seconds: 10) { await cluster.primaries() == ["node-b"] }
            try await expectExactlyOnce(cluster, accepted)
            #expect(accepted.count >= 200, "pushes kept being accepted by the standby during the failover (\(accepted.count))")
            #expect(try await relayCounter(cluster, "bramble_relay_registrations_total") == 2, "node-a at epoch 1, node-b at epoch 2")
            #expect(try await cluster.relayHealth().contains("\"bramble\":2"))
        }
    }

    @Test func aPausedPrimaryIsFencedWhenItWakesAndDemotesItself() async throws {
        try await withPair { cluster in
            var accepted = try await stream(cluster, count: 20, everyMs: 10)
            let a = cluster.nodes["node-a"]!
            a.pause()
            try await cluster.waitFor("node-b to promote while node-a is paused", seconds: 10) {
                await cluster.primaries() == ["node-b"]
            }
            // (A paused node's kernel still accepts connections, so push via node-b only.)
            accepted.formUnion(try await stream(cluster, count: 20, everyMs: 10, via: ["node-b"]))
            try await Task.sleep(for: .seconds(1))
            a.resume()
            // From the moment it wakes its lease is known to be gone: it never claims to serve.
            #expect((try await cluster.get(cluster.nodeURL("node-a") + "/primary")).status == 503)
            try await cluster.waitFor("node-a to demote itself", seconds: 10) { await role(cluster, "node-a") == "standby" }
            #expect(try await cluster.metric("bramble_demotions_total", node: "node-a") == 1)
            let env = cluster.cliEnvironment(cluster.nodeURL("node-b"))
            let demoted = try demotions(env, of: "node-a")
            #expect(demoted.count == 1 && demoted[0].epoch == 1, "node-a demoted once, from epoch 1: \(demoted)")
            #expect([.leaseLost, .relayReportedHigherEpoch].contains(demoted.first?.reason), "fenced: \(demoted)")
            // The relay only ever accepted node-a at epoch 1 and node-b at epoch 2.
            #expect(try await relayCounter(cluster, "bramble_relay_registrations_total") == 2)
            #expect(try await cluster.relayHealth().contains("\"bramble\":2"))
            #expect(await cluster.primaries() == ["node-b"])
            // The woken node still accepts pushes; the primary delivers them.
            accepted.formUnion(try await stream(cluster, count: 20, everyMs: 10))
            try await expectExactlyOnce(cluster, accepted)
        }
    }

    @Test func cuttingThePrimarysSRPLinkMakesTheStandbyPromote() async throws {
        var options = TestCluster.Options()
        options.cuttableLinks = ["node-a"]
        try await withPair(options) { cluster in
            var accepted = try await stream(cluster, count: 20, everyMs: 10)
            await cluster.cutters["node-a"]!.cut()
            try await cluster.waitFor("node-b to promote after node-a lost its link", seconds: 15) {
                await cluster.primaries() == ["node-b"]
            }
            try await cluster.waitFor("node-a standby", seconds: 5) { await role(cluster, "node-a") == "standby" }
            let env = cluster.cliEnvironment(cluster.nodeURL("node-b"))
            #expect(try demotions(env, of: "node-a").map(\.reason) == [.lowScoreAndPeerRequest])
            accepted.formUnion(try await stream(cluster, count: 20, everyMs: 10))
            try await expectExactlyOnce(cluster, accepted)
        }
    }

    /// A partition drops packets without a word: the link stays open and TCP notices
    /// nothing for minutes. The Router's pings go unanswered, the link counts as lost with
    /// no grace, and the standby (which can reach the relay) takes over; items sent into
    /// the silence were never acknowledged, so the new primary resends them.
    @Test func aPrimaryWhoseRelayGoesSilentIsReplaced() async throws {
        var options = TestCluster.Options()
        options.cuttableLinks = ["node-a"]
        try await withPair(options) { cluster in
            let accepted = try await stream(cluster, count: 150, everyMs: 10, midwayAfter: 30) {
                cluster.cutters["node-a"]!.silence()
            }
            try await cluster.waitFor("node-b to promote after node-a's relay went silent", seconds: 15) {
                await cluster.primaries() == ["node-b"]
            }
            try await cluster.waitFor("node-a standby", seconds: 5) { await role(cluster, "node-a") == "standby" }
            let env = cluster.cliEnvironment(cluster.nodeURL("node-b"))
            let demoted = try demotions(env, of: "node-a")
            #expect(demoted.map(\.reason) == [.lowScoreAndPeerRequest], "\(demoted)")
            #expect(demoted.first?.detail.contains("relay silent") == true, "the Router's watchdog ended the link: \(demoted)")
            try await expectExactlyOnce(cluster, accepted)
        }
    }

    @Test func aPlannedSwitchoverUnderLoadLosesNothingAndShowsNothingTwice() async throws {
        try await withPair { cluster in
            let env = cluster.cliEnvironment("\(cluster.nodeURL("node-a")),\(cluster.nodeURL("node-b"))")
            // The CLI runs beside the stream, so pushes keep coming during the switchover.
            func failover(_ arguments: [String]) -> Task<String, any Error> {
                Task.detached { try runCommand(TestCluster.bin + "/bramble", ["failover"] + arguments, environment: env) }
            }
            var cli: Task<String, any Error>?
            var accepted = try await stream(cluster, count: 150, everyMs: 10, midwayAfter: 50) { cli = failover([]) }
            var output = try await cli!.value
            #expect(output.contains("switched over: node-a → node-b"), "\(output)")
            #expect(await cluster.primaries() == ["node-b"])
            try await expectExactlyOnce(cluster, accepted)

            // And back, naming the target.
            accepted.formUnion(try await stream(cluster, count: 150, everyMs: 10, midwayAfter: 50) { cli = failover(["--to", "node-a"]) })
            output = try await cli!.value
            #expect(output.contains("switched over: node-b → node-a"), "\(output)")
            try await cluster.waitFor("node-a primary", seconds: 5) { await cluster.primaries() == ["node-a"] }
            try await expectExactlyOnce(cluster, accepted)
            #expect(try await relayCounter(cluster, "bramble_relay_registrations_total") == 3)

            // The pair's event log tells the same story, one node per epoch.
            let events = try pairEvents(env)
            #expect(promotions(events) == ["node-a@1", "node-b@2", "node-a@3"], "\(events)")
            let handover = try demotions(env, of: "node-a").first
            #expect(handover?.reason == .operatorRequest && handover?.detail.hasSuffix("handed over to node-b") == true, "\(events)")
            #expect(EpochAudit(events: events).passed)
            let text = try runCommand(TestCluster.bin + "/bramble", ["pair", "events", "--limit", "2"], environment: env)
            #expect(text.split(separator: "\n").count == 2 && text.contains("promote  epoch 3"), "\(text)")
        }
    }

    /// The relay locks an SRP ID out after too many connects in its window (BES). Both
    /// nodes share the SRP ID, so a lockout is no reason to hand the lease over: the pair
    /// would pass it to and fro, each promotion refused in turn. The primary waits it out,
    /// says why in its health, and delivers what was accepted meanwhile once it clears.
    @Test func aLockedOutSRPIDDoesNotMakeThePairFlap() async throws {
        var options = TestCluster.Options()
        options.lockoutMaxConnects = 2
        options.lockoutWindowSeconds = 15
        try await withPair(options) { cluster in
            let env = cluster.cliEnvironment("\(cluster.nodeURL("node-a")),\(cluster.nodeURL("node-b"))")
            let bramble = TestCluster.bin + "/bramble"
            // node-a registered at epoch 1; node-b registers at 2; node-a's third is refused.
            try runCommand(bramble, ["failover"], environment: env)
            try runCommand(bramble, ["failover", "--to", "node-a"], environment: env)
            try await cluster.waitFor("node-a primary again", seconds: 10) { await cluster.primaries() == ["node-a"] }
            try await cluster.waitFor("node-a to be refused for the lockout", seconds: 10) {
                let checks = try await cluster.health("node-a")["parameters"] as? [[String: Any]] ?? []
                return (checks.first?["detail"] as? String ?? "").contains("locked the SRP ID out")
            }
            var accepted = try await stream(cluster, count: 40, everyMs: 100)  // 4 s, well past the 1.5 s link grace
            #expect(await cluster.primaries() == ["node-a"], "no handover while locked out")

            let events = try pairEvents(env)
            #expect(promotions(events) == ["node-a@1", "node-b@2", "node-a@3"], "\(events)")
            // Once the window clears, node-a registers and delivers everything accepted.
            accepted.formUnion(try await stream(cluster, count: 10, everyMs: 10))
            try await expectExactlyOnce(cluster, accepted, seconds: 40)
        }
    }

    @Test func aStandbyScoringBelowThePromotionThresholdDoesNotPromote() async throws {
        var options = TestCluster.Options()
        options.unreachableRelay = ["node-b"]
        try await withPair(options) { cluster in
            let env = cluster.cliEnvironment("\(cluster.nodeURL("node-b"))")
            // A switchover to a standby that cannot serve is refused up front, saying why.
            let refusal = #expect(throws: CommandFailed.self) {
                try runCommand(TestCluster.bin + "/bramble", ["failover"], environment: cluster.cliEnvironment(cluster.nodeURL("node-a")))
            }
            #expect(refusal?.output.contains("below the promotion threshold") == true, "\(refusal?.output ?? "")")
            cluster.nodes["node-a"]!.kill()
            // Lease (1 s) and hold-off long gone: node-b still must not take over.
            try await Task.sleep(for: .seconds(4))
            #expect(await role(cluster, "node-b") == "standby")
            #expect(await cluster.primaries().isEmpty)
            let health = try await cluster.health("node-b")
            let first = (health["parameters"] as? [[String: Any]])?.first
            #expect(first?["name"] as? String == "wireless_network")
            #expect(first?["healthy"] as? Bool == false)

            // The operator lowers the promotion threshold: the standby takes over.
            let set = try runCommand(TestCluster.bin + "/bramble", ["pair", "thresholds", "--promotion", "0"], environment: env)
            #expect(set.contains("promotion 0"))
            try await cluster.waitFor("node-b to promote under the lower threshold", seconds: 5) { await role(cluster, "node-b") == "primary" }
        }
    }

    @Test func everyNodeReportsItsRoleScoreAndThePairThroughHealthMetricsAndStatus() async throws {
        try await withPair { cluster in
            // Account counts are refreshed every ten heartbeats; the user was added after start.
            for node in ["node-a", "node-b"] {
                try await cluster.waitFor("\(node) to count the user", seconds: 5) { try await cluster.health(node)["score"] as? Int == 12 }
            }
            for (node, role, primary, standby) in [("node-a", "primary", 200, 503), ("node-b", "standby", 503, 200)] {
                let h = try await cluster.health(node)
                #expect(h["node"] as? String == node)
                #expect(h["pair"] as? String == "bramble")
                #expect(h["role"] as? String == role)
                #expect(h["score"] as? Int == 12, "every parameter healthy: \(h["parameters"] ?? "-")")
                #expect(h["failover_threshold"] as? Int == 2)
                #expect(h["promotion_threshold"] as? Int == 3)
                let parameters = h["parameters"] as? [[String: Any]] ?? []
                #expect(parameters.map { $0["name"] as? String } == ["wireless_network", "dispatcher", "configuration_database",
                    "messaging_agent", "user_accounts_started", "messaging_server_reachable", "at_least_one_user", "collaboration",
                    "mds", "attachment", "policy", "synchronization"])
                #expect(parameters.allSatisfy { $0["detail"] is String && $0["healthy"] is Bool })
                #expect((h["database"] as? [String: Any])?["reachable"] as? Bool == true)
                #expect((h["relay"] as? [String: Any])?["reachable"] as? Bool == true)
                #expect((try await cluster.get(cluster.nodeURL(node) + "/primary")).status == primary)
                #expect((try await cluster.get(cluster.nodeURL(node) + "/standby")).status == standby)
                #expect((try await cluster.get(cluster.nodeURL(node) + "/health/ready")).status == 200)
                #expect((try await cluster.get(cluster.nodeURL(node) + "/health/live")).status == 200)
            }
            #expect((try await cluster.health("node-a"))["epoch"] as? Int == 1)
            #expect((try await cluster.health("node-b"))["epoch"] == nil)

            let metrics = String(decoding: try await cluster.get(cluster.nodeURL("node-a") + "/metrics").body, as: UTF8.self)
            for expected in ["bramble_role{role=\"primary\"} 1", "bramble_role{role=\"standby\"} 0", "bramble_epoch 1.0",
                             "bramble_health_score 12", "bramble_promotions_total 1", "bramble_demotions_total 0",
                             "bramble_lease_renewal_seconds_count", "bramble_queue_depth",
                             // what the alert rules (deploy/monitoring) compare with
                             "bramble_failover_threshold 2", "bramble_promotion_threshold 3", "bramble_lease_duration_seconds ",
                             "bramble_health_parameter{parameter=\"wireless_network\"} 1", "bramble_health_parameter{parameter=\"synchronization\"} 1",
                             "bramble_oldest_unacked_seconds ", "bramble_mailboxes{state=\"watched\"} ", "bramble_start_time_seconds ",
                             "bramble_delivery_seconds_count{service=\"push\"}", "bramble_delivery_seconds_bucket{service=\"mail\",le=\"+Inf\"}"] {
                #expect(metrics.contains(expected), "metrics lack \(expected)")
            }
            // Prometheus's own linter finds nothing wrong in either /metrics.
            let relayMetrics = String(decoding: try await cluster.get(cluster.relayHTTPURL + "/metrics").body, as: UTF8.self)
            #expect(relayMetrics.contains("bramble_start_time_seconds "))
            for (name, text) in [("node", metrics), ("relay", relayMetrics)] {
                let file = cluster.dir + "/\(name).metrics"
                try text.write(toFile: file, atomically: true, encoding: .utf8)
                let lint = try runCommand("/bin/sh", ["-c", "/usr/bin/promtool check metrics < \"$0\" 2>&1; echo \"exit $?\"", file])
                #expect(lint.trimmingCharacters(in: .whitespacesAndNewlines) == "exit 0", "promtool check metrics, \(name): \(lint)")
            }

            let env = cluster.cliEnvironment("\(cluster.nodeURL("node-b"))")
            let human = try runCommand(TestCluster.bin + "/bramble", ["status"], environment: env)
            #expect(human.contains("lease held by node-a at epoch 1"), "\(human)")
            #expect(human.contains("database: reachable"), "\(human)")
            let json = try runCommand(TestCluster.bin + "/bramble", ["status", "--json"], environment: env)
            let status = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] ?? [:]
            let nodes = status["nodes"] as? [[String: Any]] ?? []
            #expect(nodes.map { $0["node"] as? String } == ["node-a", "node-b"])
            #expect(nodes.map { $0["role"] as? String } == ["primary", "standby"])
            #expect(nodes.allSatisfy { ($0["heartbeat_age_ms"] as? Int).map { $0 < 2_000 } ?? false }, "fresh heartbeats: \(nodes)")
        }
    }

    @Test func aSecondProcessWithANodesNameRefusesToStart() async throws {
        try await withPair { cluster in
            let port = try TestCluster.freePorts(1)[0]
            let twin = try ChildProcess(name: "twin", executable: TestCluster.bin + "/bramble-server",
                                        arguments: cluster.nodeArguments("node-a", httpPort: port), logPath: cluster.dir + "/twin.log")
            defer { twin.stop() }
            try await cluster.waitFor("the twin to give up", seconds: 15) { !twin.isRunning }
            #expect(twin.log.contains("another process is running as node 'node-a'"), "\(twin.log.suffix(400))")
            #expect(await cluster.primaries() == ["node-a"], "the running pair is untouched")
        }
    }

    @Test func aPrimaryStoppedWithSIGTERMDemotesFirstAndSaysItStopped() async throws {
        try await withPair { cluster in
            var accepted = try await stream(cluster, count: 20, everyMs: 10)
            cluster.nodes["node-a"]!.stop()
            try await cluster.waitFor("node-b primary", seconds: 5) { await cluster.primaries() == ["node-b"] }
            let env = cluster.cliEnvironment(cluster.nodeURL("node-b"))
            let events = try pairEvents(env).filter { $0.node == "node-a" }
            let kinds = events.map(\.kind), reasons = try demotions(env, of: "node-a").map(\.reason)
            #expect(reasons == [.shutdown], "the primary demoted first: \(events)")
            #expect(kinds.last == .stop, "and recorded its stop last: \(events)")
            let json = try runCommand(TestCluster.bin + "/bramble", ["status", "--json"], environment: env)
            let nodes = (try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])?["nodes"] as? [[String: Any]] ?? []
            #expect(nodes.first { $0["node"] as? String == "node-a" }?["role"] as? String == "stopped", "\(json)\n\(cluster.nodes["node-a"]!.log.suffix(1500))")
            accepted.formUnion(try await stream(cluster, count: 20, everyMs: 10, via: ["node-b"]))
            try await expectExactlyOnce(cluster, accepted)
        }
    }

    @Test func thePairFollowsAPatroniSwitchoverOfTheDatabaseWithoutFailingOver() async throws {
        var options = TestCluster.Options()
        options.patroni = true
        try await withPair(options) { cluster in
            var switched = false
            let accepted = try await stream(cluster, count: 400, everyMs: 10, midwayAfter: 50) {
                // Patroni takes a switchover only from a client with a certificate of the CA
                // and its REST password (what patronictl presents).
                struct Switchover: Encodable { var leader: String; var candidate: String }
                let admin = HTTPClient(eventLoopGroupProvider: .singleton,
                                       configuration: .init(tlsConfiguration: try cluster.tls.files("node-a").clientConfiguration()))
                defer { _ = admin.shutdown() }
                let password = try String(contentsOfFile: cluster.databaseDir + "/patroni-api-password", encoding: .utf8)
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                let basic = "Basic " + Data("patroni:\(password)".utf8).base64EncodedString()
                let unauthenticated = try await BrambleClient(baseURL: cluster.patroniURL(0), token: "", http: admin)
                    .raw(.POST, "/switchover", body: Switchover(leader: "pg1", candidate: "pg2"), timeout: .seconds(5))
                #expect(unauthenticated.status == 401, "a switchover without Patroni's password is refused")
                let reply = try await BrambleClient(baseURL: cluster.patroniURL(0), token: "", http: admin)
                    .raw(.POST, "/switchover", body: Switchover(leader: "pg1", candidate: "pg2"), headers: [("Authorization", basic)],
                         timeout: .seconds(30))
                switched = reply.status == 200
                #expect(switched, "Patroni switchover: HTTP \(reply.status) \(String(decoding: reply.body, as: UTF8.self))")
            }
            #expect(switched)
            try await cluster.waitFor("pg2 to lead the database", seconds: 30) {
                try await cluster.get(cluster.patroniURL(1) + "/primary").status == 200
            }
            try await expectExactlyOnce(cluster, accepted)
            #expect(accepted.count > 200, "pushes were accepted again after the database switchover (\(accepted.count))")
            // The database moved; the pair did not.
            #expect(await cluster.primaries() == ["node-a"])
            #expect(try await relayCounter(cluster, "bramble_relay_registrations_total") == 1)
            for node in ["node-a", "node-b"] {
                #expect(try await cluster.metric("bramble_demotions_total", node: node) == 0, "\(node) demoted")
            }
        }
    }

    @Test func killingTheDatabasePrimaryLosesNoAcceptedPushAndDoesNotFailThePairOver() async throws {
        var options = TestCluster.Options()
        options.patroni = true
        try await withPair(options) { cluster in
            var killedAt: ContinuousClock.Instant?
            var times: [ContinuousClock.Instant] = []
            var patroniFailover: Task<Duration?, Never>?
            let accepted = try await stream(cluster, count: 800, everyMs: 10, midwayAfter: 50, midway: {
                let pidFile = cluster.dir + "/patroni/pg1/data/postmaster.pid"
                let pid = try #require(Int32((try String(contentsOfFile: pidFile, encoding: .utf8)).split(separator: "\n")[0]))
                kill(pid, SIGKILL)
                let t0 = ContinuousClock.now
                killedAt = t0
                patroniFailover = Task {
                    while ContinuousClock.now - t0 < .seconds(30) {
                        if (try? await cluster.get(cluster.patroniURL(1) + "/primary").status) == 200 { return ContinuousClock.now - t0 }
                        try? await Task.sleep(for: .milliseconds(50))
                    }
                    return nil
                }
            }, acceptedAt: { times.append($0) })
            try await cluster.waitFor("pg2 to lead the database", seconds: 30) {
                try await cluster.get(cluster.patroniURL(1) + "/primary").status == 200
            }
            try await expectExactlyOnce(cluster, accepted)
            let killTime = try #require(killedAt, "the postmaster was killed")
            let promotion: Duration? = await patroniFailover?.value ?? nil
            let failover = try #require(promotion, "Patroni promoted pg2 within 30 s")
            #expect(times.contains { $0 > killTime + failover }, "pushes were accepted again after pg2's promotion")
            // Measured, not asserted: how long no push was accepted around the kill.
            let refused = zip(times, times.dropFirst()).map { $1 - $0 }.max() ?? .zero
            print("database kill: Patroni promoted pg2 after \(failover); longest time without an accepted push \(refused) (the test client skips a failing node for 0.5 s)")
            #expect(await cluster.primaries() == ["node-a"], "the pair did not fail over")
            #expect(try await relayCounter(cluster, "bramble_relay_registrations_total") == 1)
            for node in ["node-a", "node-b"] {
                #expect(try await cluster.metric("bramble_demotions_total", node: node) == 0, "\(node) demoted")
            }
        }
    }

    /// The case the Patroni notes warn about: the leader's Patroni dies, its PostgreSQL
    /// lives on and accepts connections, the other Patroni promotes its standby after
    /// `ttl`, and from then on every commit on the old primary hangs waiting for a
    /// synchronous standby that is gone. The nodes must notice (bounded statements, the
    /// dead Patroni's REST API) and move to the new primary without a pair failover.
    @Test func whenTheLeadersPatroniDiesThePairMovesToTheNewDatabasePrimary() async throws {
        var options = TestCluster.Options()
        options.patroni = true
        try await withPair(options) { cluster in
            var killedAt: ContinuousClock.Instant?
            var times: [ContinuousClock.Instant] = []
            let accepted = try await stream(cluster, count: 2_000, everyMs: 10, midwayAfter: 50, midway: {
                let pidFile = cluster.dir + "/patroni/pg1.patroni.pid"
                let pid = try #require(Int32((try String(contentsOfFile: pidFile, encoding: .utf8)).trimmingCharacters(in: .whitespacesAndNewlines)))
                kill(pid, SIGKILL)
                killedAt = .now
            }, acceptedAt: { times.append($0) })
            try await cluster.waitFor("pg2 to lead the database", seconds: 30) {
                try await cluster.get(cluster.patroniURL(1) + "/primary").status == 200
            }
            // The old primary's postmaster still runs: the nodes did not merely lose it.
            let postmaster = try String(contentsOfFile: cluster.dir + "/patroni/pg1/data/postmaster.pid", encoding: .utf8)
            #expect(Int32(postmaster.split(separator: "\n")[0]).map { kill($0, 0) == 0 } == true, "pg1's PostgreSQL outlived its Patroni")
            // Pushes after the promotion were accepted, so they went to pg2.
            let promoted = try #require(killedAt)
            #expect(times.contains { $0 > promoted + .seconds(12) }, "pushes accepted after pg2's promotion")
            try await expectExactlyOnce(cluster, accepted)
            let refused = zip(times, times.dropFirst()).map { $1 - $0 }.max() ?? .zero
            print("leader's Patroni killed: longest time without an accepted push \(refused)")
            #expect(await cluster.primaries() == ["node-a"], "the pair did not fail over")
            #expect(try await relayCounter(cluster, "bramble_relay_registrations_total") == 1)
        }
    }
}
