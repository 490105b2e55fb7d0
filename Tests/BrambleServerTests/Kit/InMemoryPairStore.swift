import BrambleCore
@testable import BrambleServer
import NIOConcurrencyHelpers

/// The HA statements over an in-memory pair, on the test's clock (the "database clock"
/// is the manual clock): one lease per pair taken by conditional update, heartbeats,
/// the event log. `reachable = false` makes every statement fail, as a lost database.
final class InMemoryPairStore: PairStore, @unchecked Sendable {
    struct Lease { var holder: String?; var epoch: UInt64 = 0; var expiresAtMs: UInt64 = 0; var handoverTo: String? }
    struct State {
        var leases: [String: Lease] = [:]
        var heartbeats: [String: (beat: Heartbeat, atMs: UInt64)] = [:]
        var events: [NewPairEvent] = []
        var thresholds = ConfigStore.Thresholds.defaults
        var reachable = true
        var renewals = 0
        var accounts = HealthFacts.Accounts(users: 1, activeDevices: 0)
    }
    let clock: ManualClock
    let state = NIOLockedValueBox(State())

    init(clock: ManualClock) { self.clock = clock }

    struct Unreachable: Error {}

    private func now() throws -> UInt64 {
        guard state.withLockedValue({ $0.reachable }) else { throw Unreachable() }
        return clock.nowMs()
    }

    var events: [NewPairEvent] { state.withLockedValue { $0.events } }
    func lease(_ pair: String = "p") -> Lease? { state.withLockedValue { $0.leases[pair] } }

    func readPair(_ pair: String, node: String) async throws -> PairView {
        let now = try now()
        return state.withLockedValue { s in
            let lease = s.leases[pair].map { HAStateMachine.Lease(holder: $0.holder, epoch: $0.epoch, expiresAtMs: $0.expiresAtMs, handoverTo: $0.handoverTo) }
            let peer = s.heartbeats.values.filter { $0.beat.pair == pair && $0.beat.node != node }.max { $0.atMs < $1.atMs }
            return PairView(nowMs: now, lease: lease,
                            peer: peer.map { .init(node: $0.beat.node, score: $0.beat.score, writtenAtMs: $0.atMs, requestsLease: $0.beat.requestsLease) },
                            thresholds: s.thresholds)
        }
    }

    func takeLease(_ pair: String, node: String, expectedEpoch: UInt64, durationMs: Int) async throws -> UInt64? {
        let now = try now()
        return state.withLockedValue { s in
            var lease = s.leases[pair] ?? Lease()
            guard lease.epoch == expectedEpoch else { return nil }
            lease = Lease(holder: node, epoch: expectedEpoch + 1, expiresAtMs: now + UInt64(durationMs))
            s.leases[pair] = lease
            return lease.epoch
        }
    }

    func renewLease(_ pair: String, node: String, epoch: UInt64, durationMs: Int) async throws -> Bool {
        let now = try now()
        return state.withLockedValue { s in
            guard var lease = s.leases[pair], lease.holder == node, lease.epoch == epoch else { return false }
            lease.expiresAtMs = now + UInt64(durationMs)
            s.leases[pair] = lease
            s.renewals += 1
            return true
        }
    }

    func releaseLease(_ pair: String, node: String, epoch: UInt64, handoverTo: String?) async throws {
        let now = try now()
        state.withLockedValue { s in
            guard var lease = s.leases[pair], lease.holder == node, lease.epoch == epoch else { return }
            (lease.holder, lease.expiresAtMs, lease.handoverTo) = (nil, now, handoverTo)
            s.leases[pair] = lease
        }
    }

    func writeHeartbeat(_ heartbeat: Heartbeat) async throws {
        let now = try now()
        state.withLockedValue { $0.heartbeats[heartbeat.node] = (heartbeat, now) }
    }

    func announceHeartbeat(pair: String) async throws { _ = try now() }

    func recordEvent(_ event: NewPairEvent) async throws {
        _ = try now()
        state.withLockedValue { $0.events.append(event) }
    }

    func accountCounts() async throws -> HealthFacts.Accounts {
        _ = try now()
        return state.withLockedValue { $0.accounts }
    }

    func suspect(_ error: any Error) {}
}
