@testable import BrambleTestSupport
import BrambleAPI
import BrambleCore
import BrambleDevice
import BrambleNet
import Foundation
import Testing

/// Over-the-air activation through the real relay, Postfix and Dovecot: the request goes
/// into the user's mailbox as etp.dat, the primary answers through the relay, CPace agrees
/// the master key, and the IT policy and service books follow.
@Suite(.serialized) struct ActivationTests {
    static func mailCluster(_ body: (TestCluster) async throws -> Void) async throws {
        var options = TestCluster.Options()
        options.mail = true
        try await TestCluster.with(options, body)
    }

    static let stages = ["Activating", "Encryption Verified. Waiting for Services", "Services Received", "Activation Complete"]

    @Test func aDeviceActivatesOverTheAirAndWrongOrExpiredPasswordsAreRefusedCountedAndLocked() async throws {
        try await Self.mailCluster { cluster in
            let demo1 = "demo1@example.test"
            try await cluster.setActivationPassword(demo1, "correct horse 42")
            #expect(try await cluster.activation(demo1).state == "pending")

            // A wrong password: the device cannot verify the server's confirmation; the run counts.
            let wrong = try cluster.activateDevice(email: demo1, password: "wrong password", pin: "A1000001")
            #expect(wrong.status == 1)
            #expect(wrong.lines.map(\.stage) == ["Activating", "error"])
            #expect(wrong.lines.last?.error?.contains("password") == true, "\(wrong.lines)")
            try await cluster.waitFor("the failed run recorded") { try await cluster.activation(demo1).state == "pending" }
            #expect(try await cluster.activation(demo1).failures == 1)

            // The right one: every stage in order, a 0600 credential, the request gone from the mailbox.
            let good = try cluster.activateDevice(email: demo1, password: "correct horse 42", pin: "A1000002")
            #expect(good.status == 0, "\(good.lines)")
            #expect(good.lines.map(\.stage) == Self.stages)
            #expect(good.lines.allSatisfy { $0.service == "activation" && $0.pin == "A1000002" && $0.email == demo1 })
            let credentialPath = "\(cluster.dir)/device-A1000002.json"
            let mode = try #require(FileManager.default.attributesOfItem(atPath: credentialPath)[.posixPermissions] as? Int)
            #expect(mode & 0o077 == 0, "the credential is readable by its owner only")
            let credential = try JSONDecoder().decode(DeviceCredential.self, from: try #require(FileManager.default.contents(atPath: credentialPath)))
            #expect(credential.domainPublicKey != nil && credential.srpID == "bramble")
            #expect(try await cluster.activationMailsLeft(demo1) == 0, "the Agent removed the request mails")
            let done = try await cluster.activation(demo1)
            #expect(done.state == "completed" && done.pin == "A1000002" && done.failures == 0, "\(done)")

            // The activated device is an ordinary device: a push reaches it.
            try cluster.startDevice(pin: "A1000002")
            try cluster.bramble("push", "--to", demo1, "--subject", "Welcome", "--body", "activated over the air")
            try await cluster.waitFor("the push shown") { cluster.shown(pin: "A1000002").contains { $0.subject == "Welcome" } }

            // The password was single use.
            let again = try cluster.activateDevice(email: demo1, password: "correct horse 42", pin: "A1000003")
            #expect(again.status == 1 && again.lines.last?.error?.contains("used") == true, "\(again.lines)")

            // Activated again, a device keeps its IT commands: the lock in force, the history,
            // and a wipe ordered while it was off — which a lost device re-activated must not escape.
            func record() throws -> DeviceRecord {
                try PolicyServiceTests.decoder.decode(DeviceRecord.self, from: Data(try cluster.bramble(["device", "show", "A1000002", "--json"]).utf8))
            }
            let devicePassword = "\(cluster.dir)/device-password"
            try SecretFilePermissions.create(devicePassword, bytes: Data("a long device password 1".utf8), what: "test password")
            let lock = try PolicyServiceTests.decoder.decode(DeviceCommandRecord.self, from: Data(try cluster.bramble([
                "device", "lock", "A1000002", "--password-file", devicePassword, "--json"]).utf8))
            try await cluster.waitFor("the lock confirmed") { try record().locked_at != nil }
            cluster.device("A1000002")?.stop()
            let wipe = try PolicyServiceTests.decoder.decode(DeviceCommandRecord.self, from: Data(try cluster.bramble(["device", "wipe", "A1000002", "--json"]).utf8))
            try FileManager.default.removeItem(atPath: credentialPath)
            try await cluster.setActivationPassword(demo1, "correct horse 43")
            let reactivated = try cluster.activateDevice(email: demo1, password: "correct horse 43", pin: "A1000002")
            // The open wipe goes out with the IT policy, ahead of it: the device wipes as it
            // activates, and says so.
            #expect(reactivated.status == 1 && reactivated.lines.map(\.stage) == Array(Self.stages.prefix(2)) + ["error"], "\(reactivated.lines)")
            #expect(reactivated.lines.last?.error?.contains("wiped (all data) by its administrator as it activated") == true, "\(reactivated.lines)")
            #expect(!FileManager.default.fileExists(atPath: credentialPath), "the new credential went with the wipe")
            try await cluster.waitFor("recorded as wiped") { try record().status == "wiped" }
            let history = try record().commands ?? []
            #expect(history.map { "\($0.id) \($0.command) \($0.state)" } == ["\(wipe.id) wipe confirmed", "\(lock.id) lock confirmed"],
                    "the history kept, then the wipe: \(history)")

            // Five failed runs lock the activation; the right password is then refused too.
            let demo2 = "demo2@example.test"
            try await cluster.setActivationPassword(demo2, "right password 7")
            for n in 1...5 {
                let run = try cluster.activateDevice(email: demo2, password: "wrong guess \(n)", pin: "B100000\(n)")
                #expect(run.status == 1)
            }
            try await cluster.waitFor("the activation locked") { try await cluster.activation(demo2).state == "locked" }
            let listed = try cluster.bramble(["user", "list"]).split(separator: "\n")
            #expect(listed.contains { $0.hasPrefix(demo2) && $0.hasSuffix("\tactivation: locked") }, "\(listed)")
            let locked = try cluster.activateDevice(email: demo2, password: "right password 7", pin: "B1000006")
            #expect(locked.status == 1 && locked.lines.last?.error?.contains("locked") == true, "\(locked.lines)")
            // A new password unlocks it.
            try await cluster.setActivationPassword(demo2, "right password 8")
            #expect(try await cluster.activation(demo2).failures == 0)

            // A running simulator at its activation screen (`run --await-activation`), told
            // what the user types through `bramble-device control activate`: a wrong password
            // fails and the device waits for another try; the right one activates it, and it runs.
            let waitingPIN = "B2000001"
            let waitingCredential = "\(cluster.dir)/device-\(waitingPIN).json"
            let waiting = try ChildProcess(name: "waiting", executable: TestCluster.bin + "/bramble-device", arguments: [
                "run", "--credential", waitingCredential, "--await-activation", "--pin", waitingPIN, "--relay", "127.0.0.1:\(cluster.devicePort)",
                "--ca-file", cluster.tls.ca, "--log", cluster.logPath(pin: waitingPIN),
            ], logPath: "\(cluster.dir)/waiting.out")
            defer { waiting.stop() }
            func type(_ password: String) throws {
                let file = "\(cluster.dir)/typed-password"
                try? FileManager.default.removeItem(atPath: file)
                try SecretFilePermissions.create(file, bytes: Data(password.utf8), what: "test password")
                try runCommand(TestCluster.bin + "/bramble-device", ["control", "--state", waitingCredential + ".state", "activate",
                                                                    "--email", demo2, "--password-file", file])
            }
            try await cluster.waitFor("the device waits to be activated") { FileManager.default.fileExists(atPath: waitingCredential + ".state.control") }
            try type("not the password")
            try await cluster.waitFor("the wrong password's run failed") { waiting.log.contains("\"stage\":\"error\"") }
            #expect(waiting.isRunning, "the device waits for another try")
            #expect(!FileManager.default.fileExists(atPath: waitingCredential))
            try type("right password 8")
            try await cluster.waitFor("the waiting device activated", seconds: 30) { waiting.log.contains("\"stage\":\"Activation Complete\"") }
            try cluster.bramble("push", "--to", demo2, "--subject", "Hello, waiting device")
            try await cluster.waitFor("the push shown on it") { cluster.shown(pin: waitingPIN).contains { $0.subject == "Hello, waiting device" } }
            #expect(cluster.shown(pin: waitingPIN, service: "service-books").count == 1, "its service books in its log, once")
            let spool = try FileManager.default.contentsOfDirectory(atPath: waitingCredential + ".state.control")
            #expect(!spool.contains { $0.hasSuffix(".activation") }, "the spooled passwords are gone: \(spool)")

            // An expired password is refused.
            let demo3 = "demo3@example.test"
            try await cluster.setActivationPassword(demo3, "short lived 1", expiresSeconds: 1)
            try await Task.sleep(for: .milliseconds(1_500))
            #expect(try await cluster.activation(demo3).state == "expired")
            let expired = try cluster.activateDevice(email: demo3, password: "short lived 1", pin: "C1000001", timeout: 15)
            #expect(expired.status == 1, "\(expired.lines)")

            // The administrator's CLI: a generated password, printed once and mailed to the
            // user with the instructions, which then activates a device.
            let demo4 = "demo4@example.test"
            _ = try? cluster.bramble(["user", "add", "--email", demo4])
            let set = try cluster.bramble(["user", "activation", demo4, "--generate", "--expires", "2h", "--send-instructions"])
            let generated = try #require(set.split(separator: "\n").first { $0.hasPrefix("activation password: ") }?.dropFirst("activation password: ".count))
            #expect(set.contains("instructions mailed to \(demo4)"), "\(set)")
            try await cluster.waitFor("the instructions in the user's INBOX") {
                try await cluster.messages(demo4).contains { $0.text.contains("Activate your device") && $0.text.contains(String(generated)) }
            }
            let mailed = try cluster.activateDevice(email: demo4, password: String(generated), pin: "D4000001")
            #expect(mailed.status == 0 && mailed.lines.map(\.stage) == Self.stages, "\(mailed.lines)")
            #expect(try cluster.bramble(["user", "show", demo4]).contains("activation: completed"))

            // A locked device activated again with its storage reset is locked again: the
            // lock in force goes out ahead of its IT policy, and the device keeps its verifier.
            let locked4 = try PolicyServiceTests.decoder.decode(DeviceCommandRecord.self, from: Data(try cluster.bramble([
                "device", "lock", "D4000001", "--password-file", devicePassword, "--json"]).utf8))
            try cluster.startDevice(pin: "D4000001")
            let verifier4 = "\(cluster.dir)/device-D4000001.json.state.password"
            try await cluster.waitFor("D4000001 locked") { FileManager.default.fileExists(atPath: verifier4) }
            cluster.device("D4000001")?.stop()
            for name in try FileManager.default.contentsOfDirectory(atPath: cluster.dir) where name.hasPrefix("device-D4000001.json") {
                try FileManager.default.removeItem(atPath: "\(cluster.dir)/\(name)")  // the handheld reset: credential and state
            }
            try await cluster.setActivationPassword(demo4, "a new password 4")
            let again4 = try cluster.activateDevice(email: demo4, password: "a new password 4", pin: "D4000001")
            #expect(again4.status == 0 && again4.lines.map(\.stage) == Self.stages, "\(again4.lines)")
            #expect(FileManager.default.fileExists(atPath: verifier4), "the lock in force reached the device again")
            try cluster.startDevice(pin: "D4000001")
            try await cluster.waitFor("the lock confirmed again") {
                let shown = try PolicyServiceTests.decoder.decode(DeviceRecord.self, from: Data(try cluster.bramble(["device", "show", "D4000001", "--json"]).utf8))
                return shown.commands?.map { "\($0.id) \($0.state)" } == ["\(locked4.id) confirmed"] && shown.locked_at != nil
            }

            // No password material in the nodes' or the relay's logs.
            for log in ["node-a.log", "node-b.log", "relay.log"] {
                let text = (try? String(contentsOfFile: "\(cluster.dir)/\(log)", encoding: .utf8)) ?? ""
                for secret in ["correct horse 42", "right password 7", "wrong guess", String(generated)] { #expect(!text.contains(secret), "\(secret) in \(log)") }
            }
        }
    }

    @Test func replayedAndTamperedRequestsAreRefusedAndCounted() async throws {
        try await Self.mailCluster { cluster in
            let email = "demo1@example.test"
            let password = "the password 1"
            try await cluster.setActivationPassword(email, password)
            let secret = ActivationPassword.secret(password: password, email: email)

            func request(pin: PIN) throws -> (ActivationRequest, CPace.Initiator) {
                let sid = CPace.randomSessionID()
                var request = ActivationRequest(sessionID: sid, pin: pin, email: email, share: [])
                let initiator = try CPace.Initiator(password: secret, channelIdentifier: Activation.channelIdentifier(email: email, pin: pin),
                                                    sessionID: sid, associatedData: request.associatedData)
                request.share = initiator.share
                return (request, initiator)
            }

            // A run played by hand succeeds: the server's confirmation verifies, ours is accepted.
            let pin = PIN(0xD100_0001)
            let (first, initiator) = try request(pin: pin)
            let accepted = try await cluster.rawActivation(pin: pin, email: email, etp: first.encoded()) { link, frames in
                let answer = try await TestCluster.nextActivationFrame(&frames)
                #expect(answer.phase == .response)
                let response = try ActivationResponse.decode(answer.body)
                let (_, ta) = try initiator.finish(responderShare: response.share, responderAssociatedData: response.associatedData,
                                                   responderConfirmation: response.confirmation)
                try await link.outbound.write(.activation(ActivationFrame(phase: .confirm, pin: pin, srpID: response.srpID,
                                                                          body: ActivationConfirm(sessionID: first.sessionID, confirmation: ta).encoded())))
                return try ActivationResult.decode(try await TestCluster.nextActivationFrame(&frames).body)
            }
            #expect(accepted.accepted, "\(accepted.reason)")

            // The same etp.dat again, after a new password: a replay, refused and counted.
            try await cluster.setActivationPassword(email, password)
            let replay = try await cluster.rawActivation(pin: pin, email: email, etp: first.encoded()) { _, frames in
                try ActivationResult.decode(try await TestCluster.nextActivationFrame(&frames).body)
            }
            #expect(!replay.accepted && replay.reason.contains("seen before"), "\(replay)")
            #expect(try await cluster.activation(email).failures == 1)

            // A low-order point as the share: refused and counted.
            var (lowOrder, _) = try request(pin: PIN(0xD100_0002))
            lowOrder.share = [UInt8](repeating: 0, count: 32)
            let refused = try await cluster.rawActivation(pin: PIN(0xD100_0002), email: email, etp: lowOrder.encoded()) { _, frames in
                try ActivationResult.decode(try await TestCluster.nextActivationFrame(&frames).body)
            }
            #expect(!refused.accepted && refused.reason.contains("not valid"), "\(refused)")
            #expect(try await cluster.activation(email).failures == 2)

            // A share altered on the way: the server answers, but its confirmation does not
            // verify for the device (no key agreed), and the run counts.
            let (original, alteredInitiator) = try request(pin: PIN(0xD100_0003))
            var altered = original
            altered.share[5] ^= 0x10
            let verified = try await cluster.rawActivation(pin: PIN(0xD100_0003), email: email, etp: altered.encoded()) { _, frames in
                let response = try ActivationResponse.decode(try await TestCluster.nextActivationFrame(&frames).body)
                return (try? alteredInitiator.finish(responderShare: response.share, responderAssociatedData: response.associatedData,
                                                     responderConfirmation: response.confirmation)) != nil
            }
            #expect(!verified)
            #expect(try await cluster.activation(email).failures == 3)

            // An etp.dat that is not one: removed from the mailbox and counted.
            _ = try await cluster.rawActivation(pin: PIN(0xD100_0004), email: email, etp: Array(repeating: 0x41, count: 100)) { _, _ in }
            try await cluster.waitFor("the unreadable request counted") { try await cluster.activation(email).failures == 4 }
            try await cluster.waitFor("the requests removed") { try await cluster.activationMailsLeft(email) == 0 }
            #expect(try await cluster.activation(email).state == "in_progress", "the altered run is still awaiting a confirmation")

            // A request mailed past the relay (no valid seal) is removed and neither answered
            // nor counted: junk mail cannot use up the user's runs.
            let (forged, _) = try request(pin: PIN(0xD100_0005))
            for seals in [[], [(srpID: "bramble", mac: [UInt8](repeating: 7, count: 32))]] {
                let mail = ActivationMail.request(to: email, from: "mallory@outside.test", etp: forged.encoded(), seals: seals,
                                                  messageID: "<forged-\(UUID().uuidString)@outside.test>", date: Date())
                try await cluster.sendRawMail(to: email, String(decoding: mail, as: UTF8.self))
            }
            try await cluster.waitFor("the forged requests removed unanswered") {
                let log = (try? String(contentsOfFile: "\(cluster.dir)/node-a.log", encoding: .utf8)) ?? ""
                return log.components(separatedBy: "without the relay's seal was removed").count - 1 >= 2
            }
            #expect(try await cluster.activationMailsLeft(email) == 0)
            #expect(try await cluster.activation(email).failures == 4)
            #expect(try await cluster.metric("bramble_activation_requests_total{outcome=\"unsealed\"}") == 2)
            #expect(try await cluster.metric("bramble_activation_requests_total{outcome=\"answered\"}") ?? 0 >= 2)
        }
    }
}
