/// One entry of an HA pair's event log (the configuration database's `events` table):
/// a node starting or stopping, a promotion or demotion at a lease epoch, a threshold
/// change. `GET /admin/pair/events` answers with a `PairEventLog`; `bramble pair events`
/// and the drills' verdict read it.
public struct PairEvent: Sendable, Codable, Equatable {
    /// The `kind` of a promotion: `node` took the lease at `epoch`.
    public static let promotion = "promote"

    /// When, on the database clock, in milliseconds since 1970.
    public var atUnixMs: Int64
    public var node: String
    public var kind: String
    public var epoch: UInt64?
    public var detail: String

    enum CodingKeys: String, CodingKey {
        case atUnixMs = "at_unix_ms", node, kind, epoch, detail
    }

    public init(atUnixMs: Int64, node: String, kind: String, epoch: UInt64?, detail: String) {
        self.atUnixMs = atUnixMs
        self.node = node
        self.kind = kind
        self.epoch = epoch
        self.detail = detail
    }
}

/// A pair's events, oldest first.
public struct PairEventLog: Sendable, Codable {
    public var pair: String
    public var events: [PairEvent]

    public init(pair: String, events: [PairEvent]) {
        self.pair = pair
        self.events = events
    }
}
