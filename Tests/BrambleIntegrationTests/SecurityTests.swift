@testable import BrambleTestSupport
import BrambleAPI
import BrambleCore
import BrambleDevice
import BrambleNet
import BrambleServer
import Crypto
import Foundation
import Logging
import NIOCore
import PostgresNIO
import Testing

/// Authentication and robustness at the edges: tampered device data, wrong SRP keys,
/// the connect-rate lockout, malformed bytes.
@Suite(.serialized) struct SecurityTests {
    @Test func tamperedCiphertextIsRejectedAndLoggedAndNothingCrashes() async throws {
        try await TestCluster.with { cluster in
            let credentialPath = try cluster.provision(email: "bob@example.test", pin: "B0B00001")
            let evePath = try cluster.provision(email: "eve@example.test", pin: "EEE00001")
            try cluster.startDevice(pin: "B0B00001")
            let (_, bobKey) = try CredentialFile.load(credentialPath).validated()
            let (_, eveKey) = try CredentialFile.load(evePath).validated()
            try await cluster.waitFor("the node registered both devices' keys with the relay") {
                try await cluster.relayHealth().contains("\"registered_device_keys\":2")
            }

            // Eve connects as her own PIN and sends: random bytes as a body, an ack sealed
            // under the wrong key, and a genuine-looking ack with one bit flipped.
            try await FrameLink.connect(to: cluster.relayDevices, tls: cluster.deviceTLS) { eve, frames in
                try await eve.outbound.write(TestDevice.hello(pin: PIN("EEE00001")!, master: eveKey, answering: try await frames.next()))
                #expect(try await frames.next() == .deviceWelcome)
                let envelope = Envelope()
                var garbage = DataFrame(pin: PIN("EEE00001")!, service: .ack, ref: 1, flags: [.fromDevice], body: [])
                garbage.body = (0..<64).map { _ in UInt8.random(in: 0...255) }
                var wrongKey = garbage
                wrongKey.body = envelope.seal(AckList(refs: [1]).encoded(), key: bobKey, header: wrongKey)
                var flipped = garbage
                flipped.body = envelope.seal(AckList(refs: [1]).encoded(), key: SymmetricKey(size: .bits256), header: flipped)
                flipped.body[20] ^= 0x80
                try await eve.outbound.write(contentsOf: [.data(garbage), .data(wrongKey), .data(flipped)])

                try await cluster.waitFor("three rejections counted") {
                    try await cluster.metric("bramble_device_frames_rejected_total") == 3
                }
                #expect(cluster.node!.log.contains("device frame rejected"))
                #expect(cluster.node!.log.contains("authentication failed"))
                #expect(!cluster.node!.log.contains(bobKey.base64), "a key reached the log")

                // Malformed bytes at the relay close that connection only.
                var evil = ByteBuffer()
                evil.writeInteger(UInt32(0xFFFF_FFFF))
                evil.writeBytes([1, 2, 3])
                var answer = try await RawTCP.exchange(evil, with: cluster.relayDevices, tls: cluster.deviceTLS)
                #expect(try Frame.decode(from: &answer).map(\.type) == .challenge, "the relay challenges every connection")
                #expect(try Frame.decode(from: &answer).map(\.type) == .error, "the relay answers with an error frame and closes")
            }

            // Everything still serves.
            let id = try #require(await cluster.pushID(to: "bob@example.test", subject: "still here"))
            try await cluster.waitFor("bob's item") { cluster.shown(pin: "B0B00001").map(\.push_id) == [id] }
            #expect(cluster.relay!.isRunning && cluster.node!.isRunning)
        }
    }

