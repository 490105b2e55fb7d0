/// What a node tells its pair when it commits pushes (PostgreSQL NOTIFY, delivered at
/// commit): `outbound|ORIGIN|PIN:FIRST-LAST,PIN:FIRST-LAST` — the committing node and,
/// per device, the range of sequence numbers it added. A payload that would not fit
/// PostgreSQL's 8000-byte limit says `*` instead of ranges: "rescan the open items".
public struct OutboundNotification: Sendable, Equatable {
    public struct Range: Sendable, Equatable {
        public var pin: PIN
        public var first: UInt64
        public var last: UInt64
        public init(pin: PIN, first: UInt64, last: UInt64) {
            self.pin = pin
            self.first = first
            self.last = last
        }
    }

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case notOutbound
        case tooLong(Int)
        case malformedRange(String)
        public var description: String {
            switch self {
            case .notOutbound: "not an outbound notification"
            case .tooLong(let n): "notification of \(n) bytes exceeds \(OutboundNotification.maxPayload)"
            case .malformedRange(let r): "malformed range \"\(r)\""
            }
        }
    }

    /// Below PostgreSQL's NOTIFY payload limit (8000 bytes) with room to spare.
    public static let maxPayload = 7_500
    static let prefix = "outbound|"

    public var origin: String
    /// nil: too many to name; the receiver rescans every open item.
    public var ranges: [Range]?

    public init(origin: String, ranges: [Range]?) {
        self.origin = origin
        self.ranges = ranges
    }

    public var payload: String {
        let head = Self.prefix + origin + "|"
        guard let ranges else { return head + "*" }
        let body = ranges.map { "\($0.pin.value):\($0.first)-\($0.last)" }.joined(separator: ",")
        return head.utf8.count + body.utf8.count <= Self.maxPayload ? head + body : head + "*"
    }

    public init(payload: String) throws(ParseError) {
        guard payload.utf8.count <= Self.maxPayload else { throw .tooLong(payload.utf8.count) }
        guard payload.hasPrefix(Self.prefix) else { throw .notOutbound }
        let rest = payload.dropFirst(Self.prefix.count)
        guard let bar = rest.lastIndex(of: "|") else { throw .notOutbound }
        origin = String(rest[..<bar])
        let list = rest[rest.index(after: bar)...]
        if list == "*" { ranges = nil; return }
        var parsed: [Range] = []
        for item in list.split(separator: ",") {
            let parts = item.split(separator: ":")
            let bounds = parts.count == 2 ? parts[1].split(separator: "-") : []
            guard parts.count == 2, bounds.count == 2, let pin = UInt32(parts[0]),
                  let first = UInt64(bounds[0]), let last = UInt64(bounds[1]), first <= last
            else { throw .malformedRange(String(item.prefix(40))) }
            parsed.append(Range(pin: PIN(pin), first: first, last: last))
        }
        ranges = parsed
    }
}
