import BrambleCore
import BrambleNet
@testable import BrambleServer
@preconcurrency import Crypto
import Foundation
import NIOConcurrencyHelpers
import MetricsTestKit
import Testing

/// The Dispatcher in process: an in-memory outbound queue, the Router's outbound queue
/// read by the test as the link would be, a recorder over an in-memory delivery store,
/// and a clock the test advances.
@Suite struct DispatcherTests {
    static let pin = PIN(0xD15)
    let key = SymmetricKey(size: .bits256)
    let clock = ManualClock()
    let outbound = SRPOutbound()
    let queue: QueueStore
    let delivered = DeliveryLog()
    let dispatcher: Dispatcher
    let recorder: DeliveryRecorder
    let metrics: TestMetrics

    /// The outbound queue: its open items; `openItems` waits while `held` is set.
    final class QueueStore: OutboundStore, @unchecked Sendable {
        let items: [OutboundItem]
        let key: SymmetricKey
        let held = Watched(false)
        init(items: [OutboundItem], key: SymmetricKey) { (self.items, self.key) = (items, key) }
        func openItems() async throws -> (items: [OutboundItem], keys: [PIN: SymmetricKey]) {
            _ = await held.wait { !$0 }
            return (items, [DispatcherTests.pin: key])
        }
        func deviceKey(_ pin: PIN) async throws -> SymmetricKey? { pin == DispatcherTests.pin ? key : nil }
        func deviceKeys() async throws -> [PIN: SymmetricKey] { [DispatcherTests.pin: key] }
    }

    /// The transitions the recorder wrote, with their epochs.
    final class DeliveryLog: DeliveryStore, Sendable {
        let box = NIOLockedValueBox<[(DeliveryTransition, UInt64)]>([])
        func recordDelivery(_ transitions: [DeliveryTransition], pair: String, node: String, epoch: UInt64) async throws {
            box.withLockedValue { $0 += transitions.map { ($0, epoch) } }
        }
        let requests = NIOLockedValueBox<Set<PendingRequest.Key>>([])
        func recordRequests(_ requests: [PendingRequest], pair: String, node: String, epoch: UInt64)
            async throws -> (repeats: Set<PendingRequest.Key>, refused: Set<PendingRequest.Key>) {
            self.requests.withLockedValue { seen in
                let repeats = Set(requests.map(\.key)).intersection(seen)
                seen.formUnion(requests.map(\.key))
                return (repeats, [])
            }
        }
        func states(_ state: DeliveryState) -> [UInt64] { box.withLockedValue { $0.filter { $0.0.state == state }.map(\.0.seq).sorted() } }
    }

    init() {
        // Committed 100 s ago, item 1 first, a second apart.
        let items = (1...8).map { n in
            OutboundItem(pin: Self.pin, seq: UInt64(n), pushID: UUID(), subject: "item \(n)", body: "body \(n)", expiresAt: Date().addingTimeInterval(3600),
                         createdAt: Date().addingTimeInterval(Double(n) - 101))
        }
        queue = QueueStore(items: items, key: key)
        let (metrics, factory) = testMetrics()
        self.metrics = factory
        recorder = DeliveryRecorder(store: delivered, pair: "p", node: "a", inbox: HAInbox(), clock: clock, metrics: metrics, logger: quietLogger)
        var configuration = Dispatcher.Configuration()
        configuration.resendAfter = .seconds(30)
        let rung = requestsRung
        dispatcher = Dispatcher(configuration: configuration, store: queue, outbound: outbound, recorder: recorder, clock: clock,
                                metrics: metrics, logger: quietLogger, onRequestsRecorded: { rung.withLockedValue { $0 += 1 } })
    }

    /// How often the Dispatcher told the Agent of new requests.
    let requestsRung = NIOLockedValueBox(0)

    func request(ref: UInt64, _ request: DeviceRequest) -> DataFrame {
        var frame = DataFrame(pin: Self.pin, service: .request, ref: ref, flags: [.fromDevice], body: [])
        frame.body = Envelope().seal(request.encoded(), key: key, header: frame)
        return frame
    }

