/// What a device has shown, for dropping repeats (exactly-once on screen).
///
/// Items for one device carry dense sequence numbers 1, 2, 3, … so the set is a
/// high-water mark (every number up to it was shown) plus the few shown above it.
public struct ShownSet: Codable, Equatable, Sendable {
    public private(set) var highWater: UInt64 = 0
    public private(set) var above: Set<UInt64> = []

    public init() {}

    public func contains(_ seq: UInt64) -> Bool { seq <= highWater || above.contains(seq) }

    /// Records `seq` as shown; false if it had been shown already.
    @discardableResult
    public mutating func insert(_ seq: UInt64) -> Bool {
        guard !contains(seq) else { return false }
        above.insert(seq)
        // Up to UInt64.max and no further (a state file may hold a mark near the top).
        while highWater < .max, above.remove(highWater + 1) != nil { highWater += 1 }
        return true
    }

    enum CodingKeys: String, CodingKey {
        case highWater = "high_water"
        case above
    }
}
