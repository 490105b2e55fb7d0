@testable import BrambleTestSupport
import BrambleCore
import BrambleNet
import Foundation
import NIOCore
import Testing

/// The relay's audit log as the drills read it: every event in the order the relay
/// applied it, and nothing queued lost when the relay stops.
@Suite(.serialized) struct RelayAuditLogTests {
    @Test func aStoppingRelayHasWrittenEveryRoutedItemInOrderAfterItsRegistration() async throws {
        let items = 2_000
        try await TestRelay.with { relay in
            let server = try await relay.connect(relay.srp)
            try await server.executeThenClose { inbound, outbound in
                var frames = inbound.makeAsyncIterator()
                guard case .challenge(let nonce)? = try await frames.next() else { Issue.record("no challenge"); return }
                let proof = SRPProof.compute(key: relay.key, nonce: nonce, srpID: "bramble", epoch: 3)
                try await outbound.write(.register(srpID: "bramble", epoch: 3, proof: proof))
                #expect(try await frames.next() == .registered(srpID: "bramble", epoch: 3))
                // No device is online: the relay records each item, then stores it.
                for ref in 1...items {
                    try await outbound.write(.data(DataFrame(pin: PIN(0x5700_0003), service: .push, ref: UInt64(ref), flags: [],
                                                             body: Array(repeating: 0, count: Envelope.minimumSealedLength))))
                }
                // A ping answered means the relay has applied every frame before it.
                try await outbound.write(.ping(7))
                while let frame = try await frames.next(), frame != .pong(7) {}
            }
            relay.process.stop()  // SIGTERM: the relay drains its audit queue before it exits

            let lines = try Data(contentsOf: URL(fileURLWithPath: relay.auditPath)).split(separator: UInt8(ascii: "\n"))
            let objects = try lines.map { try #require(try JSONSerialization.jsonObject(with: $0) as? [String: Any]) }
            let events = objects.map { $0["event"] as? String ?? "?" }
            #expect(events.prefix(2) == ["start", "registered"])
            let refs = objects.filter { $0["event"] as? String == "data" }.compactMap { $0["ref"] as? Int }
            #expect(refs == Array(1...items), "every routed item, in the order it was routed")
            let summary = RelayAuditSummary(records: RelayAuditSummary.Record.parse(jsonLines: Data(lines.joined(separator: [UInt8(ascii: "\n")]))),
                                            fromMs: 0, toMs: .max)
            #expect(summary.maxServingPrimaries == 1 && summary.items == items && summary.auditDropped == 0)
        }
    }
}