    @Test func aRequestIsRecordedBeforeItIsAcknowledgedAndARepeatIsAcknowledgedAgainButActsOnce() async throws {
        try await running {
            // The queue's first five items are taken, so that what is sent from here on
            // answers the requests alone.
            _ = try await serveWithTheLinkUp(epoch: 1)
            await dispatcher.received([request(ref: 7, .more(messageID: "<a@b>"))])
            await dispatcher.recordingsSettled()
            #expect(delivered.requests.withLockedValue { $0 } == [PendingRequest.Key(pin: Self.pin, ref: 7)], "recorded")
            var acks = try await sent().filter { $0.service == .requestAck }
            #expect(try acks.map { try AckList.decode(Envelope().open($0, key: key)).refs } == [[7]], "then acknowledged")
            #expect(requestsRung.withLockedValue { $0 } == 1)
            // The device did not hear the acknowledgement and sends it again (or someone replays it).
            await dispatcher.received([request(ref: 7, .more(messageID: "<a@b>"))])
            await dispatcher.recordingsSettled()
            acks = try await sent().filter { $0.service == .requestAck }
            #expect(acks.count == 1, "acknowledged again")
            #expect(requestsRung.withLockedValue { $0 } == 1, "nothing new to act on")
            // Tampered: neither recorded nor acknowledged.
            var tampered = request(ref: 8, .more(messageID: "<a@b>"))
            tampered.body[tampered.body.count - 1] ^= 1
            await dispatcher.received([tampered])
            await dispatcher.recordingsSettled()
            #expect(try await sent().isEmpty)
            #expect(delivered.requests.withLockedValue { $0 }.count == 1)
        }
    }

    func running(_ body: () async throws -> Void) async throws {
        let tasks = [Task { try await dispatcher.run() }, Task { try await recorder.run() }]
        defer { tasks.forEach { $0.cancel() } }
        try await body()
    }

    /// Everything queued for the link so far (the Router's writer would take it); none
    /// if nothing comes within 100 ms of real time.
    func sent() async throws -> [DataFrame] {
        let taken = (try? await withDeadline(ms: 100) { [outbound] in try await outbound.take() ?? [] }) ?? []
        return taken.compactMap { if case .data(let d) = $0 { d } else { nil } }
    }

    func subjects(_ frames: [DataFrame]) throws -> [String] {
        try frames.map { try PushItem.decode(Envelope().open($0, key: key)).subject }
    }

    /// Serves at `epoch` with the link registered, the queue loading only once the link is
    /// up (a load that landed before would be sent again by `linkUp`, rightly), and returns
    /// the first five sends.
    func serveWithTheLinkUp(epoch: UInt64) async throws -> [DataFrame] {
        queue.held.update { $0 = true }
        await dispatcher.serve(epoch: epoch)
        outbound.open(epoch: epoch)
        await dispatcher.linkUp(epoch: epoch)
        queue.held.update { $0 = false }
        var first: [DataFrame] = []
        try await eventually("five items sent") { first += (try? await sent()) ?? []; return first.count >= 5 }
        return first
    }

    /// An acknowledgement frame numbered `number` (devices number their frames upwards).
    func ack(_ refs: [UInt64], number: UInt64 = 1) -> DataFrame {
        var frame = DataFrame(pin: Self.pin, service: .ack, ref: number, flags: [.fromDevice], body: [])
        frame.body = Envelope().seal(AckList(refs: refs).encoded(), key: key, header: frame)
        return frame
    }

    @Test func promotionReturnsAtOnceWhileTheQueueLoadsAndThenAtMostFiveItemsAreInFlight() async throws {
        try await running {
            queue.held.update { $0 = true }  // the database is slow
            await dispatcher.serve(epoch: 1)  // returns: the load waits in the Dispatcher's own loop
            #expect(dispatcher.health.servingEpoch == 1)
            outbound.open(epoch: 1)
            await dispatcher.linkUp(epoch: 1)
            let early = try await sent()
            #expect(early.isEmpty, "nothing loaded yet")
            queue.held.update { $0 = false }
            var first: [DataFrame] = []
            try await eventually("five items sent") {
                first += (try? await sent()) ?? []
                return first.count >= 5
            }
            let firstSubjects = try subjects(first)
            #expect(firstSubjects == (1...5).map { "item \($0)" })
            await dispatcher.received([ack([1, 2])])
            let next = try await sent()
            let nextSubjects = try subjects(next)
            #expect(nextSubjects == ["item 6", "item 7"], "two acknowledged, two more let through")
            try await eventually("the recorder wrote the acks and the sends") { delivered.states(.acked) == [1, 2] && delivered.states(.sent).count == 7 }
        }
    }

