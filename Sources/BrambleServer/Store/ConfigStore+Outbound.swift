import BrambleCore
@preconcurrency import Crypto
import Foundation
import PostgresNIO

extension ConfigStore {
    /// Commits a batch of pushes in one transaction (group commit) and returns, per
    /// request, its outcome, plus the master key of every device that got an item.
    ///
    /// Device rows are locked in PIN order (no deadlock between two committers), and each
    /// device's `last_seq` advances in the same transaction that inserts its items, so
    /// every device's items carry dense sequence numbers that become visible in order.
    ///
    /// The same transaction notifies the pair (`outbound|ORIGIN|PIN:FIRST-LAST,…`), so
    /// the primary learns at commit of items a standby accepted.
    public func commitPushes(_ requests: [PushRequest], origin: String) async throws -> (outcomes: [PushOutcome], keys: [PIN: SymmetricKey]) {
        let emails = requests.compactMap { if case .email(let e) = $0.to { e } else { nil } }
        let pins = requests.compactMap { if case .pin(let p) = $0.to { Int64(p.value) } else { nil } }
        return try await database.withPrimaryTransaction(logger: logger) { [logger] conn in
            var byEmail: [String: [PIN]] = [:]
            var keys: [PIN: SymmetricKey] = [:]
            let resolved = try await conn.query("""
                SELECT d.pin, u.email, d.master_key FROM devices d JOIN users u ON u.id = d.user_id
                WHERE d.status = 'active' AND (u.email = ANY(\(emails)) OR d.pin = ANY(\(pins)))
                ORDER BY d.pin FOR UPDATE OF d
                """, logger: logger)
            for try await (pinValue, email, key) in resolved.decode((Int64, String, String).self) {
                let pin = PIN(UInt32(pinValue))
                byEmail[email, default: []].append(pin)
                keys[pin] = SymmetricKey(base64: key)
            }

            var targets: [[PIN]] = []
            var counts: [PIN: Int64] = [:]
            for r in requests {
                let devices: [PIN]
                switch r.to {
                case .email(let e): devices = byEmail[e] ?? []
                case .pin(let p): devices = keys[p] != nil ? [p] : []
                }
                targets.append(devices)
                for pin in devices { counts[pin, default: 0] += 1 }
            }
            guard !counts.isEmpty else { return (requests.map { _ in .unknownRecipient }, [:]) }

            let countedPINs = counts.keys.sorted()
            let countPins = countedPINs.map { Int64($0.value) }
            let countValues = countedPINs.map { counts[$0]! }
            var nextSeq: [PIN: UInt64] = [:]
            let advanced = try await conn.query("""
                UPDATE devices d SET last_seq = d.last_seq + c.n
                FROM unnest(\(countPins)::bigint[], \(countValues)::bigint[]) AS c(pin, n)
                WHERE d.pin = c.pin
                RETURNING d.pin, d.last_seq
                """, logger: logger)
            for try await (pinValue, last) in advanced.decode((Int64, Int64).self) {
                let pin = PIN(UInt32(pinValue))
                nextSeq[pin] = UInt64(last - counts[pin]! + 1)
            }

            let now = Date()
            var outcomes: [PushOutcome] = []
            var rowPin: [Int64] = [], rowSeq: [Int64] = [], rowPush: [UUID] = []
            var rowSubject: [String] = [], rowBody: [String] = [], rowExpires: [Int64] = []
            for (r, devices) in zip(requests, targets) {
                guard !devices.isEmpty else { outcomes.append(.unknownRecipient); continue }
                let pushID = UUID()
                var items: [OutboundItem] = []
                for pin in devices {
                    let seq = nextSeq[pin]!
                    nextSeq[pin] = seq + 1
                    items.append(OutboundItem(pin: pin, seq: seq, pushID: pushID, subject: r.subject, body: r.body,
                                              expiresAt: now.addingTimeInterval(TimeInterval(r.expiresIn))))
                    rowPin.append(Int64(pin.value)); rowSeq.append(Int64(seq)); rowPush.append(pushID)
                    rowSubject.append(r.subject); rowBody.append(r.body); rowExpires.append(Int64(r.expiresIn))
                }
                outcomes.append(.accepted(pushID: pushID, items: items))
            }
            try await conn.query("""
                INSERT INTO outbound (pin, seq, push_id, service, subject, body, expires_at)
                SELECT t.pin, t.seq, t.push_id, \(Int16(DataFrame.Service.push.rawValue)), t.subject, t.body,
                       now() + t.expires_in * interval '1 second'
                FROM unnest(\(rowPin)::bigint[], \(rowSeq)::bigint[], \(rowPush)::uuid[], \(rowSubject)::text[],
                            \(rowBody)::text[], \(rowExpires)::bigint[]) AS t(pin, seq, push_id, subject, body, expires_in)
                """, logger: logger)
            let ranges = countedPINs.map { OutboundNotification.Range(pin: $0, first: nextSeq[$0]! - UInt64(counts[$0]!), last: nextSeq[$0]! - 1) }
            let payload = OutboundNotification(origin: origin, ranges: ranges).payload
            try await conn.query("SELECT pg_notify(\(Self.notificationChannel), \(payload))", logger: logger)
            return (outcomes, keys)
        }
    }

