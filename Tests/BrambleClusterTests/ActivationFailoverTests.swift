@testable import BrambleTestSupport
import BrambleAPI
import BrambleCore
import BrambleNet
import Foundation
import Testing

/// An activation in progress survives a failover: its run (the ISK, sealed) is in the
/// configuration database, so the node that takes over checks the device's key
/// confirmation, provisions the device and sends its policy and service books.
@Suite(.serialized) struct ActivationFailoverTests {
    @Test func anActivationWhosePrimaryIsKilledBetweenRequestAndKeyConfirmationCompletesOnTheNewPrimary() async throws {
        var options = TestCluster.Options()
        options.nodes = ["node-a", "node-b"]
        options.mail = true
        try await TestCluster.with(options) { cluster in
            let email = "demo1@example.test"
            let password = "across the failover"
            try await cluster.setActivationPassword(email, password)
            let pin = PIN(0xE100_0001)
            let secret = ActivationPassword.secret(password: password, email: email)
            let sid = CPace.randomSessionID()
            var request = ActivationRequest(sessionID: sid, pin: pin, email: email, share: [])
            let initiator = try CPace.Initiator(password: secret, channelIdentifier: Activation.channelIdentifier(email: email, pin: pin),
                                                sessionID: sid, associatedData: request.associatedData)
            request.share = initiator.share
            let sealed = request

            let credential = try await cluster.rawActivation(pin: pin, email: email, etp: sealed.encoded()) { link, frames in
                // node-a answers the request…
                let answer = try await TestCluster.nextActivationFrame(&frames)
                #expect(answer.phase == .response)
                let response = try ActivationResponse.decode(answer.body)
                let (isk, ta) = try initiator.finish(responderShare: response.share, responderAssociatedData: response.associatedData,
                                                     responderConfirmation: response.confirmation)
                // …and dies before the device's key confirmation reaches it.
                cluster.nodes["node-a"]!.kill()
                try await cluster.waitFor("node-b primary", seconds: 30) { try await cluster.get(cluster.nodeURL("node-b") + "/primary").status == 200 }
                let confirm = Frame.activation(ActivationFrame(phase: .confirm, pin: pin, srpID: response.srpID,
                                                               body: ActivationConfirm(sessionID: sid, confirmation: ta).encoded()))
                // As the device does: again every second until the new primary answers.
                let result = try await withThrowingTaskGroup(of: ActivationResult?.self) { group in
                    group.addTask {
                        for _ in 0..<30 {
                            try await link.outbound.write(confirm)
                            try await Task.sleep(for: .seconds(1))
                        }
                        return nil
                    }
                    defer { group.cancelAll() }
                    let frame = try await TestCluster.nextActivationFrame(&frames, phase: .result)
                    return try ActivationResult.decode(frame.body)
                }
                #expect(result.accepted, "\(result)")
                return DeviceCredential(pin: pin, email: email, srpID: response.srpID,
                                        masterKey: Activation.masterKey(isk: isk, request: sealed, response: response), domainKey: response.domainKey)
            }

            // The device, with the key it agreed, gets its policy and service books from node-b.
            let encoder = JSONEncoder()
            try SecretFilePermissions.create("\(cluster.dir)/device-\(pin).json", bytes: try encoder.encode(credential), what: "device credential")
            try cluster.startDevice(pin: pin.description)
            try await cluster.waitFor("the activation completed", seconds: 30) { try await cluster.activation(email, node: "node-b").state == "completed" }
            let log = try String(contentsOfFile: cluster.logPath(pin: pin.description), encoding: .utf8)
            #expect(log.contains("\"service\":\"policy\"") && log.contains("\"state\":\"applied\""))
            #expect(log.contains("\"service\":\"service-books\""))
        }
    }
}