    /// What the alerts read: the age of the oldest unacknowledged item, and each
    /// acknowledged item's time from its commit, by service.
    @Test func theOldestUnacknowledgedItemsAgeAndTheDeliveryLatencyAreMeasured() async throws {
        try await running {
            _ = try await serveWithTheLinkUp(epoch: 1)
            try await advance(clock, by: 1_000, stepMs: 1_000)  // a delivery tick
            let oldest = try metrics.expectMeter("bramble_oldest_unacked_seconds")
            try await eventually("the tick measured the oldest item") { (oldest.lastValue ?? 0) > 0 }
            #expect((99.0...110).contains(oldest.lastValue ?? 0), "item 1, committed 100 s ago: \(String(describing: oldest.lastValue))")
            await dispatcher.received([ack([1, 2])])
            let push = try metrics.expectTimer("bramble_delivery_seconds", [("service", "push")])
            let seconds = push.values.map { Double($0) / 1e9 }.sorted()
            #expect(seconds.count == 2 && (98.0...110).contains(seconds[0]) && (99.0...110).contains(seconds[1]), "two items delivered after ~99 s: \(seconds)")
            // A repeated acknowledgement measures nothing again.
            await dispatcher.received([ack([1, 2], number: 99)])
            #expect(push.values.count == 2)
            try await advance(clock, by: 1_000, stepMs: 1_000)
            try await eventually("the oldest is now item 3") { (oldest.lastValue ?? 0) < 99.5 && (oldest.lastValue ?? 0) > 90 }
            // Out of coverage (the relay says so): its items wait for the device, not for
            // this node; they count neither as unacknowledged nor, once back, as latency.
            await dispatcher.deviceOffline(Self.pin)
            try await advance(clock, by: 1_000, stepMs: 1_000)
            try await eventually("an offline device's items are not counted") { oldest.lastValue == 0 }
            await dispatcher.deviceOnline(Self.pin)
            _ = try await sent()
            await dispatcher.received([ack([3], number: 100)])
            #expect(push.values.count == 2, "item 3 was committed before its device came back: not measured")
            try await advance(clock, by: 1_000, stepMs: 1_000)
            try await eventually("back in coverage, its items count again") { (oldest.lastValue ?? 0) > 90 }
            await dispatcher.stopServing(epoch: 1)
            #expect(oldest.lastValue == 0, "a standby holds nothing")
        }
    }

    @Test func aReplayedAcknowledgementFrameIsRejected() async throws {
        try await running {
            _ = try await serveWithTheLinkUp(epoch: 1)
            await dispatcher.received([ack([1], number: 10)])
            #expect(try await sent().count == 1, "item 6 let through")
            // The same genuine frame again, and an older one that was never seen: both replays.
            await dispatcher.received([ack([1], number: 10), ack([2], number: 9)])
            #expect(try await sent().isEmpty, "item 2's acknowledgement under an old number freed nothing")
            await dispatcher.received([ack([2], number: 11)])
            #expect(try await sent().count == 1, "a higher number is taken")
        }
    }

    @Test func anUnacknowledgedItemIsSentAgainAfterTheResendTimeAndWhenTheLinkComesBack() async throws {
        try await running {
            let first = try await serveWithTheLinkUp(epoch: 3)
            #expect(first.allSatisfy { !$0.flags.contains(.resend) })
            await dispatcher.received([ack([1, 2, 3, 4])])
            _ = try await sent()
            try await advance(clock, by: 31_000, stepMs: 1_000)
            let resent = try await sent()
            #expect(resent.map(\.ref).sorted() == [5, 6, 7, 8] && resent.allSatisfy { $0.flags.contains(.resend) })
            await dispatcher.linkUp(epoch: 3)
            let again = try await sent()
            #expect(again.map(\.ref).sorted() == [5, 6, 7, 8], "a new link gets everything unacknowledged")
        }
    }

    @Test func aTamperedAcknowledgementIsRejectedAndFreesNothing() async throws {
        try await running {
            _ = try await serveWithTheLinkUp(epoch: 1)
            var tampered = ack([1])
            tampered.body[tampered.body.count - 1] ^= 1
            await dispatcher.received([tampered])
            let after = try await sent()
            #expect(after.isEmpty)
            #expect(delivered.states(.acked).isEmpty)
        }
    }

    @Test func afterStopServingNothingIsSentUnderTheOldEpoch() async throws {
        try await running {
            await dispatcher.serve(epoch: 1)
            outbound.open(epoch: 1)
            await dispatcher.stopServing(epoch: 1)
            await dispatcher.linkUp(epoch: 1)
            await dispatcher.committed(queue.items, keys: [Self.pin: key])
            let after = try await sent()
            #expect(after.isEmpty)
            #expect(dispatcher.health.servingEpoch == nil)
        }
    }
}
