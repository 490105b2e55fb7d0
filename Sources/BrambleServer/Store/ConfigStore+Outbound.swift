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
    public func commitPushes(_ requests: [PushRequest]) async throws -> (outcomes: [PushOutcome], keys: [PIN: SymmetricKey]) {
        var emails: [String] = []
        var pins: [Int64] = []
        for r in requests {
            switch r.to {
            case .email(let e): emails.append(e)
            case .pin(let p): pins.append(Int64(p.value))
            }
        }
        return try await client.withTransaction(logger: logger) { conn in
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

            let countPins = counts.keys.sorted().map { Int64($0.value) }
            let countValues = counts.keys.sorted().map { counts[$0]! }
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
            return (outcomes, keys)
        }
    }

    /// Every item not yet acknowledged or expired, in (PIN, sequence) order, and the keys
    /// of the devices they belong to: what a Dispatcher needs when it starts serving.
    public func openItems() async throws -> (items: [OutboundItem], keys: [PIN: SymmetricKey]) {
        var keys: [PIN: SymmetricKey] = [:]
        for try await (pinValue, key) in try await client.query(
            "SELECT pin, master_key FROM devices WHERE status = 'active'", logger: logger
        ).decode((Int64, String).self) {
            keys[PIN(UInt32(pinValue))] = SymmetricKey(base64: key)
        }
        var items: [OutboundItem] = []
        for try await (p, seq, pushID, subject, body, expires) in try await client.query("""
            SELECT pin, seq, push_id, subject, body, expires_at FROM outbound
            WHERE state IN ('queued', 'sent') ORDER BY pin, seq
            """, logger: logger).decode((Int64, Int64, UUID, String, String, Date).self) {
            items.append(OutboundItem(pin: PIN(UInt32(p)), seq: UInt64(seq), pushID: pushID, subject: subject, body: body, expiresAt: expires))
        }
        return (items, keys)
    }

    /// Records delivery transitions in one transaction; each only moves forward.
    public func recordDelivery(sent: [(PIN, UInt64)], acked: [(PIN, UInt64)], expired: [(PIN, UInt64)]) async throws {
        func columns(_ pairs: [(PIN, UInt64)]) -> ([Int64], [Int64]) {
            (pairs.map { Int64($0.0.value) }, pairs.map { Int64($0.1) })
        }
        try await client.withTransaction(logger: logger) { conn in
            if !sent.isEmpty {
                let (p, s) = columns(sent)
                try await conn.query("""
                    UPDATE outbound o SET state = 'sent', sent_at = now()
                    FROM unnest(\(p)::bigint[], \(s)::bigint[]) AS t(pin, seq)
                    WHERE o.pin = t.pin AND o.seq = t.seq AND o.state = 'queued'
                    """, logger: logger)
            }
            if !acked.isEmpty {
                let (p, s) = columns(acked)
                try await conn.query("""
                    UPDATE outbound o SET state = 'acked', acked_at = now()
                    FROM unnest(\(p)::bigint[], \(s)::bigint[]) AS t(pin, seq)
                    WHERE o.pin = t.pin AND o.seq = t.seq AND o.state IN ('queued', 'sent')
                    """, logger: logger)
            }
            if !expired.isEmpty {
                let (p, s) = columns(expired)
                try await conn.query("""
                    UPDATE outbound o SET state = 'expired'
                    FROM unnest(\(p)::bigint[], \(s)::bigint[]) AS t(pin, seq)
                    WHERE o.pin = t.pin AND o.seq = t.seq AND o.state IN ('queued', 'sent')
                    """, logger: logger)
            }
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