    @Test func aDeviceCannotDisplaceOrReceiveForAnotherPIN() async throws {
        try await TestCluster.with { cluster in
            try cluster.provision(email: "bob@example.test", pin: "B0B00002")
            let evePath = try cluster.provision(email: "eve@example.test", pin: "EEE00002")
            try cluster.startDevice(pin: "B0B00002")
            let (bob, eve) = (PIN("B0B00002")!, PIN("EEE00002")!)
            let (_, eveKey) = try CredentialFile.load(evePath).validated()
            let first = try #require(await cluster.pushID(to: "bob@example.test", subject: "before"))
            try await cluster.waitFor("bob's first item") { cluster.shown(pin: "B0B00002").map(\.push_id) == [first] }
            try await cluster.waitFor("eve's key at the relay") { try await cluster.relayHealth().contains("\"registered_device_keys\":2") }

            // Eve says hello for Bob's PIN: with her own key, with a made-up key, under an
            // SRP ID the relay does not serve. Each is refused and closed.
            let attempts: [(SymmetricKey, String, Frame.ErrorCode)] = [
                (eveKey, "bramble", .authenticationFailed), (SymmetricKey(size: .bits256), "bramble", .authenticationFailed),
                (eveKey, "invented", .unknownSRPID),
            ]
            for (key, srpID, expected) in attempts {
                try await FrameLink.connect(to: cluster.relayDevices, tls: cluster.deviceTLS) { link, frames in
                    try await link.outbound.write(TestDevice.hello(pin: bob, master: key, srpID: srpID, answering: try await frames.next()))
                    guard case .error(let code, _)? = try await frames.next() else { Issue.record("no refusal"); return }
                    #expect(code == expected)
                    #expect(try await frames.next() == nil, "the relay closes the connection")
                }
            }
            // One connection proves Eve's PIN, then says hello again for Bob's: refused, closed.
            try await FrameLink.connect(to: cluster.relayDevices, tls: cluster.deviceTLS) { link, frames in
                try await link.outbound.write(TestDevice.hello(pin: eve, master: eveKey, answering: try await frames.next()))
                #expect(try await frames.next() == .deviceWelcome)
                try await link.outbound.write(TestDevice.hello(pin: bob, master: eveKey, answering: nil))
                guard case .error(let code, _)? = try await frames.next() else { Issue.record("no refusal"); return }
                #expect(code == .protocolViolation)
                #expect(try await frames.next() == nil)
            }
            #expect(try await cluster.relayMetric("bramble_relay_device_hellos_refused_total") == 3)

            // Bob was never displaced and gets the next item; Eve got none of his.
            let second = try #require(await cluster.pushID(to: "bob@example.test", subject: "after"))
            try await cluster.waitFor("bob's second item") { cluster.shown(pin: "B0B00002").map(\.push_id) == [first, second] }
            let bobLog = cluster.device("B0B00002")?.log ?? ""
            #expect(bobLog.contains("device connected") && !bobLog.contains("displaced"), "bob's connection was never displaced")
        }
    }

