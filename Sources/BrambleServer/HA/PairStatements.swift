import BrambleCore
import BrambleNet

/// One node's statements against its pair store, each bounded by the HA manager's
/// deadline (a statement not answered in time counts as the database unreachable).
struct PairStatements: Sendable {
    let store: any PairStore
    let pair: String
    let node: String
    let leaseMs: Int
    let timeoutMs: Int
    let clock: any NodeClock

    func readPair() async throws -> PairView { try await bounded { [self] in try await store.readPair(pair, node: node) } }

    /// The new epoch, or nil when another node won or the database did not answer.
    func takeLease(expected: UInt64) async -> UInt64? {
        (try? await bounded { [self] in try await store.takeLease(pair, node: node, expectedEpoch: expected, durationMs: leaseMs) }) ?? nil
    }

    /// Renewed, lost, or unreachable (then `error` says why).
    func renewLease(epoch: UInt64) async -> (outcome: HAStateMachine.RenewalOutcome, error: (any Error)?) {
        do {
            return (try await bounded { [self] in try await store.renewLease(pair, node: node, epoch: epoch, durationMs: leaseMs) } ? .renewed : .lost, nil)
        } catch {
            return (.unreachable, error)
        }
    }

    func releaseLease(epoch: UInt64, handoverTo: String?) async {
        try? await bounded { [self] in try await store.releaseLease(pair, node: node, epoch: epoch, handoverTo: handoverTo) }
    }

    func writeHeartbeat(_ heartbeat: Heartbeat) async throws { try await bounded { [store] in try await store.writeHeartbeat(heartbeat) } }
    func announceHeartbeat() async { try? await bounded { [self] in try await store.announceHeartbeat(pair: pair) } }
    func record(_ event: NewPairEvent) async { try? await bounded { [store] in try await store.recordEvent(event) } }
    func accountCounts() async -> HealthFacts.Accounts? { try? await bounded { [store] in try await store.accountCounts() } }

    func bounded<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withDeadline(ms: timeoutMs, clock: clock, body)
    }
}
