/// What the pair's event log shows about its lease epochs, for the failover drills: every
/// epoch served by one node, and epochs only going up. Two nodes recording a promotion at
/// the same epoch means two primaries each believed it held the same lease: a split brain
/// the relay's record cannot show, since a registration at an equal epoch displaces the
/// current one instead of being refused.
public struct EpochAudit: Equatable, Sendable {
    /// How many promotions the log recorded.
    public var promotions = 0
    /// Each epoch more than one node promoted at, with those nodes (sorted).
    public var sharedEpochs: [UInt64: [String]] = [:]
    /// Promotions at an epoch not above the one recorded before it.
    public var epochsOutOfOrder = 0

    public var passed: Bool { sharedEpochs.isEmpty && epochsOutOfOrder == 0 }

    /// `events` in the order the log recorded them; only promotions count.
    public init(events: [PairEvent]) {
        var holders: [UInt64: Set<String>] = [:]
        var previous: UInt64?
        for event in events where event.kind == .promote {
            guard let epoch = event.epoch else { continue }
            promotions += 1
            holders[epoch, default: []].insert(event.node)
            if let previous, epoch <= previous { epochsOutOfOrder += 1 }
            previous = epoch
        }
        sharedEpochs = holders.filter { $0.value.count > 1 }.mapValues { $0.sorted() }
    }
}
