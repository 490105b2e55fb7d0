@testable import BrambleTestSupport
import BrambleAPI
import BrambleCore
import BrambleDevice
import BrambleNet
@testable import BrambleServer
@preconcurrency import Crypto
import Foundation
import Logging
import PostgresNIO
import Testing

/// The Policy Service after activation, through a real node, relay and `bramble-device`
/// processes: policies changed and assigned reach every device of their users, which apply
/// (or refuse) and confirm; lock, wipe and wipe-work are confirmed by the device and
/// recorded. Then, with the node stopped, the store's pass on its own: what is resent and
/// when, and that a stale epoch sends nothing.
@Suite(.serialized) struct PolicyServiceTests {
    static let ann = "ann@example.test", bob = "bob@example.test"
    /// Reads the CLI's `--json` (ISO 8601 dates).
    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return d
    }()

    @Test func policiesReachEveryDeviceAndLockWipeAndWipeWorkAreConfirmedAndRecorded() async throws {
        try await TestCluster.with { cluster in
            let (locked, wiped, workWiped, foreign) = ("E1000001", "E1000002", "E1000003", "E1000004")
            for pin in [locked, wiped, workWiped] { _ = try cluster.provision(email: Self.ann, pin: pin) }
            // Bob's device pinned another domain's key: it must refuse what Ann's apply.
            let foreignPath = try cluster.provision(email: Self.bob, pin: foreign)
            var credential = try JSONDecoder().decode(DeviceCredential.self, from: try #require(FileManager.default.contents(atPath: foreignPath)))
            #expect(credential.domainPublicKey != nil, "wired provisioning pins the domain key")
            credential.domainKey = Curve25519.Signing.PrivateKey().publicKey.rawRepresentation.base64EncodedString()
            try FileManager.default.removeItem(atPath: foreignPath)
            try SecretFilePermissions.create(foreignPath, bytes: try JSONEncoder().encode(credential), what: "test credential")
            for pin in [locked, wiped, workWiped, foreign] { try cluster.startDevice(pin: pin) }

            func device(_ pin: String) throws -> DeviceRecord {
                try Self.decoder.decode(DeviceRecord.self, from: Data(try cluster.bramble(["device", "show", pin, "--json"]).utf8))
            }
            func policyLines(_ pin: String) -> [ShownItem] { cluster.shown(pin: pin, service: "policy") }

            // A new policy, assigned to both users, reaches all four devices.
            let strict = try Self.decoder.decode(PolicyRecord.self, from: Data(try cluster.bramble([
                "policy", "set", "strict", "--password-required", "on", "--min-password-length", "8", "--lock-timeout", "5",
                "--services", "push,mail", "--json"]).utf8))
            #expect(strict.version == 1 && strict.password_required && strict.min_password_length == 8 && strict.allowed_services == ["push", "mail"])
            #expect(try cluster.bramble(["policy", "assign", "strict", Self.ann, Self.bob]).contains("on its way to 4 device(s)"))
            try await cluster.waitFor("Ann's devices applied strict v1") {
                try [locked, wiped, workWiped].allSatisfy { pin in
                    try device(pin).policy.map { ($0.name, $0.version, $0.state) } ?? ("", 0, "") == ("strict", 1, "applied")
                }
            }
            let applied = try #require(policyLines(locked).last)
            #expect(applied.state == "applied" && applied.policy?.minPasswordLength == 8 && applied.policy?.lockTimeoutMinutes == 5)
            try await cluster.waitFor("Bob's device refused it") { try device(foreign).policy?.state == "refused" }
            #expect(try device(foreign).policy?.detail?.contains("not signed by this device's domain") == true)
            #expect(policyLines(foreign).last?.state == "refused")
            let listed = try Self.decoder.decode(PolicyList.self, from: Data(try cluster.bramble(["policy", "list", "--json"]).utf8))
            let row = try #require(listed.policies.first { $0.name == "strict" })
            #expect(row.users == 2 && row.devices_applied == 3 && row.devices_refused == 1 && row.devices_pending == 0, "\(row)")
            #expect(listed.policies.contains { $0.name == "default" }, "the built-in default is listed")

            // A change raises the version and reaches the devices again.
            _ = try cluster.bramble(["policy", "set", "strict", "--lock-timeout", "10"])
            try await cluster.waitFor("strict v2 applied") { try device(locked).policy?.version == 2 && device(locked).policy?.state == "applied" }
            #expect(policyLines(locked).last?.policy?.lockTimeoutMinutes == 10)

            // Bad input is refused with a clear error, by the CLI and by the node itself.
            func failure(_ arguments: [String]) -> String {
                do { _ = try cluster.bramble(arguments); return "" } catch let failed as CommandFailed { return failed.output } catch { return "\(error)" }
            }
            #expect(failure(["policy", "set", "lax", "--services", "fax"]).contains("unknown service 'fax'"))
            #expect(failure(["policy", "assign", "nosuch", Self.ann]).contains("no policy nosuch"))
            let admin = cluster.admin("node-a")
            for (path, change, message) in [
                (AdminAPI.policy("strict"), PolicyChange(allowed_services: ["fax"]), "allowed services are among"),
                (AdminAPI.policy("strict"), PolicyChange(min_password_length: 65), "min_password_length is 0–64"),
                (AdminAPI.policy("strict"), PolicyChange(), "nothing to change"),
                (AdminAPI.policy("..."), PolicyChange(lock_timeout_minutes: 1), "with a letter or digit"),
                (AdminAPI.policy("strіct"), PolicyChange(lock_timeout_minutes: 1), "ASCII"),  // a Cyrillic і
            ] {
                let reply = try await admin.raw(.PUT, path, body: change)
                #expect(reply.status == 400 && reply.error?.error.contains(message) == true, "\(path): \(reply.status) \(String(decoding: reply.body, as: UTF8.self))")
            }
            let unchanged = try #require(try await admin.call(.GET, AdminAPI.policy("strict"), as: PolicyRecord.self))
            #expect(unchanged.version == 2 && unchanged.lock_timeout_minutes == 10, "a refused change changed nothing: \(unchanged)")

            // Lock: a new device password, kept on the device only as a verifier; it must meet
            // the device's policy (strict asks for 8 characters at least, which this does not).
            let passwordFile = "\(cluster.dir)/device-password"
            _ = try cluster.bramble(["policy", "set", "strict", "--min-password-length", "16"])
            try SecretFilePermissions.create(passwordFile, bytes: Data("tiger lily 1234\n".utf8), what: "test password")
            #expect(failure(["device", "lock", locked, "--password-file", passwordFile]).contains("at least 16 characters"))
            _ = try cluster.bramble(["policy", "set", "strict", "--min-password-length", "8"])
            for pin in [locked, wiped, workWiped] {
                let queued = try Self.decoder.decode(DeviceCommandRecord.self, from: Data(try cluster.bramble([
                    "device", "lock", pin, "--password-file", passwordFile, "--json"]).utf8))
                #expect(queued.command == "lock" && queued.state == "queued")
            }
            for pin in [locked, wiped, workWiped] {
                try await cluster.waitFor("\(pin) locked") { try device(pin).locked_at != nil }
                #expect(try device(pin).commands?.first.map { ($0.command, $0.state) } ?? ("", "") == ("lock", "confirmed"))
                #expect(cluster.shown(pin: pin, service: "command").last?.state == "locked")
            }
            // A command the device cannot check (another domain's key) is refused, and that recorded: never resent.
            _ = try cluster.bramble(["device", "lock", foreign, "--password-file", passwordFile])
            try await cluster.waitFor("the foreign device refused the lock") { try device(foreign).commands?.first?.state == "refused" }
            #expect(try device(foreign).commands?.first?.detail?.contains("not signed by this device's domain") == true)
            #expect(try device(foreign).locked_at == nil)
            #expect(cluster.shown(pin: foreign, service: "command").last?.state == "refused")
            let verifierPath = "\(cluster.dir)/device-\(locked).json.state.password"
            let verifier = try String(contentsOfFile: verifierPath, encoding: .utf8)
            #expect(!verifier.contains("tiger lily"), "the device keeps a verifier, not the password")
            let mode = try #require(FileManager.default.attributesOfItem(atPath: verifierPath)[.posixPermissions] as? Int)
            #expect(mode & 0o077 == 0)

            // Wipe: confirmed, then everything on the device goes and it stops; the node forgets it.
            func files(_ pin: String) -> [String: Bool] {
                let base = "\(cluster.dir)/device-\(pin).json"
                return Dictionary(uniqueKeysWithValues: [base, base + ".state", base + ".state.outbox", base + ".state.control",
                                                          base + ".state.password", base + ".state.wiping", cluster.logPath(pin: pin)]
                    .map { ($0, FileManager.default.fileExists(atPath: $0)) })
            }
            #expect(files(wiped).filter { !$0.key.hasSuffix(".wiping") }.values.allSatisfy { $0 }, "\(files(wiped))")
            // A copy of its credential kept elsewhere (a backup, a thief's) is of no use after the wipe.
            let copy = "\(cluster.dir)/copy-of-\(wiped).json"
            try FileManager.default.copyItem(atPath: "\(cluster.dir)/device-\(wiped).json", toPath: copy)
            _ = try cluster.bramble(["device", "wipe", wiped])
            try await cluster.waitFor("\(wiped) stopped after wiping") { cluster.device(wiped)?.isRunning == false }
            #expect(cluster.device(wiped)?.exitStatus == 0, "\(cluster.device(wiped)?.log ?? "")")
            #expect(files(wiped).values.allSatisfy { !$0 }, "a wipe leaves nothing: \(files(wiped))")
            try await cluster.waitFor("\(wiped) wiped on the server") { try device(wiped).status == "wiped" }
            #expect(try device(wiped).wiped == "all" && device(wiped).commands?.first?.state == "confirmed")
            #expect(try cluster.bramble(["device", "show", wiped]).contains("wiped: all data"))
            let revenant = try ChildProcess(name: "copy", executable: TestCluster.bin + "/bramble-device", arguments: [
                "run", "--credential", copy, "--relay", "127.0.0.1:\(cluster.devicePort)", "--ca-file", cluster.tls.ca, "--log", copy + ".jsonl",
            ], logPath: copy + ".out")
            defer { revenant.stop() }
            try await cluster.waitFor("the relay refuses the wiped device's key") { revenant.log.contains("refused the device") }

            // Wipe-work: the work data and keys go, the device's own password stays.
            _ = try cluster.bramble(["device", "wipe-work", workWiped])
            try await cluster.waitFor("\(workWiped) stopped after wiping its work data") { cluster.device(workWiped)?.isRunning == false }
            #expect(cluster.device(workWiped)?.exitStatus == 0)
            let left = files(workWiped).filter(\.value).map(\.key)
            #expect(left == ["\(cluster.dir)/device-\(workWiped).json.state.password"], "only the device password stays: \(left)")
            try await cluster.waitFor("\(workWiped) wiped (work) on the server") { try device(workWiped).wiped == "work" }

            // A wiped device takes no more commands and gets no more items; the others still do.
            let itemsBefore = try device(wiped).last_seq
            _ = try cluster.bramble("push", "--to", Self.ann, "--subject", "after the wipes")
            try await cluster.waitFor("the push reached the device left") { cluster.shown(pin: locked).contains { $0.subject == "after the wipes" } }
            #expect(try device(wiped).last_seq == itemsBefore, "nothing more is queued for a wiped device")
            #expect(failure(["device", "lock", wiped, "--password-file", passwordFile]).contains("device \(wiped) is wiped"))
            #expect(failure(["device", "lock", "FFFFFFF0", "--password-file", passwordFile]).contains("no device FFFFFFF0"))

            // Passwords never reach the node's logs.
            let nodeLog = (try? String(contentsOfFile: "\(cluster.dir)/node-a.log", encoding: .utf8)) ?? ""
            #expect(!nodeLog.contains("tiger lily"))

            // The node counts the devices' answers: three locks, a wipe and a wipe-work done; one refused.
            #expect(try await cluster.metric("bramble_policy_answers_total{answer=\"command-done\"}") == 5)
            #expect(try await cluster.metric("bramble_policy_answers_total{answer=\"command-refused\"}") == 1)
            #expect(try await cluster.metric("bramble_policy_answers_total{answer=\"policy-refused\"}") ?? 0 >= 1)

            // The store's pass on its own, the node stopped so that it does not race it.
            cluster.node?.stop()
            try await Self.storePass(cluster, pin: PIN(locked)!, foreign: PIN(foreign)!)
        }
    }

    /// Resending: a policy or command sent and still queued for its device is not sent
    /// again; once it left the queue unanswered (expired, lost) and `resendAfterMs` passed,
    /// it is. A stale epoch sends nothing.
    static func storePass(_ cluster: TestCluster, pin: PIN, foreign: PIN) async throws {
        let logger = Logger(label: "test")
        let client = PostgresClient(configuration: try cluster.databaseConfiguration(), backgroundLogger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            let store = ConfigStore(client: client, vault: MasterKeyVault(kek: cluster.keyEncryptionKey), logger: logger)
            let epoch = try #require(try await store.takeLease("q", node: "x", expectedEpoch: 0, durationMs: 60_000))
            let domain = try await store.domainKey()
            func pass(resendAfterMs: UInt64 = 60_000) async throws -> [OutboundItem] {
                try await store.policyPass(domain: domain, resendAfterMs: resendAfterMs, pair: "q", node: "x", epoch: epoch)?.items ?? []
            }
            let p = Int64(pin.value)
            #expect(try await pass().isEmpty, "everything sent was answered")

            let changed = try await store.setPolicy(name: "strict", PolicyChange(min_password_length: 10))
            let sent = try await pass()
            #expect(sent.allSatisfy { $0.service == .policy } && Set(sent.map(\.pin)) == [pin, foreign], "every active device of its users")
            let signed = try SignedPolicy.decode(try #require(sent.first { $0.pin == pin }?.payload))
            #expect(try signed.verified(domainKey: domain.publicKey).version == UInt64(changed.version))
            #expect(try await pass().isEmpty, "sent and not yet due again")

            try await client.query("UPDATE device_policies SET updated_at = now() - interval '2 minutes' WHERE pin = \(p)")
            #expect(try await pass().isEmpty, "still queued for the device: not sent twice")
            try await client.query("UPDATE outbound SET state = 'expired' WHERE pin = \(p) AND service = \(Int16(DataFrame.Service.policy.rawValue))")
            #expect(try await pass().map { [$0.pin: $0.service] } == [[pin: .policy]], "unanswered and out of the queue: sent again")

            let command = try await store.issueCommand(pin: pin, kind: .wipe, lock: nil)
            let commandItems = try await pass()
            #expect(commandItems.map(\.service) == [.command])
            let signedCommand = try SignedCommand.decode(try #require(commandItems.first?.payload))
            #expect(try signedCommand.verified(domainKey: domain.publicKey, pin: pin) == ITCommand(
                id: UInt64(command.id), pin: pin, kind: .wipe, issuedAt: UInt64(command.created_at.timeIntervalSince1970)))
            try await client.query("UPDATE outbound SET state = 'expired' WHERE pin = \(p) AND service = \(Int16(DataFrame.Service.command.rawValue))")
            try await client.query("UPDATE device_commands SET sent_at = now() - interval '2 minutes' WHERE id = \(command.id)")
            #expect(try await pass().map(\.service) == [.command], "an unconfirmed command is sent again")

            // A confirmation of another kind or id records nothing; the right one wipes.
            for (ref, done) in [(UInt64(9_001), DeviceRequest.commandDone(id: UInt64(command.id), kind: .lock)),
                                (9_002, .commandDone(id: UInt64(command.id) + 99, kind: .wipe)),
                                (9_003, .commandDone(id: UInt64(command.id), kind: .wipe))] {
                _ = try await store.recordRequests([PendingRequest(pin: pin, ref: ref, request: done)], pair: "q", node: "x", epoch: epoch)
            }
            var wipedOutcomes = 0
            for request in try await store.pendingPolicyRequests() where request.pin == pin {
                let outcome = try await store.recordPolicyOutcome(request, srpID: "bramble", imOffered: false, pair: "q", node: "x", epoch: epoch)
                if outcome.wiped { wipedOutcomes += 1; #expect(request.ref == 9_003) }
            }
            #expect(wipedOutcomes == 1)
            let record = try #require(try await store.devices(pin: pin).first)
            #expect(record.status == "wiped" && record.wiped == "all")

            // A stale epoch sends nothing.
            _ = try await store.setPolicy(name: "default", PolicyChange(lock_timeout_minutes: 1))
            func queued() async throws -> Int {
                var n = 0
                for try await c in try await client.query("SELECT count(*)::bigint FROM outbound").decode(Int64.self) { n = Int(c) }
                return n
            }
            let before = try await queued()
            await #expect(throws: ConfigStore.FencedError.self) {
                _ = try await store.policyPass(domain: domain, resendAfterMs: 0, pair: "q", node: "x", epoch: epoch + 1)
            }
            #expect(try await queued() == before, "a stale epoch queued nothing")
            group.cancelAll()
        }
    }
}
