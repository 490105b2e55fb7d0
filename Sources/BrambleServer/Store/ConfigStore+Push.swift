import BrambleCore
@preconcurrency import Crypto
import Foundation
import PostgresNIO

extension ConfigStore {
    /// A batch's commit: per request its outcome, the master key of every device that got
    /// an item, and the items committed now (not those replayed for a repeated key).
    public struct CommittedPushes: Sendable {
        public var outcomes: [PushOutcome]
        public var keys: [PIN: SymmetricKey]
        public var items: [OutboundItem]
    }

    /// Commits a batch of pushes in one transaction (group commit).
    ///
    /// Device rows are locked in PIN order (no deadlock between two committers), and each
    /// device's `last_seq` advances in the same transaction that inserts its items, so
    /// every device's items carry dense sequence numbers that become visible in order.
    /// A request with an Idempotency-Key already committed (by any node, within 24 h) gets
    /// that commit's outcome and adds nothing. A key another transaction is committing
    /// right now (its advisory lock taken) gets `keyInProgress`, so a retry never waits
    /// behind a stalled first attempt only to answer "not accepted" while that one may still
    /// commit; and the key's unique index serializes whatever slips past, so exactly one
    /// commits.
    ///
    /// The same transaction notifies the pair (`outbound|ORIGIN|PIN:FIRST-LAST,…`), so the
    /// primary learns at commit of items a standby accepted. COMMIT is sent only if `gate`
    /// still allows it (the caller may have given up and answered "not accepted").
    func commitPushes(_ requests: [PushRequest], origin: String, gate: CommitGate) async throws -> CommittedPushes {
        let idempotencyKeys = Array(Set(requests.compactMap(\.idempotencyKey))).sorted()
        return try await database.withPrimaryTransaction(gate: gate, logger: logger) { [logger] conn in
            // A key another transaction holds (perhaps stalled in its COMMIT) must not make
            // this one wait for its locks and then answer "not accepted": it answers
            // "in progress" instead. Locked first, before any row, in one order.
            var busy: [String] = []
            if !idempotencyKeys.isEmpty {
                for try await (key, locked) in try await conn.query("""
                    SELECT k, pg_try_advisory_xact_lock(\(Self.pushKeyLockClass), hashtext(k)) FROM unnest(\(idempotencyKeys)::text[]) AS k
                    """, logger: logger).decode((String, Bool).self) where !locked { busy.append(key) }
            }
            // Those in progress lock no device row (they would wait behind the very
            // transaction holding their key).
            let proceeding = requests.filter { $0.idempotencyKey.map { !busy.contains($0) } ?? true }
            let emails = proceeding.compactMap { if case .email(let e) = $0.to { e } else { nil } }
            let pins = proceeding.compactMap { if case .pin(let p) = $0.to { Int64(p.value) } else { nil } }
            // Keyed by the address's bytes, as the database compares them: a String key
            // would merge two users whose addresses are canonically equivalent.
            var byEmail: [[UInt8]: [PIN]] = [:]
            var keys: [PIN: SymmetricKey] = [:]
            for try await (pinValue, email, key) in try await conn.query("""
                SELECT d.pin, u.email, d.master_key FROM devices d JOIN users u ON u.id = d.user_id
                WHERE d.status = 'active' AND (u.email = ANY(\(emails)) OR d.pin = ANY(\(pins)))
                ORDER BY d.pin FOR UPDATE OF d
                """, logger: logger).decode((Int64, String, String).self) {
                let pin = PIN(UInt32(pinValue))
                // A device whose key does not open is not addressed at all (not accepted
                // for it and then held forever).
                guard let opened = masterKey(key, pin: pin) else { continue }
                byEmail[Array(email.utf8), default: []].append(pin)
                keys[pin] = opened
            }
            var plan = PushBatchPlan(requests: requests) { r in
                if let key = r.idempotencyKey, busy.contains(key) { return [] }
                switch r.to {
                case .email(let e): return byEmail[Array(e.utf8)] ?? []
                case .pin(let p): return keys[p] != nil ? [p] : []
                }
            }
            for key in busy { plan.inProgress(key: key) }
            try await claimKeys(&plan, conn)
            let items = try await insertItems(&plan, conn, origin: origin, gate: gate)
            try await recordOwners(requests, plan.outcomes, conn)
            return CommittedPushes(outcomes: plan.outcomes, keys: keys.filter { pin, _ in items.contains { $0.pin == pin } }, items: items)
        }
    }

    /// Records which push application each new push came from (a replay's owner is
    /// recorded already: keys are per application), so it can read the push's state back.
    private func recordOwners(_ requests: [PushRequest], _ outcomes: [PushOutcome], _ conn: PostgresConnection) async throws {
        let owned = zip(requests, outcomes).compactMap { request, outcome -> (UUID, String)? in
            guard let app = request.pushApp, case .accepted(let pushID, _, replayed: false) = outcome else { return nil }
            return (pushID, app)
        }
        guard !owned.isEmpty else { return }
        try await conn.query("""
            INSERT INTO push_owners (push_id, app) SELECT * FROM unnest(\(owned.map(\.0))::uuid[], \(owned.map(\.1))::text[])
            """, logger: logger)
    }

