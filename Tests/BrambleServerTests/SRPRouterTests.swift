import BrambleCore
import BrambleNet
@testable import BrambleServer
@preconcurrency import Crypto
import NIOConcurrencyHelpers
import Testing

/// The Router in process against a scripted relay on loopback, on a clock the test
/// advances (the watchdog and the back-off run on it).
@Suite struct SRPRouterTests {
    let key = SymmetricKey(size: .bits256)
    let clock = ManualClock()
    let inbox = HAInbox()
    let outbound = SRPOutbound()
    let status: LinkStatus
    let delegate = RecordingDelegate()

    final class RecordingDelegate: SRPLinkDelegate {
        let log = CallLog()
        func linkUp(epoch: UInt64) async { log.append("up(\(epoch))") }
        func linkDown(epoch: UInt64) async { log.append("down(\(epoch))") }
        func received(_ frames: [DataFrame]) async { log.append("received(\(frames.count))") }
        func deviceOnline(_ pin: PIN) async { log.append("online(\(pin))") }
    }

    init() { status = LinkStatus(clock: clock) }

    func router(_ relay: ScriptedRelay) -> SRPRouter {
        let (metrics, _) = testMetrics()
        return SRPRouter(configuration: .init(relay: relay.address, srpID: "bramble", key: key), delegate: delegate, outbound: outbound,
                         status: status, inbox: inbox, clock: clock, metrics: metrics, logger: quietLogger)
    }

    func running(_ router: SRPRouter, _ body: () async throws -> Void) async throws {
        let task = Task { try await router.run() }
        defer { task.cancel() }
        try await body()
    }

    @Test func theRouterRegistersAtItsEpochWritesWhatIsQueuedAndClosesTheLinkWhenTold() async throws {
        try await ScriptedRelay.with(key: key) { relay in
            let router = router(relay)
            try await running(router) {
                await router.serve(epoch: 4)
                try await eventually("registered") { status.snapshot.up }
                #expect(relay.state.withLockedValue { $0.registrations } == [4])
                try await eventually("the Dispatcher told") { delegate.log.entries == ["up(4)"] }
                let item = DataFrame(pin: PIN(7), service: .push, ref: 1, flags: [], body: Array(repeating: 1, count: Envelope.minimumSealedLength))
                #expect(outbound.send([.data(item)], epoch: 4))
                #expect(!outbound.send([.data(item)], epoch: 3), "nothing for another epoch")
                try await eventually("the relay got the item") { relay.state.withLockedValue { $0.received } == [item] }
                await router.stopServing(epoch: 4)
                #expect(!status.snapshot.up)
                try await eventually("the relay saw the link close") { relay.state.withLockedValue { $0.open } == 0 }
                #expect(delegate.log.entries == ["up(4)", "down(4)"])
                #expect(!outbound.send([.data(item)], epoch: 4), "no link, nothing queued")
            }
        }
    }

    @Test func aRelayThatGoesSilentEndsTheLinkWithNoGraceAndTheRouterTriesAgain() async throws {
        try await ScriptedRelay.with(key: key) { relay in
            let router = router(relay)
            try await running(router) {
                await router.serve(epoch: 1)
                try await eventually("registered") { status.snapshot.up }
                relay.state.withLockedValue { $0.silent = true }
                try await advance(clock, by: 1_000, until: { !status.snapshot.up })
                let link = status.snapshot
                #expect(!link.up && link.cause == .relaySilent, "\(link)")
                #expect(link.lastError?.contains("relay silent for") == true)
                relay.state.withLockedValue { $0.silent = false }
                try await advance(clock, by: 2_000, until: { status.snapshot.up })
                #expect(relay.state.withLockedValue { $0.registrations } == [1, 1], "it registered again after its back-off")
            }
        }
    }

    @Test func whenTheRelayHoldsAHigherEpochTheRouterReportsItAndStopsTrying() async throws {
        try await ScriptedRelay.with(key: key) { relay in
            relay.state.withLockedValue { $0.answer = .refuse(.epochRefused(reason: .stale, heldEpoch: 9)) }
            let router = router(relay)
            try await running(router) {
                await router.serve(epoch: 2)
                guard case .relayHolds(let held)? = await inbox.next() else { Issue.record("no report"); return }
                #expect(held == 9)
                try await advance(clock, by: 30_000, stepMs: 500)
                #expect(relay.state.withLockedValue { $0.connections } == 1, "no more connects to spend the lockout window")
                #expect(!status.snapshot.up)
            }
        }
    }

    @Test func aLockoutCountsAsLockedOutNotAsALostRelay() async throws {
        try await ScriptedRelay.with(key: key) { relay in
            relay.state.withLockedValue { $0.answer = .refuse(.error(code: .lockedOut, message: "locked out for 60 s")) }
            let router = router(relay)
            try await running(router) {
                await router.serve(epoch: 1)
                try await eventually("refused") { status.snapshot.lastError?.contains("locked out") == true }
                #expect(status.snapshot.cause == .lockedOut)
            }
        }
    }
}