    /// The database holds master keys sealed under the nodes' key-encryption key: no
    /// plain key in the table; a plain one is sealed only on an upgrade (before any KEK was
    /// adopted), never used; another KEK opens none and may not start; a rotation reseals.
    @Test func masterKeysAreSealedAtRestUnderTheKeyEncryptionKey() async throws {
        try await TestCluster.with { cluster in
            let path = try cluster.provision(email: "kay@example.test", pin: "4B000001")
            let (pin, key) = try CredentialFile.load(path).validated()
            let logger = Logger(label: "test")
            let superuser = PostgresClient(configuration: cluster.superuserConfiguration(), backgroundLogger: logger)
            let bramble = PostgresClient(configuration: try cluster.databaseConfiguration(), backgroundLogger: logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await superuser.run() }
                group.addTask { await bramble.run() }
                defer { group.cancelAll() }
                func stored() async throws -> String {
                    for try await value in try await superuser.query("SELECT master_key FROM devices WHERE pin = \(Int64(pin.value))", logger: logger)
                        .decode(String.self) { return value }
                    throw SetupError("no device row")
                }
                let sealed = try await stored()
                #expect(sealed.hasPrefix("v1.") && !sealed.contains(key.base64), "stored sealed, never plain")
                let store = ConfigStore(client: bramble, vault: MasterKeyVault(kek: cluster.keyEncryptionKey), logger: logger)
                #expect(try await store.deviceKey(pin) == key)
                func setStored(_ value: String) async throws {
                    try await superuser.query("UPDATE devices SET master_key = \(value) WHERE pin = \(Int64(pin.value))", logger: logger)
                }

                // A plain key written into the table by someone without the KEK is neither
                // used nor sealed, and a push to its device is not accepted.
                try await setStored(key.base64)
                #expect(try await store.deviceKey(pin) == nil, "a plain key in the table is not used")
                #expect(try await store.adoptKeyEncryptionKey() == 0, "nor sealed once the KEK is adopted")
                let refused = try await cluster.admin.raw(.POST, PushAPI.path, body: PushRequestBody(to: "kay@example.test", subject: "x"))
                #expect(refused.status == 404, "no device of kay's can be addressed: \(refused.status)")

                // Before any KEK was adopted (an upgrade), plain keys are sealed once.
                try await superuser.query("DELETE FROM key_encryption", logger: logger)
                #expect(try await store.adoptKeyEncryptionKey() == 1)
                let resealed = try await stored()
                #expect(resealed.hasPrefix("v1.") && resealed != sealed)
                #expect(try await store.deviceKey(pin) == key)

                // Another KEK opens nothing and may not start.
                let stranger = ConfigStore(client: bramble, vault: MasterKeyVault(kek: SymmetricKey(size: .bits256)), logger: logger)
                #expect(try await stranger.deviceKey(pin) == nil)
                #expect(try await stranger.deviceKeys()[pin] == nil)
                await #expect(throws: ConfigStore.KeyEncryptionKeyMismatch.self) { try await stranger.adoptKeyEncryptionKey() }

                // A rotation: new KEK with the old one as previous starts, opens the key, and
                // `reseal` moves it to the new KEK; then the old KEK opens nothing and may not start.
                let newKEK = SymmetricKey(size: .bits256)
                let rotating = ConfigStore(client: bramble, vault: MasterKeyVault(kek: newKEK, previous: cluster.keyEncryptionKey), logger: logger)
                #expect(try await rotating.adoptKeyEncryptionKey() == 0)
                #expect(try await rotating.deviceKey(pin) == key)
                #expect(try await rotating.resealMasterKeys() == 1)
                #expect(try await rotating.resealMasterKeys() == 0)
                #expect(try await store.deviceKey(pin) == nil, "the old KEK no longer opens it")
                await #expect(throws: ConfigStore.KeyEncryptionKeyMismatch.self) { try await store.adoptKeyEncryptionKey() }
                let rotated = ConfigStore(client: bramble, vault: MasterKeyVault(kek: newKEK), logger: logger)
                #expect(try await rotated.adoptKeyEncryptionKey() == 0)
                #expect(try await rotated.deviceKey(pin) == key)
            }
        }
    }

    /// The CLI sends a token only where it was told to: never to a URL from a status file
    /// in the current directory, never the environment's token to a URL read from a file;
    /// status and token files others can read are refused.
    @Test func theCLISendsATokenOnlyWhereItWasToldTo() async throws {
        try await TestCluster.with { cluster in
            let bramble = TestCluster.bin + "/bramble"
            func output(_ arguments: [String], _ environment: [String: String], in directory: String? = nil) -> String {
                let command = (directory.map { "cd '\($0)' && " } ?? "") + "exec \"$0\" \"$@\""
                do { return try runCommand("/bin/sh", ["-c", command, bramble] + arguments, environment: environment) }
                catch let failed as CommandFailed { return "failed: " + failed.output } catch { return "failed: \(error)" }
            }
            func statusFile(_ path: String, token: String, mode: mode_t = 0o600) throws {
                try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                let json = #"{"nodes": [{"name": "node-a", "push_url": "\#(cluster.nodeURL)/push"}], "admin_token": "\#(token)", "tls": {"ca": "\#(cluster.tls.ca)"}}"#
                try SecretFilePermissions.create(path, bytes: Array(json.utf8), what: "status")
                chmod(path, mode)
            }
            let nowhere = ["BRAMBLE_STATUS": cluster.dir + "/no-such-status.json"]

            // A status file in the current directory (with the real token even) is not used.
            try statusFile(cluster.dir + "/cwd/.run/status.json", token: cluster.token)
            #expect(output(["status"], nowhere, in: cluster.dir + "/cwd").contains("no node given"))

            // A status file's URL gets that file's token, never the environment's.
            try statusFile(cluster.dir + "/planted.json", token: "not-the-admin-token-0123456789")
            let planted = output(["user", "list"], ["BRAMBLE_STATUS": cluster.dir + "/planted.json", "BRAMBLE_TOKEN": cluster.token])
            #expect(planted.hasPrefix("failed:") && planted.contains("401"), "\(planted)")
            #expect(!output(["user", "list"], cluster.cliEnvironment(cluster.nodeURL)).hasPrefix("failed:"), "told where, the token works")
            #expect(output(["user", "list", "--token-file", cluster.dir + "/admin-token"], ["BRAMBLE_STATUS": cluster.dir + "/planted.json"])
                .contains("--token-file needs --url or BRAMBLE_URL"))

            // A token goes over plain http:// only when asked for by name.
            let plain = ["BRAMBLE_TOKEN": cluster.token, "BRAMBLE_URL": "http://127.0.0.1:\(cluster.deadPort)"].merging(nowhere) { $1 }
            #expect(output(["user", "list"], plain).contains("is not HTTPS"))
            #expect(!output(["user", "list", "--plaintext"], plain).contains("is not HTTPS"), "--plaintext allows it (nothing listens there)")

            // Files others can read are refused before anything is sent.
            try statusFile(cluster.dir + "/open.json", token: cluster.token, mode: 0o644)
            #expect(output(["user", "list"], ["BRAMBLE_STATUS": cluster.dir + "/open.json"]).contains("is readable by others (mode 644)"))
            chmod(cluster.dir + "/admin-token", 0o644)
            #expect(output(["user", "list", "--url", cluster.nodeURL, "--ca-file", cluster.tls.ca, "--token-file", cluster.dir + "/admin-token"], nowhere)
                .contains("is readable by others (mode 644)"))
            chmod(cluster.dir + "/admin-token", 0o600)
        }
    }

    @Test func aWrongSRPKeyIsRefusedAndTheServingNodeKeepsItsLink() async throws {
        try await TestCluster.with { cluster in
            try await FrameLink.connect(to: cluster.relaySRP, tls: try cluster.nodeTLS()) { attacker, frames in
                guard case .challenge(let nonce)? = try await frames.next() else { Issue.record("no challenge"); return }
                let proof = SRPProof.compute(key: SymmetricKey(size: .bits256), nonce: nonce, srpID: "bramble", epoch: 1_000)
                try await attacker.outbound.write(.register(srpID: "bramble", epoch: 1_000, proof: proof))
                guard case .error(let code, _)? = try await frames.next() else { Issue.record("no refusal"); return }
                #expect(code == .authenticationFailed)
                #expect(try await frames.next() == nil, "the relay closes the connection")
            }

            let health = String(decoding: try await cluster.get(cluster.relayHTTPURL + "/health").body, as: UTF8.self)
            #expect(health.contains("\"bramble\":1"), "the node's session at epoch 1 stands: \(health)")
            try cluster.provision(email: "carol@example.test", pin: "CA201")
            try cluster.startDevice(pin: "CA201")
            let id = try #require(await cluster.pushID(to: "CA201", subject: "after the attack"))
            try await cluster.waitFor("delivery") { cluster.shown(pin: "CA201").map(\.push_id) == [id] }
        }
    }

    @Test func theLockoutTripsAfterFiveConnectsAndClears() async throws {
        var options = TestCluster.Options()
        options.lockoutWindowSeconds = 3
        options.extraSRPIDs = ["lab"]
        try await TestCluster.with(options) { cluster in
            let key = cluster.srpKeys["lab"]!
            func connectOnce() async throws -> Frame? {
                try await FrameLink.connect(to: cluster.relaySRP, tls: try cluster.nodeTLS()) { c, frames in
                    guard case .challenge(let nonce)? = try await frames.next() else { return nil }
                    try await c.outbound.write(.register(srpID: "lab", epoch: 1, proof: SRPProof.compute(key: key, nonce: nonce, srpID: "lab", epoch: 1)))
                    return try await frames.next()
                }
            }
            let start = Date()
            for _ in 1...5 { #expect(try await connectOnce() == .registered(srpID: "lab", epoch: 1)) }
            guard case .error(let code, let message)? = try await connectOnce() else { Issue.record("not locked out"); return }
            #expect(code == .lockedOut, "\(message)")
            try await Task.sleep(until: .now + .seconds(max(0, 3.2 - Date().timeIntervalSince(start))))
            #expect(try await connectOnce() == .registered(srpID: "lab", epoch: 1), "the lockout clears after its window")
        }
    }
}
