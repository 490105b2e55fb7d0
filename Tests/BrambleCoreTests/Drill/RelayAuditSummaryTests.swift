import BrambleCore
import Foundation
import Testing

@Suite struct RelayAuditSummaryTests {
    typealias R = RelayAuditSummary.Record

    @Test func aFailoverWithADisplacementHasOnePrimaryAndNoStaleItem() {
        // As the relay writes it: under its lock the old session leaves and the new one
        // registers in one step; the `displaced` line comes first and the registration
        // names the epoch it displaced.
        let records: [R] = [
            .init(atMs: 0, event: .start),
            .init(atMs: 10, event: .registered(srpID: "s", epoch: 1)),
            .init(atMs: 20, event: .data(srpID: "s", epoch: 1)),
            .init(atMs: 30, event: .displaced(srpID: "s", epoch: 1)),
            .init(atMs: 30, event: .registered(srpID: "s", epoch: 2, displacedEpoch: 1)),
            .init(atMs: 40, event: .data(srpID: "s", epoch: 2)),
        ]
        let summary = RelayAuditSummary(records: records, fromMs: 0, toMs: 100)
        #expect(summary.maxServingPrimaries == 1)
        #expect(summary.staleDeliveries == 0)
        #expect(summary.registrations == 2)
        #expect(summary.items == 2)
    }

    @Test func aRegistrationNamingTheEpochItDisplacedCountsOnceInWhateverOrderTheLinesCome() {
        let records: [R] = [
            .init(atMs: 10, event: .registered(srpID: "s", epoch: 1)),
            .init(atMs: 30, event: .registered(srpID: "s", epoch: 2, displacedEpoch: 1)),
            .init(atMs: 30, event: .displaced(srpID: "s", epoch: 1)),
            .init(atMs: 40, event: .data(srpID: "s", epoch: 2)),
        ]
        #expect(RelayAuditSummary(records: records, fromMs: 0, toMs: 100).maxServingPrimaries == 1)
    }

    @Test func twoLiveSessionsForOneSRPIDCountAsTwoPrimaries() {
        // What must never happen: a second registration while the first session is live
        // and not displaced by it.
        let records: [R] = [
            .init(atMs: 10, event: .registered(srpID: "s", epoch: 1)),
            .init(atMs: 20, event: .registered(srpID: "s", epoch: 2)),
            .init(atMs: 25, event: .data(srpID: "s", epoch: 2)),
            .init(atMs: 30, event: .unregistered(srpID: "s", epoch: 1)),
        ]
        let summary = RelayAuditSummary(records: records, fromMs: 0, toMs: 100)
        #expect(summary.maxServingPrimaries == 2)
        // A registration that names an epoch other than the live one displaced nothing live.
        let wrongEpoch: [R] = [
            .init(atMs: 10, event: .registered(srpID: "s", epoch: 1)),
            .init(atMs: 20, event: .registered(srpID: "s", epoch: 3, displacedEpoch: 2)),
        ]
        #expect(RelayAuditSummary(records: wrongEpoch, fromMs: 0, toMs: 100).maxServingPrimaries == 2)
    }

    @Test func anItemFromAnOldEpochAfterANewRegistrationIsStale() {
        let records: [R] = [
            .init(atMs: 10, event: .registered(srpID: "s", epoch: 1)),
            .init(atMs: 15, event: .unregistered(srpID: "s", epoch: 1)),
            .init(atMs: 30, event: .registered(srpID: "s", epoch: 2)),
            .init(atMs: 35, event: .data(srpID: "s", epoch: 1)),
            .init(atMs: 36, event: .data(srpID: "other", epoch: 1)),
        ]
        let summary = RelayAuditSummary(records: records, fromMs: 0, toMs: 100)
        #expect(summary.staleDeliveries == 1)
        #expect(summary.maxServingPrimaries == 1)
    }

    @Test func onlyTheWindowCountsButStateComesFromBefore() {
        let records: [R] = [
            .init(atMs: 10, event: .registered(srpID: "s", epoch: 5)),
            .init(atMs: 50, event: .auditDropped(count: 3)),
            .init(atMs: 200, event: .data(srpID: "s", epoch: 4)),
            .init(atMs: 250, event: .auditDropped(count: 2)),
            .init(atMs: 500, event: .data(srpID: "s", epoch: 4)),
        ]
        let summary = RelayAuditSummary(records: records, fromMs: 100, toMs: 300)
        #expect(summary == {
            var s = RelayAuditSummary(records: [], fromMs: 0, toMs: 0)
            s.maxServingPrimaries = 1; s.staleDeliveries = 1; s.registrations = 0; s.items = 1; s.auditDropped = 2
            return s
        }())
    }

    @Test func theRelaysAuditLinesParseInOrderAndACutLineIsSkipped() {
        let log = """
            {"event":"start","t":1}
            {"epoch":2,"event":"registered","srp_id":"bramble","t":5}
            {"epoch":2,"event":"data","pin":"2A00F00D","ref":7,"srp_id":"bramble","t":6}
            {"epoch":2,"event":"displaced","new_epoch":3,"srp_id":"bramble","t":7}
            {"displaced_epoch":2,"epoch":3,"event":"registered","srp_id":"bramble","t":7}
            {"epoch":2,"event":"refused","reason":"staleEpoch","srp_id":"bramble","t":8}
            {"count":12,"event":"audit_dropped","t":9}
            {"epoch":2,"event":"unregis
            """
        #expect(R.parse(jsonLines: Data(log.utf8)) == [
            .init(atMs: 1, event: .start),
            .init(atMs: 5, event: .registered(srpID: "bramble", epoch: 2)),
            .init(atMs: 6, event: .data(srpID: "bramble", epoch: 2)),
            .init(atMs: 7, event: .displaced(srpID: "bramble", epoch: 2)),
            .init(atMs: 7, event: .registered(srpID: "bramble", epoch: 3, displacedEpoch: 2)),
            .init(atMs: 8, event: .other),
            .init(atMs: 9, event: .auditDropped(count: 12)),
        ])
    }
}
