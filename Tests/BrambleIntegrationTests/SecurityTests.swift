@testable import BrambleTestSupport
import BrambleCore
import BrambleNet
import Crypto
import Foundation
import NIOCore
import Testing

/// Authentication and robustness at the edges: tampered device data, wrong SRP keys,
/// the connect-rate lockout, malformed bytes.
@Suite(.serialized) struct SecurityTests {
    @Test func tamperedCiphertextIsRejectedAndLoggedAndNothingCrashes() async throws {
        try await TestCluster.with { cluster in
            let credentialPath = try cluster.provision(email: "bob@example.test", pin: "B0B00001")
            try cluster.provision(email: "eve@example.test", pin: "EEE00001")
            try cluster.startDevice(pin: "B0B00001")
            let credential = try JSONDecoder().decode(DeviceCredential.self, from: Data(contentsOf: URL(fileURLWithPath: credentialPath)))
            let (_, bobKey) = try credential.validated()

            // Eve connects as her own PIN and sends: random bytes as a body, an ack sealed
            // under the wrong key, and a genuine-looking ack with one bit flipped.
            try await FrameLink.connect(to: cluster.relayDevices) { eve, frames in
                try await eve.outbound.write(.deviceHello(pin: PIN("EEE00001")!, srpID: "bramble"))
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
                var answer = try await RawTCP.exchange(evil, with: cluster.relayDevices)
                #expect(try Frame.decode(from: &answer).map(\.type) == .error, "the relay answers with an error frame and closes")
            }

            // Everything still serves.
            let id = try #require(await cluster.pushID(to: "bob@example.test", subject: "still here"))
            try await cluster.waitFor("bob's item") { cluster.shown(pin: "B0B00001").map(\.push_id) == [id] }
            #expect(cluster.relay!.isRunning && cluster.node!.isRunning)
        }
    }

    @Test func aWrongSRPKeyIsRefusedAndTheServingNodeKeepsItsLink() async throws {
        try await TestCluster.with { cluster in
            try await FrameLink.connect(to: cluster.relaySRP) { attacker, frames in
                guard case .challenge(let nonce)? = try await frames.next() else { Issue.record("no challenge"); return }
                let proof = SRPProof.compute(key: SymmetricKey(size: .bits256), nonce: nonce, srpID: "bramble", epoch: 1_000)
                try await attacker.outbound.write(.register(srpID: "bramble", epoch: 1_000, proof: proof))
                guard case .error(let code, _)? = try await frames.next() else { Issue.record("no refusal"); return }
                #expect(code == .authenticationFailed)
                #expect(try await frames.next() == nil, "the relay closes the connection")
            }

            let health = String(decoding: try await cluster.get("http://127.0.0.1:\(cluster.relayHTTPPort)/health").body, as: UTF8.self)
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
                try await FrameLink.connect(to: cluster.relaySRP) { c, frames in
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

