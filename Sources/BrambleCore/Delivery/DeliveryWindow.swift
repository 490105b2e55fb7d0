import NIOCore

/// One item the Dispatcher should put on the wire now.
public struct Send<Item> {
    public var seq: UInt64
    public var item: Item
    /// True when this item was sent before without being acknowledged.
    public var isResend: Bool
}

extension Send: Sendable where Item: Sendable {}

/// The outbound bookkeeping for one device (BES Dispatcher): items wait in sequence
/// order, at most `maxInFlight` are unacknowledged at once, and an unacknowledged item
/// is sent again after `resendAfterMs` or when the caller says the path was rebuilt.
///
/// Pure: times are milliseconds on a monotonic clock the caller reads.
public struct DeliveryWindow<Item> {
    public let maxInFlight: Int
    public let resendAfterMs: UInt64

    private var pending = CircularBuffer<(seq: UInt64, item: Item)>()
    private var inFlight: [UInt64: (item: Item, sentAtMs: UInt64)] = [:]

    public init(maxInFlight: Int = 5, resendAfterMs: UInt64 = 4 * 3_600_000) {
        precondition(maxInFlight >= 1)
        self.maxInFlight = maxInFlight
        self.resendAfterMs = resendAfterMs
    }

    public var inFlightCount: Int { inFlight.count }
    public var pendingCount: Int { pending.count }
    public var isEmpty: Bool { pending.isEmpty && inFlight.isEmpty }
    /// When the oldest item still unacknowledged was sent (nil: none is in flight).
    public var oldestInFlightSentAtMs: UInt64? { inFlight.values.lazy.map(\.sentAtMs).min() }

    /// The item held under `seq` (pending or in flight), if any.
    public func item(seq: UInt64) -> Item? {
        inFlight[seq]?.item ?? pending.first(where: { $0.seq == seq })?.item
    }

    /// The least of `key` over every item held (pending and in flight); nil when empty.
    public func minimum<T: Comparable>(of key: (Item) -> T) -> T? {
        var least: T?
        for entry in pending { let k = key(entry.item); if least.map({ k < $0 }) ?? true { least = k } }
        for entry in inFlight.values { let k = key(entry.item); if least.map({ k < $0 }) ?? true { least = k } }
        return least
    }

    /// Adds a committed item; a sequence number already held is ignored (so reloading
    /// from the database after a notification is harmless). Returns what to send now.
    public mutating func enqueue(seq: UInt64, item: Item, nowMs: UInt64) -> [Send<Item>] {
        guard inFlight[seq] == nil, !pending.contains(where: { $0.seq == seq }) else { return [] }
        if let last = pending.last, last.seq > seq {
            let index = pending.firstIndex(where: { $0.seq > seq })!
            pending.insert((seq, item), at: index)
        } else {
            pending.append((seq, item))
        }
        return fill(nowMs: nowMs)
    }

    /// Records acknowledgements. Returns the sequence numbers that were outstanding (to be
    /// recorded as acked) and the items the freed slots let through.
    public mutating func acknowledge(_ seqs: [UInt64], nowMs: UInt64) -> (acked: [UInt64], sends: [Send<Item>]) {
        var acked: [UInt64] = []
        for seq in seqs {
            if inFlight.removeValue(forKey: seq) != nil {
                acked.append(seq)
            } else if let i = pending.firstIndex(where: { $0.seq == seq }) {
                // A copy from an earlier life (a relay's stored copy) was acknowledged.
                pending.remove(at: i)
                acked.append(seq)
            }
        }
        return (acked, fill(nowMs: nowMs))
    }

    /// Items whose resend time has passed.
    public mutating func due(nowMs: UInt64) -> [Send<Item>] {
        var sends: [Send<Item>] = []
        for (seq, entry) in inFlight where nowMs >= entry.sentAtMs &+ resendAfterMs {
            inFlight[seq] = (entry.item, nowMs)
            sends.append(Send(seq: seq, item: entry.item, isResend: true))
        }
        return sends.sorted { $0.seq < $1.seq }
    }

    /// Sends every unacknowledged item again: the path to the device was rebuilt (a new
    /// SRP link, the device reconnected, a promotion), so anything in flight may be lost.
    public mutating func resendAll(nowMs: UInt64) -> [Send<Item>] {
        var sends: [Send<Item>] = []
        for (seq, entry) in inFlight {
            inFlight[seq] = (entry.item, nowMs)
            sends.append(Send(seq: seq, item: entry.item, isResend: true))
        }
        sends.sort { $0.seq < $1.seq }
        return sends + fill(nowMs: nowMs)
    }

    /// Drops every item for which `isExpired` holds; returns their sequence numbers.
    public mutating func removeAll(where isExpired: (Item) -> Bool, nowMs: UInt64) -> (removed: [UInt64], sends: [Send<Item>]) {
        var removed: [UInt64] = []
        for (seq, entry) in inFlight where isExpired(entry.item) {
            inFlight[seq] = nil
            removed.append(seq)
        }
        var kept = CircularBuffer<(seq: UInt64, item: Item)>()
        for entry in pending {
            if isExpired(entry.item) { removed.append(entry.seq) } else { kept.append(entry) }
        }
        pending = kept
        return (removed.sorted(), fill(nowMs: nowMs))
    }

    private mutating func fill(nowMs: UInt64) -> [Send<Item>] {
        var sends: [Send<Item>] = []
        while inFlight.count < maxInFlight, let next = pending.popFirst() {
            inFlight[next.seq] = (next.item, nowMs)
            sends.append(Send(seq: next.seq, item: next.item, isResend: false))
        }
        return sends
    }
}

extension DeliveryWindow: Sendable where Item: Sendable {}
