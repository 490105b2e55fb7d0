import Testing

@testable import BrambleCore

@Suite struct OutboundNotificationTests {
    @Test func rangesSurviveTheRoundTrip() throws {
        let n = OutboundNotification(origin: "node-b", ranges: [.init(pin: PIN(0x2A00_0001), first: 1, last: 5),
                                                               .init(pin: PIN(7), first: 9, last: 9)])
        #expect(n.payload == "outbound|node-b|704643073:1-5,7:9-9")
        #expect(try OutboundNotification(payload: n.payload) == n)
    }

    @Test func tooManyRangesBecomeARescan() throws {
        let ranges = (0..<2_000).map { OutboundNotification.Range(pin: PIN(UInt32($0)), first: 1, last: 1) }
        let n = OutboundNotification(origin: "node-a", ranges: ranges)
        #expect(n.payload == "outbound|node-a|*", "a payload over PostgreSQL's limit asks for a rescan")
        #expect(n.payload.utf8.count <= OutboundNotification.maxPayload)
        #expect(try OutboundNotification(payload: n.payload).ranges == nil)
    }

    @Test func malformedPayloadsFailWithATypedError() {
        #expect(throws: OutboundNotification.ParseError.notOutbound) { try OutboundNotification(payload: "lease|bramble") }
        #expect(throws: OutboundNotification.ParseError.notOutbound) { try OutboundNotification(payload: "outbound|nobar") }
        #expect(throws: OutboundNotification.ParseError.malformedRange("1:5-2")) { try OutboundNotification(payload: "outbound|a|1:5-2") }
        #expect(throws: OutboundNotification.ParseError.malformedRange("x:1-2")) { try OutboundNotification(payload: "outbound|a|x:1-2") }
        #expect(throws: OutboundNotification.ParseError.malformedRange("99999999999:1-2")) {
            try OutboundNotification(payload: "outbound|a|99999999999:1-2")
        }
        #expect(throws: OutboundNotification.ParseError.tooLong(8_000)) {
            try OutboundNotification(payload: "outbound|a|" + String(repeating: "1", count: 8_000 - 11))
        }
    }
}