    /// Records the batch's new Idempotency-Keys; requests whose key was committed before
    /// get that commit's outcome (or `keyReused` for another push under the key).
    private func claimKeys(_ plan: inout PushBatchPlan, _ conn: PostgresConnection) async throws {
        let fresh = plan.keyed
        var claimed: Set<String> = []
        if !fresh.isEmpty {
            for try await key in try await conn.query("""
            INSERT INTO push_keys (key, fingerprint, push_id, devices)
            SELECT * FROM unnest(\(fresh.map(\.key))::text[], \(fresh.map(\.fingerprint))::text[], \(fresh.map(\.pushID))::uuid[],
                                 \(fresh.map { $0.devices.joined(separator: ",") })::text[])
            ON CONFLICT (key) DO NOTHING RETURNING key
            """, logger: logger).decode(String.self) { claimed.insert(key) }
        }
        // Every other key of the batch may have been committed before.
        let taken = plan.keys.filter { !claimed.contains($0) }
        guard !taken.isEmpty else { return }
        for try await (key, fingerprint, pushID, devices) in try await conn.query(
            "SELECT key, fingerprint, push_id, devices FROM push_keys WHERE key = ANY(\(taken))", logger: logger
        ).decode((String, String, UUID, String).self) {
            plan.replay(key: key, fingerprint: fingerprint, pushID: pushID, devices: devices.split(separator: ",").map(String.init))
        }
    }

    /// Gives each new item its device's next sequence number and inserts them.
    private func insertItems(_ plan: inout PushBatchPlan, _ conn: PostgresConnection, origin: String, gate: CommitGate) async throws -> [OutboundItem] {
        let counts = plan.itemCounts
        guard !counts.isEmpty else { return [] }
        let nextSeq = try await reserveSequences(counts, conn)
        let items = plan.items(startingAt: nextSeq, now: Date())
        try await insertOutbound(items, conn)
        gate.notification = try await notifyOutbound(counts: counts, first: nextSeq, origin: origin, conn)
        return items.map(\.item)
    }

    /// Advances each device's `last_seq` by its count of new items (the device rows are
    /// locked already, in PIN order); returns each device's first new sequence number.
    func reserveSequences(_ counts: [PIN: Int], _ conn: PostgresConnection) async throws -> [PIN: UInt64] {
        let pins = counts.keys.sorted()
        var first: [PIN: UInt64] = [:]
        for try await (pinValue, last) in try await conn.query("""
            UPDATE devices d SET last_seq = d.last_seq + c.n
            FROM unnest(\(pins.map { Int64($0.value) })::bigint[], \(pins.map { Int64(counts[$0]!) })::bigint[]) AS c(pin, n)
            WHERE d.pin = c.pin
            RETURNING d.pin, d.last_seq
            """, logger: logger).decode((Int64, Int64).self) {
            let pin = PIN(UInt32(pinValue))
            first[pin] = UInt64(last) - UInt64(counts[pin]!) + 1
        }
        return first
    }

    /// Inserts items of any service (a push's subject and body, or another's payload).
    func insertOutbound(_ items: [(item: OutboundItem, expiresIn: Int)], _ conn: PostgresConnection) async throws {
        guard !items.isEmpty else { return }
        try await conn.query("""
            INSERT INTO outbound (pin, seq, push_id, service, subject, body, payload, expires_at)
            SELECT t.pin, t.seq, t.push_id, t.service, t.subject, t.body, decode(NULLIF(t.payload, ''), 'base64'),
                   now() + t.expires_in * interval '1 second'
            FROM unnest(\(items.map { Int64($0.item.pin.value) })::bigint[], \(items.map { Int64($0.item.seq) })::bigint[],
                        \(items.map(\.item.pushID))::uuid[], \(items.map { Int16($0.item.service.rawValue) })::smallint[],
                        \(items.map(\.item.subject))::text[], \(items.map(\.item.body))::text[],
                        \(items.map { $0.item.payload.map { Data($0).base64EncodedString() } ?? "" })::text[],
                        \(items.map { Int64($0.expiresIn) })::bigint[])
                AS t(pin, seq, push_id, service, subject, body, payload, expires_in)
            """, logger: logger)
    }

    /// Tells the pair, at commit, which sequence numbers each device got; returns the payload.
    func notifyOutbound(counts: [PIN: Int], first: [PIN: UInt64], origin: String, _ conn: PostgresConnection) async throws -> String {
        let ranges = counts.keys.sorted().map { pin in
            OutboundNotification.Range(pin: pin, first: first[pin]!, last: first[pin]! + UInt64(counts[pin]!) - 1)
        }
        let payload = OutboundNotification(origin: origin, ranges: ranges).payload
        try await conn.query("SELECT pg_notify(\(Self.notificationChannel), \(payload))", logger: logger)
        return payload
    }

    /// The advisory lock class of push keys (`pg_try_advisory_xact_lock(class, hashtext(key))`).
    static let pushKeyLockClass: Int32 = 0x7075  // "pu"

    /// Forgets Idempotency-Keys older than the retention (a few thousand at a time).
    func pruneIdempotencyKeys(olderThanHours hours: Int) async throws {
        try await client.query("""
            DELETE FROM push_keys WHERE key IN (
                SELECT key FROM push_keys WHERE created_at < now() - \(hours) * interval '1 hour' LIMIT 5000)
            """, logger: logger)
    }
}