    /// Every item not yet acknowledged or expired, in (PIN, sequence) order, and the keys
    /// of the devices they belong to: what a Dispatcher needs when it starts serving.
    public func openItems() async throws -> (items: [OutboundItem], keys: [PIN: SymmetricKey]) {
        let keys = try await deviceKeys()
        var items: [OutboundItem] = []
        for try await (p, seq, pushID, subject, body, expires) in try await client.query("""
            SELECT pin, seq, push_id, subject, body, expires_at FROM outbound
            WHERE state IN ('queued', 'sent') ORDER BY pin, seq
            """, logger: logger).decode((Int64, Int64, UUID, String, String, Date).self) {
            items.append(OutboundItem(pin: PIN(UInt32(p)), seq: UInt64(seq), pushID: pushID, subject: subject, body: body, expiresAt: expires))
        }
        return (items, keys)
    }

    /// The open items a notification names, with their devices' keys.
    public func outboundItems(_ ranges: [OutboundNotification.Range]) async throws -> (items: [OutboundItem], keys: [PIN: SymmetricKey]) {
        var items: [OutboundItem] = []
        var keys: [PIN: SymmetricKey] = [:]
        let pins = ranges.map { Int64($0.pin.value) }, firsts = ranges.map { Int64($0.first) }, lasts = ranges.map { Int64($0.last) }
        for try await (p, seq, pushID, subject, body, expires, key) in try await client.query("""
            SELECT o.pin, o.seq, o.push_id, o.subject, o.body, o.expires_at, d.master_key
            FROM unnest(\(pins)::bigint[], \(firsts)::bigint[], \(lasts)::bigint[]) AS r(pin, first, last)
            JOIN outbound o ON o.pin = r.pin AND o.seq BETWEEN r.first AND r.last
            JOIN devices d ON d.pin = o.pin
            WHERE o.state IN ('queued', 'sent') AND d.status = 'active'
            ORDER BY o.pin, o.seq
            """, logger: logger).decode((Int64, Int64, UUID, String, String, Date, String).self) {
            let pin = PIN(UInt32(p))
            items.append(OutboundItem(pin: pin, seq: UInt64(seq), pushID: pushID, subject: subject, body: body, expiresAt: expires))
            keys[pin] = SymmetricKey(base64: key)
        }
        return (items, keys)
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
        try await fenced(pair, node: node, epoch: epoch) { conn in
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

    /// Each device's copy of a push; empty if the id is unknown.
    public func pushStatus(_ pushID: UUID) async throws -> [PushItemStatus] {
        var items: [PushItemStatus] = []
        for try await (p, seq, state) in try await client.query(
            "SELECT pin, seq, state FROM outbound WHERE push_id = \(pushID) ORDER BY pin", logger: logger
        ).decode((Int64, Int64, String).self) {
            items.append(PushItemStatus(pin: PIN(UInt32(p)).description, seq: seq, state: state))
        }
        return items
    }
}
