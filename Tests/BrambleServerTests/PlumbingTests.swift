import BrambleCore
import BrambleNet
@testable import BrambleServer
import Foundation
import NIOConcurrencyHelpers
import Testing

/// The small pieces that keep the node from hanging or buffering without end.
@Suite struct PlumbingTests {
    @Test func withDeadlineCancelsItsTimerWhenTheWorkAnswersAndItsWorkWhenTimeRunsOut() async throws {
        let clock = ManualClock()
        #expect(try await withDeadline(ms: 1_000, clock: clock) { 7 } == 7)
        try await eventually("the timer cancelled") { clock.sleeping == 0 }
        let cancelled = NIOLockedValueBox(false)
        let waiting = Task {
            try await withDeadline(ms: 1_000, clock: clock) {
                do { try await Task.sleep(for: .seconds(60)) } catch { cancelled.withLockedValue { $0 = true }; throw error }
            }
        }
        try await eventually("the timer waits") { clock.sleeping == 1 }
        clock.advance(by: 1_000)
        await #expect(throws: DeadlineExceeded.self) { try await waiting.value }
        try await eventually("the work cancelled") { cancelled.withLockedValue { $0 } }
    }

    @Test func aBatcherRefusesOnceFinishedOrFullAndHandsBackWhatItCouldNotHandle() async {
        let batcher = Batcher<Int>(maxBatch: 10, maxPending: 3)
        #expect(batcher.append(contentsOf: [1, 2, 3]))
        #expect(!batcher.append(4), "full")
        let task = Task { await batcher.run { _ in } }
        task.cancel()  // the loop is gone before it handled anything
        let left = await task.value
        #expect(Set(left).isSubset(of: [1, 2, 3]))
        #expect(!batcher.append(5), "after the loop ended nothing is taken in to wait forever")
    }

    @Test func theOutboundQueueOverflowsInsteadOfBufferingWithoutEnd() async throws {
        let outbound = SRPOutbound(maxBytes: 1_000)
        outbound.open(epoch: 1)
        let frame = Frame.data(DataFrame(pin: PIN(1), service: .push, ref: 1, flags: [], body: Array(repeating: 0, count: 400)))
        #expect(outbound.send([frame, frame], epoch: 1))
        #expect(!outbound.send([frame], epoch: 1), "over 1,000 bytes waiting")
        await #expect(throws: SRPOutbound.Overflow.self) { _ = try await outbound.take() }
        outbound.close()
        #expect(try await outbound.take() == nil)
    }

    @Test func aWatchedValueWakesItsWaitersAndACancelledWaiterReturns() async throws {
        let value = Watched(0)
        let waiter = Task { await value.wait { $0 >= 2 } }
        value.update { $0 = 1 }
        value.update { $0 = 2 }
        #expect(await waiter.value == 2)
        let cancelled = Task { await value.wait { $0 >= 99 } }
        cancelled.cancel()
        #expect(await cancelled.value == 2)
    }

    @Test func aPushBatchRepeatingAKeyCommitsItOnceAndAReusedKeyIsRefused() {
        func push(_ subject: String, key: String?) -> PushRequest {
            var r = PushRequest(to: .pin(PIN(1)), subject: subject, body: "", expiresIn: 60)
            r.idempotencyKey = key
            return r
        }
        var plan = PushBatchPlan(requests: [push("a", key: "k1"), push("a", key: "k1"), push("b", key: "k1"), push("c", key: nil),
                                            push("d", key: "k2")]) { _ in [PIN(1)] }
        #expect(plan.keyed.map(\.key) == ["k1", "k2"])
        #expect(plan.itemCounts == [PIN(1): 3], "a, c and d are new")
        guard case .accepted(let first, _, false) = plan.outcomes[0], case .accepted(let again, _, true) = plan.outcomes[1] else {
            Issue.record("\(plan.outcomes)"); return
        }
        #expect(first == again)
        guard case .keyReused = plan.outcomes[2] else { Issue.record("\(plan.outcomes[2])"); return }
        // k2 was committed before, by another request (another node, an hour ago).
        let earlier = UUID()
        plan.replay(key: "k2", fingerprint: push("d", key: "k2").fingerprint, pushID: earlier, devices: ["00000001"])
        guard case .accepted(earlier, ["00000001"], true) = plan.outcomes[4] else { Issue.record("\(plan.outcomes[4])"); return }
        #expect(plan.itemCounts == [PIN(1): 2])
        #expect(plan.items(startingAt: [PIN(1): 41], now: Date()).map(\.item.seq) == [41, 42])
        // A key another transaction holds: its request waits for that one's outcome.
        plan.inProgress(key: "k1")
        guard case .keyInProgress = plan.outcomes[0] else { Issue.record("\(plan.outcomes[0])"); return }
        #expect(plan.itemCounts == [PIN(1): 1], "only c is left to commit")
    }
}
