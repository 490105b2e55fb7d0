/// One line of the relay's audit log (`bramble-relay --audit-log`), as the relay appends
/// it under its lock: a small value, turned into JSON later by the log's writer.
///
/// A line is one JSON object with sorted keys, `t` (Unix ms, when the relay applied the
/// event) and `event`; `RelayAuditSummary.Record.parse` reads it back.
public struct RelayAuditRecord: Equatable, Sendable {
    public enum Event: Equatable, Sendable {
        /// The relay started (it holds no session and no epoch).
        case start
        /// A session registered; `displacedEpoch` is the session it took over in the same
        /// step, if any (then a `displaced` line for that session precedes this one).
        case registered(srpID: String, epoch: UInt64, displacedEpoch: UInt64?)
        case unregistered(srpID: String, epoch: UInt64)
        /// The session at `epoch` was displaced by a registration at `newEpoch`.
        case displaced(srpID: String, epoch: UInt64, newEpoch: UInt64)
        case refused(srpID: String, epoch: UInt64, reason: RelayEvent.RefusalReason)
        /// A server session at `epoch` sent an item towards a device.
        case data(srpID: String, epoch: UInt64, pin: PIN, ref: UInt64)
        /// `count` records are missing here: the log's queue was full.
        case auditDropped(count: Int)

        /// The record of a relay event, for the events the audit keeps.
        public init?(_ event: RelayEvent) {
            switch event {
            case .registered(let srpID, let epoch, let displaced): self = .registered(srpID: srpID, epoch: epoch, displacedEpoch: displaced)
            case .unregistered(let srpID, let epoch): self = .unregistered(srpID: srpID, epoch: epoch)
            case .displaced(let srpID, let old, let new): self = .displaced(srpID: srpID, epoch: old, newEpoch: new)
            case .refused(let srpID, let epoch, let reason): self = .refused(srpID: srpID, epoch: epoch, reason: reason)
            case .refusedData, .serverSilent, .deviceOnline, .deviceOffline, .storedForDevice, .storedForServer,
                 .storeOverflow, .storedExpired, .connectionRefused, .helloRefused, .helloTimedOut, .deviceIdle,
                 .presenceDeferred, .deviceKeysSynced, .deviceKeysRefused, .activationRequested, .activationRefused,
                 .activationUndeliverable, .activationTimedOut:
                return nil
            }
        }
    }

    public var atMs: Int64
    public var event: Event

    public init(atMs: Int64, event: Event) {
        self.atMs = atMs
        self.event = event
    }

    /// Appends the record as one JSON line (with its newline) to `out`.
    public func appendJSONLine(to out: inout [UInt8]) {
        var line = JSONObject()
        out.append(UInt8(ascii: "{"))
        switch event {
        case .start:
            line.string("event", "start", &out)
        case .registered(let srpID, let epoch, let displaced):
            if let displaced { line.number("displaced_epoch", displaced, &out) }
            line.number("epoch", epoch, &out)
            line.string("event", "registered", &out)
            line.string("srp_id", srpID, &out)
        case .unregistered(let srpID, let epoch):
            line.number("epoch", epoch, &out)
            line.string("event", "unregistered", &out)
            line.string("srp_id", srpID, &out)
        case .displaced(let srpID, let epoch, let newEpoch):
            line.number("epoch", epoch, &out)
            line.string("event", "displaced", &out)
            line.number("new_epoch", newEpoch, &out)
            line.string("srp_id", srpID, &out)
        case .refused(let srpID, let epoch, let reason):
            line.number("epoch", epoch, &out)
            line.string("event", "refused", &out)
            line.string("reason", reason.rawValue, &out)
            line.string("srp_id", srpID, &out)
        case .data(let srpID, let epoch, let pin, let ref):
            line.number("epoch", epoch, &out)
            line.string("event", "data", &out)
            line.string("pin", pin.description, &out)
            line.number("ref", ref, &out)
            line.string("srp_id", srpID, &out)
        case .auditDropped(let count):
            line.number("count", count, &out)
            line.string("event", "audit_dropped", &out)
        }
        line.number("t", atMs, &out)
        out += [UInt8(ascii: "}"), UInt8(ascii: "\n")]
    }
}

/// The fields of one flat JSON object, keys in the order given (callers give them sorted).
private struct JSONObject {
    private var first = true

    private mutating func key(_ key: StaticString, _ out: inout [UInt8]) {
        if !first { out.append(UInt8(ascii: ",")) }
        first = false
        out.append(UInt8(ascii: "\""))
        key.withUTF8Buffer { out.append(contentsOf: $0) }
        out += [UInt8(ascii: "\""), UInt8(ascii: ":")]
    }

    mutating func number(_ key: StaticString, _ value: some BinaryInteger, _ out: inout [UInt8]) {
        self.key(key, &out)
        out.append(contentsOf: String(value).utf8)
    }

    mutating func string(_ key: StaticString, _ value: String, _ out: inout [UInt8]) {
        self.key(key, &out)
        out.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                out += [UInt8(ascii: "\\"), byte]
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out += [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            default:
                out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
