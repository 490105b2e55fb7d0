import Testing

@testable import BrambleCore

@Suite struct DeliveryWindowTests {
    @Test func atMostFiveItemsAreInFlight() {
        var w = DeliveryWindow<String>(maxInFlight: 5, resendAfterMs: 1000)
        var sent: [UInt64] = []
        for seq in 1...8 { sent += w.enqueue(seq: UInt64(seq), item: "i\(seq)", nowMs: 0).map(\.seq) }
        #expect(sent == [1, 2, 3, 4, 5])
        #expect(w.inFlightCount == 5)
        #expect(w.pendingCount == 3)
    }

    @Test func anAcknowledgementLetsTheNextItemThrough() {
        var w = DeliveryWindow<String>(maxInFlight: 2, resendAfterMs: 1000)
        _ = w.enqueue(seq: 1, item: "a", nowMs: 0)
        _ = w.enqueue(seq: 2, item: "b", nowMs: 0)
        _ = w.enqueue(seq: 3, item: "c", nowMs: 0)
        let (acked, sends) = w.acknowledge([1], nowMs: 10)
        #expect(acked == [1])
        #expect(sends.map(\.seq) == [3])
        #expect(sends.allSatisfy { !$0.isResend })
    }

    @Test func aRepeatedAcknowledgementIsNotCountedTwice() {
        var w = DeliveryWindow<String>()
        _ = w.enqueue(seq: 1, item: "a", nowMs: 0)
        #expect(w.acknowledge([1], nowMs: 1).acked == [1])
        #expect(w.acknowledge([1], nowMs: 2).acked == [])
        #expect(w.isEmpty)
    }

    @Test func anUnacknowledgedItemIsResentAfterTheResendTime() {
        var w = DeliveryWindow<String>(maxInFlight: 5, resendAfterMs: 1000)
        _ = w.enqueue(seq: 1, item: "a", nowMs: 0)
        #expect(w.due(nowMs: 999).isEmpty)
        let resent = w.due(nowMs: 1000)
        #expect(resent.map(\.seq) == [1])
        #expect(resent.allSatisfy { $0.isResend })
        #expect(w.due(nowMs: 1500).isEmpty, "the resend restarts the timer")
        #expect(w.due(nowMs: 2000).map(\.seq) == [1])
    }

    @Test func aRebuiltPathResendsEverythingInFlightAtOnce() {
        var w = DeliveryWindow<String>(maxInFlight: 3, resendAfterMs: 1_000_000)
        for seq in 1...4 { _ = w.enqueue(seq: UInt64(seq), item: "", nowMs: 0) }
        let sends = w.resendAll(nowMs: 5)
        #expect(sends.map(\.seq) == [1, 2, 3])
        #expect(sends.allSatisfy { $0.isResend })
    }

    @Test func enqueueingAKnownItemAgainIsHarmless() {
        var w = DeliveryWindow<String>(maxInFlight: 1, resendAfterMs: 1000)
        #expect(w.enqueue(seq: 1, item: "a", nowMs: 0).count == 1)
        #expect(w.enqueue(seq: 1, item: "a", nowMs: 0).isEmpty)
        #expect(w.enqueue(seq: 2, item: "b", nowMs: 0).isEmpty)
        #expect(w.enqueue(seq: 2, item: "b", nowMs: 0).isEmpty)
        #expect(w.pendingCount == 1)
    }

    @Test func itemsLeaveInSequenceOrderWhateverOrderTheyArrive() {
        var w = DeliveryWindow<String>(maxInFlight: 1, resendAfterMs: 1000)
        _ = w.enqueue(seq: 1, item: "", nowMs: 0)
        _ = w.enqueue(seq: 4, item: "", nowMs: 0)
        _ = w.enqueue(seq: 2, item: "", nowMs: 0)
        _ = w.enqueue(seq: 3, item: "", nowMs: 0)
        var order: [UInt64] = []
        var next: UInt64 = 1
        while !w.isEmpty {
            let sends = w.acknowledge([next], nowMs: 0).sends
            order += sends.map(\.seq)
            next = sends.first?.seq ?? 0
        }
        #expect(order == [2, 3, 4])
    }

    @Test func expiredItemsAreDroppedAndFreeTheirSlots() {
        var w = DeliveryWindow<Int>(maxInFlight: 1, resendAfterMs: 1000)
        _ = w.enqueue(seq: 1, item: 10, nowMs: 0)
        _ = w.enqueue(seq: 2, item: 20, nowMs: 0)
        _ = w.enqueue(seq: 3, item: 99, nowMs: 0)
        let (removed, sends) = w.removeAll(where: { $0 < 50 }, nowMs: 1)
        #expect(removed == [1, 2])
        #expect(sends.map(\.seq) == [3])
    }
}

@Suite struct ShownSetTests {
    @Test func anItemIsShownOnceAndItsRepeatIsDropped() {
        var s = ShownSet()
        let first = s.insert(1)
        let again = s.insert(1)
        #expect(first)
        #expect(!again)
    }

    @Test func outOfOrderItemsCompactIntoTheHighWaterMark() {
        var s = ShownSet()
        s.insert(2); s.insert(3)
        #expect(s.highWater == 0)
        #expect(s.above == [2, 3])
        s.insert(1)
        #expect(s.highWater == 3)
        #expect(s.above.isEmpty)
        #expect(s.contains(2) && !s.contains(4))
    }

    @Test func itSurvivesEncodingAsTheStateFile() throws {
        var s = ShownSet()
        for n: UInt64 in [1, 2, 5, 9] { s.insert(n) }
        let decoded = try JSONDecoder().decode(ShownSet.self, from: try JSONEncoder().encode(s))
        #expect(decoded == s)
    }
}

@Suite struct PayloadTests {
    @Test func aPushItemRoundTrips() throws {
        let item = PushItem(pushID: "b7e1…", subject: "Héllo", body: String(repeating: "x", count: 5000))
        #expect(try PushItem.decode(item.encoded()) == item)
    }

    @Test func aPushItemWithTrailingOrMissingBytesIsRefused() {
        let bytes = PushItem(pushID: "p", subject: "s", body: "b").encoded()
        #expect(throws: PayloadError.self) { try PushItem.decode(bytes + [0]) }
        #expect(throws: PayloadError.self) { try PushItem.decode(Array(bytes.dropLast())) }
        #expect(throws: PayloadError.self) { try PushItem.decode([200]) }
    }

    @Test func anAckListRoundTripsAndIsBounded() throws {
        #expect(try AckList.decode(AckList(refs: [1, 2, 3]).encoded()).refs == [1, 2, 3])
        #expect(throws: PayloadError.self) { try AckList.decode([0, 0]) }
        #expect(throws: PayloadError.self) { try AckList.decode([0xFF, 0xFF]) }
        #expect(throws: PayloadError.self) { try AckList.decode([0, 2, 0, 0, 0, 0, 0, 0, 0, 1]) }
    }
}

@Suite struct PINTests {
    @Test func aPINReadsAndPrintsAsEightHexDigits() {
        #expect(PIN("2a00f00d")?.description == "2A00F00D")
        #expect(PIN("12")?.description == "00000012")
        #expect(PIN("") == nil)
        #expect(PIN("123456789") == nil)
        #expect(PIN("xyz") == nil)
    }
}

import Foundation
