import Foundation

/// What the relay's audit log (bramble-relay --audit-log) shows about the HA pair over a
/// window of time, independent of what the nodes claim:
/// - `maxServingPrimaries`: the most SRP sessions registered at once for one SRP ID (a
///   registration that displaced the session before it, in one step under the relay's
///   lock, counts once: its record names the epoch it displaced);
/// - `staleDeliveries`: items a server session sent towards a device while a higher
///   epoch than its own had already been registered for its SRP ID (a fenced primary
///   still delivering).
public struct RelayAuditSummary: Equatable, Sendable {
    public enum Event: Equatable, Sendable {
        case start
        /// `displacedEpoch`: the session the registration took over in the same step.
        case registered(srpID: String, epoch: UInt64, displacedEpoch: UInt64? = nil)
        case unregistered(srpID: String, epoch: UInt64)
        case displaced(srpID: String, epoch: UInt64)
        case data(srpID: String, epoch: UInt64)
        /// The relay's audit queue overflowed: `count` records are missing here.
        case auditDropped(count: Int)
        case other
    }

    public struct Record: Equatable, Sendable {
        public var atMs: Int64
        public var event: Event
        public init(atMs: Int64, event: Event) {
            self.atMs = atMs
            self.event = event
        }
    }

    public var maxServingPrimaries = 0
    public var staleDeliveries = 0
    public var registrations = 0
    public var items = 0
    /// Records the relay dropped from its log in the window (its queue was full): when
    /// not 0, the other figures may undercount.
    public var auditDropped = 0

    /// `records` in the order the relay wrote them; only those from `fromMs` to `toMs`
    /// count, but the state (who is registered, the highest epoch) is built from all.
    public init(records: [Record], fromMs: Int64, toMs: Int64) {
        var live: [String: Set<UInt64>] = [:]
        var highest: [String: UInt64] = [:]
        for record in records {
            let inWindow = record.atMs >= fromMs && record.atMs <= toMs
            switch record.event {
            case .start:
                live = [:]  // a restarted relay holds no session (it remembers no epochs either)
                highest = [:]
            case .registered(let srpID, let epoch, let displaced):
                if let displaced { live[srpID]?.remove(displaced) }
                live[srpID, default: []].insert(epoch)
                highest[srpID] = max(highest[srpID] ?? 0, epoch)
                if inWindow {
                    registrations += 1
                    maxServingPrimaries = max(maxServingPrimaries, live[srpID]!.count)
                }
            case .unregistered(let srpID, let epoch), .displaced(let srpID, let epoch):
                live[srpID]?.remove(epoch)
            case .data(let srpID, let epoch):
                guard inWindow else { continue }
                items += 1
                if epoch < highest[srpID] ?? 0 { staleDeliveries += 1 }
                maxServingPrimaries = max(maxServingPrimaries, live[srpID]?.count ?? 0)
            case .auditDropped(let count):
                if inWindow { auditDropped += count }
            case .other:
                continue
            }
        }
    }
}

extension RelayAuditSummary.Record {
    /// The records of a relay audit log (`bramble-relay --audit-log`: one JSON object per
    /// line with `t` and `event`), in file order; events this summary does not count are
    /// `.other`, and a line cut short by a kill is skipped.
    public static func parse(jsonLines data: Data) -> [RelayAuditSummary.Record] {
        struct Line: Decodable {
            var t: Int64, event: String, srp_id: String?, epoch: UInt64?, displaced_epoch: UInt64?, count: Int?
        }
        let decoder = JSONDecoder()
        return data.split(separator: UInt8(ascii: "\n")).compactMap { raw in
            guard let line = try? decoder.decode(Line.self, from: raw) else { return nil }
            let srp = line.srp_id ?? "", epoch = line.epoch ?? 0
            let event: RelayAuditSummary.Event = switch line.event {
            case "start": .start
            case "registered": .registered(srpID: srp, epoch: epoch, displacedEpoch: line.displaced_epoch)
            case "unregistered": .unregistered(srpID: srp, epoch: epoch)
            case "displaced": .displaced(srpID: srp, epoch: epoch)
            case "data": .data(srpID: srp, epoch: epoch)
            case "audit_dropped": .auditDropped(count: line.count ?? 0)
            default: .other
            }
            return RelayAuditSummary.Record(atMs: line.t, event: event)
        }
    }
}
