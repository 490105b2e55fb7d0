import NIOConcurrencyHelpers

/// The epoch a lease follower serves, and the pass under way, so that a demotion can wait
/// until nothing more is done under the old epoch (`LeaseFollower.stopServing`).
final class ServingEpoch: Sendable {
    private let serving = NIOLockedValueBox<UInt64?>(nil)
    private let busy = NIOLockedValueBox<UInt64?>(nil)

    /// The epoch served now; nil while not serving.
    var current: UInt64? { serving.withLockedValue { $0 } }

    func serve(_ epoch: UInt64) { serving.withLockedValue { $0 = epoch } }

    /// Stops serving `epoch`; returns once no pass of it is under way, or after `waitMs`
    /// (a pass's own deadlines bound it, and its writes are fenced by the epoch anyway).
    func stop(_ epoch: UInt64, waitMs: Int = 2_000) async {
        serving.withLockedValue { if $0 == epoch { $0 = nil } }
        for _ in 0..<(waitMs / 10) where busy.withLockedValue({ $0 == epoch }) {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Runs one pass at the epoch served now; nothing while not serving.
    func pass(isolation: isolated (any Actor)? = #isolation, _ body: (UInt64) async -> Void) async {
        guard let epoch = current else { return }
        busy.withLockedValue { $0 = epoch }
        await body(epoch)
        busy.withLockedValue { $0 = nil }
    }
}
