import Crypto
import Foundation
import Testing

@testable import BrambleCore

@Suite struct RelayAuditRecordTests {
    func jsonLines(_ records: [RelayAuditRecord]) -> [UInt8] {
        var out: [UInt8] = []
        for record in records { record.appendJSONLine(to: &out) }
        return out
    }

    @Test func everyRecordIsOneJSONObjectWithSortedKeys() throws {
        let records: [RelayAuditRecord] = [
            .init(atMs: 1, event: .start),
            .init(atMs: 2, event: .registered(srpID: "bramble", epoch: 3, displacedEpoch: 2)),
            .init(atMs: 3, event: .registered(srpID: "bramble", epoch: 1, displacedEpoch: nil)),
            .init(atMs: 4, event: .unregistered(srpID: "bramble", epoch: 3)),
            .init(atMs: 5, event: .displaced(srpID: "bramble", epoch: 2, newEpoch: 3)),
            .init(atMs: 6, event: .refused(srpID: "bramble", epoch: 1, reason: .staleEpoch)),
            .init(atMs: 7, event: .data(srpID: "bramble", epoch: 3, pin: PIN(0x2A00_F00D), ref: .max)),
            .init(atMs: 8, event: .auditDropped(count: 12)),
        ]
        let lines = String(decoding: jsonLines(records), as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines == [
            #"{"event":"start","t":1}"#,
            #"{"displaced_epoch":2,"epoch":3,"event":"registered","srp_id":"bramble","t":2}"#,
            #"{"epoch":1,"event":"registered","srp_id":"bramble","t":3}"#,
            #"{"epoch":3,"event":"unregistered","srp_id":"bramble","t":4}"#,
            #"{"epoch":2,"event":"displaced","new_epoch":3,"srp_id":"bramble","t":5}"#,
            #"{"epoch":1,"event":"refused","reason":"staleEpoch","srp_id":"bramble","t":6}"#,
            #"{"epoch":3,"event":"data","pin":"2A00F00D","ref":18446744073709551615,"srp_id":"bramble","t":7}"#,
            #"{"count":12,"event":"audit_dropped","t":8}"#,
            "",
        ])
        for line in lines where !line.isEmpty {
            #expect(try JSONSerialization.jsonObject(with: Data(line.utf8)) is [String: Any], "\(line)")
        }
    }

    @Test func aStringWithQuotesOrControlCharactersStaysOneValidLine() throws {
        let line = jsonLines([.init(atMs: 0, event: .unregistered(srpID: "a\"b\\c\n\u{1}é", epoch: 1))])
        #expect(line.filter { $0 == UInt8(ascii: "\n") }.count == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any])
        #expect(object["srp_id"] as? String == "a\"b\\c\n\u{1}é")
    }

    @Test func aDisplacementAsTheRelayCoreRecordsItCountsAsOneServingPrimary() {
        // The core's events in the order the hub queues them under its lock.
        let key = SymmetricKey(size: .bits256)
        var core = RelayCore(keys: ["bramble": key])
        var records: [RelayAuditRecord] = [.init(atMs: 0, event: .start)]
        func register(_ conn: ConnectionID, epoch: UInt64, at now: UInt64) {
            let nonce = Array(repeating: UInt8(conn), count: Frame.nonceLength)
            _ = core.serverConnected(conn, nonce: nonce, nowMs: now)
            let proof = SRPProof.compute(key: key, nonce: nonce, srpID: "bramble", epoch: epoch)
            for case .event(let event) in core.frameReceived(.register(srpID: "bramble", epoch: epoch, proof: proof), on: conn, nowMs: now) {
                if let record = RelayAuditRecord.Event(event) { records.append(.init(atMs: Int64(now), event: record)) }
            }
        }
        register(1, epoch: 1, at: 10)
        register(2, epoch: 2, at: 20)
        register(3, epoch: 2, at: 30)  // a reconnect at the same epoch displaces too
        register(4, epoch: 1, at: 40)  // refused: stale
        #expect(records.map(\.event) == [
            .start,
            .registered(srpID: "bramble", epoch: 1, displacedEpoch: nil),
            .displaced(srpID: "bramble", epoch: 1, newEpoch: 2),
            .registered(srpID: "bramble", epoch: 2, displacedEpoch: 1),
            .displaced(srpID: "bramble", epoch: 2, newEpoch: 2),
            .registered(srpID: "bramble", epoch: 2, displacedEpoch: 2),
            .refused(srpID: "bramble", epoch: 1, reason: .staleEpoch),
        ])
        let parsed = RelayAuditSummary.Record.parse(jsonLines: Data(jsonLines(records)))
        #expect(parsed.count == records.count)
        let summary = RelayAuditSummary(records: parsed, fromMs: 0, toMs: 100)
        #expect(summary.maxServingPrimaries == 1)
        #expect(summary.registrations == 3)
    }
}
