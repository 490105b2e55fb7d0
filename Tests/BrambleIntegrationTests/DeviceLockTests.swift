import BrambleCore
@testable import BrambleDevice
import BrambleNet
@preconcurrency import Crypto
import Foundation
import Logging
import Testing

/// The device's side of `bramble device lock`, with commands signed here by a domain key
/// the device pinned: a lock keeps its verifier on disk (0600, never the password) and is
/// confirmed; a lock older than the one in force (a lower command id: an old command sent
/// again) is refused and said so, the verifier untouched, so a device password cannot be
/// set back; the same lock again changes nothing. `PolicyServiceTests` drive locks
/// through a cluster, where commands arrive in order and this cannot be staged.
@Suite struct DeviceLockTests {
    @Test func anOlderLockThanTheOneInForceIsRefusedAndTheVerifierKept() throws {
        let dir = NSTemporaryDirectory() + "bramble-lock-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let domain = Curve25519.Signing.PrivateKey()
        let pin = PIN(0x0E1F_0002)
        let credential = DeviceCredential(pin: pin, email: "ann@example.test", srpID: "bramble", masterKey: SymmetricKey(size: .bits256),
                                          domainKey: Array(domain.publicKey.rawRepresentation))
        var config = DeviceAgent.Configuration(credential: credential, relay: HostPort(host: "127.0.0.1", port: 9), tls: nil)
        (config.statePath, config.logPath) = (dir + "/device.json.state", dir + "/device.jsonl")
        let agent = try DeviceAgent(configuration: config, logger: Logger(label: "test"))
        let verifierPath = dir + "/device.json.state.password"

        func lock(_ id: UInt64, _ password: String) throws -> ShownItem {
            let command = ITCommand(id: id, pin: pin, kind: .lock, lock: DeviceLock.make(password: password), issuedAt: 1_800_000_000)
            return try agent.carryOut(SignedCommand.sign(command, with: domain), ref: id, at: Date())
        }
        /// The command id and verifier in force on the device.
        func inForce() throws -> (id: UInt64, lock: DeviceLock) {
            let data = try #require(FileManager.default.contents(atPath: verifierPath))
            let stored = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            let salt = try #require(Data(base64Encoded: stored["salt"] as? String ?? ""))
            let verifier = try #require(Data(base64Encoded: stored["verifier"] as? String ?? ""))
            return (UInt64(stored["command_id"] as? Int ?? 0), DeviceLock(salt: Array(salt), verifier: Array(verifier)))
        }

        /// What the device has asked of the server, oldest first (its outbox).
        func requests() throws -> [DeviceRequest] {
            struct Outbox: Decodable { struct Entry: Decodable { var payload: String }; var pending: [Entry] }
            let data = try #require(FileManager.default.contents(atPath: dir + "/device.json.state.outbox"))
            return try JSONDecoder().decode(Outbox.self, from: data).pending.map { try DeviceRequest.decode(Array(Data(base64Encoded: $0.payload) ?? Data())) }
        }

        let first = try lock(7, "the first device password")
        #expect(first.state == "locked" && first.commandID == 7)
        #expect(try inForce().id == 7 && inForce().lock.matches("the first device password"))
        let text = try String(contentsOfFile: verifierPath, encoding: .utf8)
        #expect(!text.contains("the first device password"), "a verifier, not the password")
        let mode = try #require(FileManager.default.attributesOfItem(atPath: verifierPath)[.posixPermissions] as? Int)
        #expect(mode & 0o077 == 0, "the verifier is the owner's only")

        // An older command, sent again: refused aloud, nothing changed.
        let older = try lock(5, "an older device password")
        #expect(older.state == "refused" && older.reason == "an older lock (command 5) than the one in force (command 7)", "\(older)")
        #expect(try inForce().id == 7 && inForce().lock.matches("the first device password"))
        #expect(try requests().last == .commandRefused(id: 5, reason: "an older lock (command 5) than the one in force (command 7)"),
                "the refusal goes to the server")

        // The same command again is confirmed and changes nothing; a newer one takes over.
        #expect(try lock(7, "another password, same command").state == "locked")
        #expect(try inForce().lock.matches("the first device password"))
        #expect(try lock(9, "the newest device password").state == "locked")
        #expect(try inForce().id == 9 && inForce().lock.matches("the newest device password"))
        #expect(try requests() == [.commandDone(id: 7, kind: .lock), .commandRefused(id: 5, reason: "an older lock (command 5) than the one in force (command 7)"),
                                   .commandDone(id: 7, kind: .lock), .commandDone(id: 9, kind: .lock)], "each lock answered")
    }
}
