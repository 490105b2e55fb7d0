import BrambleAPI
import BrambleCore
@preconcurrency import Crypto
import Foundation
import PostgresNIO

extension ConfigStore {
    /// Every item not yet acknowledged or expired, in (PIN, sequence) order, and the keys
    /// of the devices they belong to: what a Dispatcher needs when it starts serving.
    public func openItems() async throws -> (items: [OutboundItem], keys: [PIN: SymmetricKey]) {
        let keys = try await deviceKeys()
        var items: [OutboundItem] = []
        for try await row in try await client.query("""
            SELECT pin, seq, push_id, subject, body, expires_at, service, payload, created_at FROM outbound
            WHERE state IN ('queued', 'sent') ORDER BY pin, seq
            """, logger: logger).decode(OutboundRow.self) {
            items.append(Self.item(row))
        }
        return (items, keys)
    }

    /// The open items a notification names, with their devices' keys.
    public func outboundItems(_ ranges: [OutboundNotification.Range]) async throws -> (items: [OutboundItem], keys: [PIN: SymmetricKey]) {
        var items: [OutboundItem] = []
        var keys: [PIN: SymmetricKey] = [:]
        let pins = ranges.map { Int64($0.pin.value) }, firsts = ranges.map { Int64($0.first) }, lasts = ranges.map { Int64($0.last) }
        for try await (p, seq, pushID, subject, body, expires, service, payload, created, key) in try await client.query("""
            SELECT o.pin, o.seq, o.push_id, o.subject, o.body, o.expires_at, o.service, o.payload, o.created_at, d.master_key
            FROM unnest(\(pins)::bigint[], \(firsts)::bigint[], \(lasts)::bigint[]) AS r(pin, first, last)
            JOIN outbound o ON o.pin = r.pin AND o.seq BETWEEN r.first AND r.last
            JOIN devices d ON d.pin = o.pin
            WHERE o.state IN ('queued', 'sent') AND d.status = 'active'
            ORDER BY o.pin, o.seq
            """, logger: logger).decode((Int64, Int64, UUID, String, String, Date, Int16, ByteBuffer?, Date, String).self) {
            let item = Self.item((p, seq, pushID, subject, body, expires, service, payload, created))
            items.append(item)
            keys[item.pin] = masterKey(key, pin: item.pin)
        }
        return (items, keys)
    }

    typealias OutboundRow = (Int64, Int64, UUID, String, String, Date, Int16, ByteBuffer?, Date)

    static func item(_ row: OutboundRow) -> OutboundItem {
        let (p, seq, pushID, subject, body, expires, service, payload, created) = row
        return OutboundItem(pin: PIN(UInt32(p)), seq: UInt64(seq), pushID: pushID, subject: subject, body: body, expiresAt: expires,
                            service: DataFrame.Service(rawValue: UInt8(truncatingIfNeeded: service)) ?? .push,
                            payload: payload.map { Array($0.readableBytesView) }, createdAt: created)
    }

    /// Records delivery transitions in one statement; a row only moves forward
    /// (queued → sent → acked or expired), and each row is written at most once, with its
    /// most advanced state. (Writing a row twice in one transaction would make PostgreSQL
    /// re-check its foreign key and lock the device row, deadlocking with the committer.)
    ///
    /// Committed without waiting for the WAL flush: losing the last of these in a crash
    /// costs a resend that the device drops as a repeat, never a lost or doubled item,
    /// and it keeps the disk's flushes for the pushes, whose commit is the promise.
    ///
    /// Fenced: only the holder of the pair's lease at `epoch` can record; anyone else
    /// gets `FencedError` and nothing changes.
    public func recordDelivery(_ transitions: [DeliveryTransition], pair: String, node: String, epoch: UInt64) async throws {
        var latest: [PIN: [UInt64: DeliveryState]] = [:]
        for t in transitions { latest[t.pin, default: [:]][t.seq] = max(t.state, latest[t.pin]?[t.seq] ?? t.state) }
        var pins: [Int64] = [], seqs: [Int64] = [], states: [String] = []
        for (pin, items) in latest.sorted(by: { $0.key < $1.key }) {
            for (seq, state) in items.sorted(by: { $0.key < $1.key }) {
                pins.append(Int64(pin.value)); seqs.append(Int64(seq)); states.append(state.rawValue)
            }
        }
        guard !pins.isEmpty else { return }
        try await fenced(pair, node: node, epoch: epoch) { [pins, seqs, states, logger] conn in
            try await conn.query("SET LOCAL synchronous_commit = off", logger: logger)
            try await conn.query("""
                UPDATE outbound o SET state = t.state,
                       sent_at = COALESCE(o.sent_at, now()),
                       acked_at = CASE WHEN t.state = 'acked' THEN now() ELSE o.acked_at END
                FROM unnest(\(pins)::bigint[], \(seqs)::bigint[], \(states)::text[]) AS t(pin, seq, state)
                WHERE o.pin = t.pin AND o.seq = t.seq
                  AND (o.state = 'queued' OR (o.state = 'sent' AND t.state <> 'sent'))
                """, logger: logger)
        }
    }

    /// Each device's copy of a push; empty if the id is unknown, or, for `app` (a push
    /// application), if the push is not that application's.
    public func pushStatus(_ pushID: UUID, app: String? = nil) async throws -> [PushItemStatus] {
        var items: [PushItemStatus] = []
        for try await (p, seq, state) in try await client.query("""
            SELECT pin, seq, state FROM outbound WHERE push_id = \(pushID)
              AND (\(app)::text IS NULL OR EXISTS (SELECT 1 FROM push_owners WHERE push_id = \(pushID) AND app = \(app)))
            ORDER BY pin
            """, logger: logger
        ).decode((Int64, Int64, String).self) {
            items.append(PushItemStatus(pin: PIN(UInt32(p)).description, seq: seq, state: DeliveryStateName(rawValue: state) ?? .queued))
        }
        return items
    }
}
