import BrambleAPI
import BrambleCore
@preconcurrency import Crypto
import Foundation
import PostgresNIO

/// A mailbox the Messaging Agent watches (a user with an active device) and its watermark.
public struct WatchedMailbox: Sendable, Equatable {
    public var userID: Int64
    public var email: String
    /// Nil until the mailbox was first reached.
    public var uidValidity: UInt64?
    public var lastUID: UInt64
    /// When a check last reached the mailbox.
    public var checkedAt: Date?
    /// When the user's first active device was activated.
    public var activeSince: Date
}

/// A mail read from a mailbox, ready to enqueue: the item the device gets (its body is the
/// first chunk of `text`), and the text (up to the per-message cap) that More continues.
public struct FetchedMail: Sendable {
    public var uid: UInt64
    public var item: MailItem
    public var text: String
    /// Whether it was read (\Seen) when fetched; nil: not known.
    public var seen: Bool? = nil
}

/// A device request waiting to be acted on.
public struct PendingRequest: Sendable, Equatable {
    public var pin: PIN
    public var ref: UInt64
    public var request: DeviceRequest
}

extension ConfigStore {
    /// Mail items and More chunks stay queued for a week, then expire.
    static let mailExpirySeconds = 7 * 24 * 3600

    /// Every user with an active device, with the watermark of their INBOX.
    public func watchedMailboxes() async throws -> [WatchedMailbox] {
        var out: [WatchedMailbox] = []
        for try await (id, email, validity, last, checked, since) in try await client.query("""
            SELECT u.id, u.email, m.uid_validity, COALESCE(m.last_uid, 0), m.checked_at, a.since FROM users u
            JOIN (SELECT user_id, min(created_at) AS since FROM devices WHERE status = 'active' GROUP BY user_id) a ON a.user_id = u.id
            LEFT JOIN mailboxes m ON m.user_id = u.id
            ORDER BY u.id
            """, logger: logger).decode((Int64, String, Int64?, Int64, Date?, Date).self) {
            out.append(WatchedMailbox(userID: id, email: email, uidValidity: validity.map { UInt64($0) }, lastUID: UInt64(last),
                                      checkedAt: checked, activeSince: since))
        }
        return out
    }

    /// Enqueues `mails` for every active device of the mailbox's user and advances its
    /// watermark to (`uidValidity`, `lastUID`), in one transaction fenced by `epoch`, if
    /// the stored watermark is still `expected` (else nothing changes and it returns nil:
    /// someone else moved it). A mail whose Message-ID a device already has is not
    /// enqueued for it again. Returns the items and keys for the Dispatcher.
    public func commitMail(_ mailbox: WatchedMailbox, mails: [FetchedMail], uidValidity: UInt64, lastUID: UInt64,
                           pair: String, node: String, epoch: UInt64, origin: String) async throws -> CommittedPushes? {
        try await fenced(pair, node: node, epoch: epoch) { [logger] conn in
            try await conn.query("INSERT INTO mailboxes (user_id) VALUES (\(mailbox.userID)) ON CONFLICT DO NOTHING", logger: logger)
            var stored: (Int64?, Int64)?
            for try await row in try await conn.query(
                "SELECT uid_validity, last_uid FROM mailboxes WHERE user_id = \(mailbox.userID) FOR UPDATE", logger: logger
            ).decode((Int64?, Int64).self) { stored = row }
            guard let stored, stored.0.map({ UInt64($0) }) == mailbox.uidValidity, UInt64(stored.1) == mailbox.lastUID else { return nil }

            var keys: [PIN: SymmetricKey] = [:]
            for try await (p, key) in try await conn.query("""
                SELECT pin, master_key FROM devices WHERE user_id = \(mailbox.userID) AND status = 'active' ORDER BY pin FOR UPDATE
                """, logger: logger).decode((Int64, String).self) { keys[PIN(UInt32(p))] = masterKey(key, pin: PIN(UInt32(p))) }
            // The filter rules as they are now: a mail they do not forward is passed over
            // (the watermark moves past it all the same), one they mark goes out marked.
            var rules: [MailFilterRule] = []
            for try await row in try await conn.query(Self.filterSelect, logger: logger).decode(FilterRow.self) {
                if let rule = Self.rule(row) { rules.append(rule) }
            }
            var forwarded: [FetchedMail] = []
            for var mail in mails {
                switch MailFilterRule.decide(rules, mail.item) {
                case .doNotForward: continue
                case .forwardHighPriority: mail.item.highPriority = true
                case .forward: break
                }
                forwarded.append(mail)
            }
            // Which device gets which mail: each Message-ID once per device.
            let ids = forwarded.map(\.item.messageID)
            var had: Set<String> = []
            for try await (p, id) in try await conn.query("""
                SELECT pin, message_id FROM mail_items WHERE pin = ANY(\(keys.keys.map { Int64($0.value) })) AND message_id = ANY(\(ids))
                """, logger: logger).decode((Int64, String).self) { had.insert("\(p) \(id)") }
            var targets: [(pin: PIN, mail: FetchedMail)] = []
            var seen: Set<String> = []
            for pin in keys.keys.sorted() {
                for mail in forwarded where !had.contains("\(pin.value) \(mail.item.messageID)") && seen.insert("\(pin.value) \(mail.item.messageID)").inserted {
                    targets.append((pin, mail))
                }
            }
            var items: [OutboundItem] = []
            if !targets.isEmpty {
                let counts = Dictionary(grouping: targets, by: \.pin).mapValues(\.count)
                var next = try await reserveSequences(counts, conn)
                let now = Date()
                let expires = now.addingTimeInterval(TimeInterval(Self.mailExpirySeconds))
                for (pin, mail) in targets {
                    items.append(OutboundItem(pin: pin, seq: next[pin]!, pushID: UUID(), subject: mail.item.subject, body: "",
                                              expiresAt: expires, service: .mail, payload: mail.item.encoded()))
                    next[pin]! += 1
                }
                try await insertOutbound(items.map { ($0, Self.mailExpirySeconds) }, conn)
                try await conn.query("""
                    INSERT INTO mail_items (pin, message_id, user_id, uid_validity, uid, text, sent_bytes)
                    SELECT t.pin, t.id, \(mailbox.userID), \(Int64(uidValidity)), t.uid, t.text, t.sent
                    FROM unnest(\(targets.map { Int64($0.pin.value) })::bigint[], \(targets.map(\.mail.item.messageID))::text[],
                                \(targets.map { Int64($0.mail.uid) })::bigint[], \(targets.map(\.mail.text))::text[],
                                \(targets.map { Int64($0.mail.item.body.utf8.count) })::bigint[]) AS t(pin, id, uid, text, sent)
                    """, logger: logger)
                let first = Dictionary(uniqueKeysWithValues: counts.keys.map { pin in (pin, next[pin]! - UInt64(counts[pin]!)) })
                _ = try await notifyOutbound(counts: counts, first: first, origin: origin, conn)
            }
            // Reconciliation tracks the state of every mail a device now has.
            let tracked = targets.map(\.mail)
            if !tracked.isEmpty {
                try await conn.query("""
                    INSERT INTO mailbox_messages (user_id, message_id, folder, uid_validity, uid, seen)
                    SELECT \(mailbox.userID), t.id, 'INBOX', \(Int64(uidValidity)), t.uid, CASE t.seen WHEN 1 THEN true WHEN 0 THEN false END
                    FROM unnest(\(tracked.map(\.item.messageID))::text[], \(tracked.map { Int64($0.uid) })::bigint[], \(tracked.map { Self.tristate($0.seen) })::smallint[])
                         AS t(id, uid, seen)
                    ON CONFLICT DO NOTHING
                    """, logger: logger)
            }
            let last = mails.last
            try await conn.query("""
                UPDATE mailboxes SET uid_validity = \(Int64(uidValidity)), last_uid = \(Int64(lastUID)), checked_at = now(),
                       last_mail_at = CASE WHEN \(last != nil) THEN now() ELSE last_mail_at END,
                       last_message_id = COALESCE(\(last?.item.messageID), last_message_id),
                       last_error = NULL, error_at = NULL
                WHERE user_id = \(mailbox.userID)
                """, logger: logger)
            return CommittedPushes(outcomes: [], keys: keys.filter { pin, _ in items.contains { $0.pin == pin } }, items: items)
        }
    }

    /// Records a check that reached nothing new (`error` nil) or failed (`error` says why).
    public func recordMailboxCheck(_ mailbox: WatchedMailbox, error: String?, pair: String, node: String, epoch: UInt64) async throws {
        _ = try await fenced(pair, node: node, epoch: epoch) { [logger] conn in
            if let error {
                try await conn.query("""
                    INSERT INTO mailboxes (user_id, last_error, error_at) VALUES (\(mailbox.userID), \(error), now())
                    ON CONFLICT (user_id) DO UPDATE SET last_error = EXCLUDED.last_error, error_at = now()
                    """, logger: logger)
            } else {
                try await conn.query("""
                    INSERT INTO mailboxes (user_id, checked_at) VALUES (\(mailbox.userID), now())
                    ON CONFLICT (user_id) DO UPDATE SET checked_at = now(), last_error = NULL, error_at = NULL
                    """, logger: logger)
            }
        }
    }

    /// The Message-IDs of mail `userID`'s devices already have (a UIDVALIDITY change is
    /// resolved against them).
    public func deliveredMessageIDs(userID: Int64, _ ids: [String]) async throws -> Set<String> {
        var out: Set<String> = []
        for try await id in try await client.query("""
            SELECT DISTINCT message_id FROM mail_items WHERE user_id = \(userID) AND message_id = ANY(\(ids))
            """, logger: logger).decode(String.self) { out.insert(id) }
        return out
    }

    // MARK: Device requests

    /// A device may have at most this many requests waiting to be acted on; more are not
    /// recorded (nor acknowledged: the device retries them later).
    public static let maxPendingRequestsPerDevice = 100

    /// Records device requests under (PIN, ref), fenced by `epoch`. Returns the refs
    /// recorded before (repeats: a retry, or a replay), which must not act again, and
    /// those not recorded (the device has too many waiting), which must not be acknowledged.
    public func recordRequests(_ requests: [PendingRequest], pair: String, node: String, epoch: UInt64)
        async throws -> (repeats: Set<PendingRequest.Key>, refused: Set<PendingRequest.Key>) {
        guard !requests.isEmpty else { return ([], []) }
        return try await fenced(pair, node: node, epoch: epoch) { [logger] conn in
            let wanted = Set(requests.map(\.key))
            var existing: Set<PendingRequest.Key> = []
            var pending: [PIN: Int] = [:]
            let pins = Array(Set(requests.map { Int64($0.pin.value) }))
            // At or below a device's floor: answered long ago and pruned, so a repeat (a replay).
            for try await (p, floor) in try await conn.query(
                "SELECT pin, request_floor FROM devices WHERE pin = ANY(\(pins)) AND request_floor > 0", logger: logger
            ).decode((Int64, Int64).self) {
                for r in requests where Int64(r.pin.value) == p && Int64(r.ref) <= floor { existing.insert(r.key) }
            }
            for try await (p, ref, state) in try await conn.query("""
                SELECT pin, ref, state FROM device_requests
                WHERE pin = ANY(\(pins)) AND (state = 'pending' OR ref = ANY(\(requests.map { Int64($0.ref) })))
                """, logger: logger).decode((Int64, Int64, String).self) {
                let pin = PIN(UInt32(p))
                let key = PendingRequest.Key(pin: pin, ref: UInt64(ref))
                if wanted.contains(key) { existing.insert(key) }
                if state == "pending" { pending[pin, default: 0] += 1 }
            }
            var fresh: [PendingRequest] = []
            var refused: Set<PendingRequest.Key> = []
            for r in requests where !existing.contains(r.key) && !fresh.contains(where: { $0.key == r.key }) {
                if pending[r.pin, default: 0] >= Self.maxPendingRequestsPerDevice { refused.insert(r.key); continue }
                pending[r.pin, default: 0] += 1
                fresh.append(r)
            }
            if !fresh.isEmpty {
                // A More keeps its old form (no payload); everything else is recorded whole.
                try await conn.query("""
                    INSERT INTO device_requests (pin, ref, kind, message_id, payload)
                    SELECT t.pin, t.ref, t.kind, t.id, NULLIF(t.payload, ''::bytea)
                    FROM unnest(\(fresh.map { Int64($0.pin.value) })::bigint[], \(fresh.map { Int64($0.ref) })::bigint[],
                                \(fresh.map { Int16($0.request.kind.rawValue) })::smallint[], \(fresh.map { $0.request.messageID ?? "" })::text[],
                                \(fresh.map { ByteBuffer(bytes: $0.request.kind == .more ? [] : storedForm($0)) })::bytea[])
                         AS t(pin, ref, kind, id, payload)
                    ON CONFLICT DO NOTHING
                    """, logger: logger)
                // A mail to send gets its row, and its Message-ID, in the same transaction.
                let sends = fresh.filter(\.request.sendsMail)
                if !sends.isEmpty {
                    try await conn.query("""
                        INSERT INTO outgoing_mail (pin, ref, user_id, message_id)
                        SELECT t.pin, t.ref, d.user_id, '<' || t.local || '@' || split_part(u.email, '@', 2) || '>'
                        FROM unnest(\(sends.map { Int64($0.pin.value) })::bigint[], \(sends.map { Int64($0.ref) })::bigint[],
                                    \(sends.map { OutgoingMessageID.localPart(pin: $0.pin, ref: $0.ref) })::text[]) AS t(pin, ref, local)
                        JOIN devices d ON d.pin = t.pin JOIN users u ON u.id = d.user_id
                        ON CONFLICT DO NOTHING
                        """, logger: logger)
                }
            }
            return (existing, refused)
        }
    }

    /// What is recorded of a request: the request as sent, but an IM login's password
    /// sealed under the key-encryption key.
    func storedForm(_ r: PendingRequest) -> [UInt8] {
        guard case .imLogin(let jid, .password(let password)) = r.request else { return r.request.encoded() }
        let sealed = vault.sealSecret(Array(password.utf8), purpose: .imPassword, pin: r.pin)
        return DeviceRequest.imLogin(jid: jid, secret: .sealed(sealed)).encoded()
    }

    /// Forgets mail text older than `mailDays` and requests answered more than
    /// `requestDays` ago (a few thousand rows at a time).
    public func pruneMail(mailDays: Int, requestDays: Int) async throws {
        try await client.query("""
            DELETE FROM mail_items WHERE (pin, message_id) IN (
                SELECT pin, message_id FROM mail_items WHERE created_at < now() - \(mailDays) * interval '1 day' LIMIT 5000)
            """, logger: logger)
        // Reconciliation forgets the state of mail no device has any more.
        try await client.query("""
            DELETE FROM mailbox_messages WHERE (user_id, message_id) IN (
                SELECT m.user_id, m.message_id FROM mailbox_messages m
                WHERE m.updated_at < now() - \(mailDays) * interval '1 day'
                  AND NOT EXISTS (SELECT 1 FROM mail_items i WHERE i.user_id = m.user_id AND i.message_id = m.message_id) LIMIT 5000)
            """, logger: logger)
        // Each device's floor rises to the highest number forgotten, in the same statement.
        try await client.query("""
            WITH gone AS (
                DELETE FROM device_requests WHERE (pin, ref) IN (
                    SELECT pin, ref FROM device_requests WHERE state <> 'pending' AND done_at < now() - \(requestDays) * interval '1 day' LIMIT 5000)
                RETURNING pin, ref)
            UPDATE devices d SET request_floor = greatest(d.request_floor, g.top)
            FROM (SELECT pin, max(ref) AS top FROM gone GROUP BY pin) g WHERE d.pin = g.pin
            """, logger: logger)
        // An activation run's session id is kept (a replay is refused) while the password it
        // was made with could still be valid: at most 30 days, and a day to spare.
        try await client.query("""
            DELETE FROM activation_sessions WHERE session_id IN (
                SELECT session_id FROM activation_sessions
                WHERE created_at < now() - \(NewActivation.maxExpirySeconds + 86_400) * interval '1 second' LIMIT 5000)
            """, logger: logger)
    }

    /// Requests recorded and not yet answered (More, reconciliation, folders), oldest
    /// first, each device's in ref order. (Mail to send is the outgoing queue's:
    /// `openOutgoingMail`.)
    public func pendingRequests(limit: Int = 500) async throws -> [PendingRequest] {
        var out: [PendingRequest] = []
        let sends = ([DeviceRequest.Kind.send, .reply, .forward] + DeviceRequest.Kind.imKinds + DeviceRequest.Kind.policyKinds).map { Int16($0.rawValue) }
        for try await (p, ref, id, payload) in try await client.query("""
            SELECT pin, ref, message_id, payload FROM device_requests WHERE state = 'pending' AND kind <> ALL(\(sends))
            ORDER BY min(received_at) OVER (PARTITION BY pin), pin, ref LIMIT \(limit)
            """, logger: logger).decode((Int64, Int64, String, ByteBuffer?).self) {
            let request: DeviceRequest
            if let payload {
                guard let decoded = try? DeviceRequest.decodeStored(Array(buffer: payload)) else {
                    logger.error("a device request cannot be read; left as it is", metadata: ["device.pin": "\(PIN(UInt32(p)))", "request.ref": "\(ref)"])
                    continue
                }
                request = decoded
            } else {
                request = .more(messageID: id)
            }
            out.append(PendingRequest(pin: PIN(UInt32(p)), ref: UInt64(ref), request: request))
        }
        return out
    }

    /// Acts on a More request once: the next `chunkBytes` of the mail's stored text, as a
    /// `more` item for the device, and the request marked done, in one transaction fenced
    /// by `epoch`. A request for a mail the device never got is marked failed. Returns
    /// what the Dispatcher sends (nothing if the request was acted on already).
    public func answerMore(_ request: PendingRequest, chunkBytes: Int, pair: String, node: String, epoch: UInt64,
                           origin: String) async throws -> CommittedPushes {
        try await fenced(pair, node: node, epoch: epoch) { [logger] conn in
            let pin = Int64(request.pin.value)
            var pending = false
            for try await _ in try await conn.query("""
                SELECT 1 FROM device_requests WHERE pin = \(pin) AND ref = \(Int64(request.ref)) AND state = 'pending' FOR UPDATE
                """, logger: logger) { pending = true }
            guard pending else { return CommittedPushes(outcomes: [], keys: [:], items: []) }
            var mail: (String, Int64, String)?
            for try await row in try await conn.query("""
                SELECT m.text, m.sent_bytes, d.master_key FROM mail_items m JOIN devices d ON d.pin = m.pin
                WHERE m.pin = \(pin) AND m.message_id = \(request.messageID) AND d.status = 'active' FOR UPDATE OF m, d
                """, logger: logger).decode((String, Int64, String).self) { mail = row }
            guard let (text, sent, key) = mail else {
                try await conn.query("""
                    UPDATE device_requests SET state = 'failed', detail = 'no such mail on this device', done_at = now()
                    WHERE pin = \(pin) AND ref = \(Int64(request.ref))
                    """, logger: logger)
                return CommittedPushes(outcomes: [], keys: [:], items: [])
            }
            let chunk = MailText.chunk(text, offset: Int(sent), maxBytes: chunkBytes)
            let first = try await reserveSequences([request.pin: 1], conn)[request.pin]!
            let more = MoreChunk(messageID: request.messageID, offset: UInt64(sent), body: chunk.body, moreAvailable: chunk.moreAvailable)
            let item = OutboundItem(pin: request.pin, seq: first, pushID: UUID(), subject: "", body: "",
                                    expiresAt: Date().addingTimeInterval(TimeInterval(Self.mailExpirySeconds)),
                                    service: .more, payload: more.encoded())
            try await insertOutbound([(item, Self.mailExpirySeconds)], conn)
            try await conn.query("""
                UPDATE mail_items SET sent_bytes = \(Int64(chunk.end)) WHERE pin = \(pin) AND message_id = \(request.messageID)
                """, logger: logger)
            try await conn.query("""
                UPDATE device_requests SET state = 'done', done_at = now() WHERE pin = \(pin) AND ref = \(Int64(request.ref))
                """, logger: logger)
            _ = try await notifyOutbound(counts: [request.pin: 1], first: [request.pin: first], origin: origin, conn)
            return CommittedPushes(outcomes: [], keys: masterKey(key, pin: request.pin).map { [request.pin: $0] } ?? [:], items: [item])
        }
    }
}

extension PendingRequest {
    public struct Key: Hashable, Sendable {
        public var pin: PIN
        public var ref: UInt64
    }
    public var key: Key { Key(pin: pin, ref: ref) }
    var messageID: String { request.messageID ?? "" }
}

// MARK: Filter rules

extension ConfigStore {
    typealias FilterRow = (Int64, Int32, String, String, String)
    static let filterSelect: PostgresQuery = "SELECT id, position, field, contains, action FROM mail_filters ORDER BY position, id"

    static func rule(_ row: FilterRow) -> MailFilterRule? {
        guard let field = MailFilterRule.Field(rawValue: row.2), let action = MailFilterRule.Action(rawValue: row.4) else { return nil }
        return MailFilterRule(id: row.0, position: Int(row.1), field: field, contains: row.3, action: action)
    }

    public func filters() async throws -> [MailFilterRule] {
        var out: [MailFilterRule] = []
        for try await row in try await client.query(Self.filterSelect, logger: logger).decode(FilterRow.self) {
            if let rule = Self.rule(row) { out.append(rule) }
        }
        return out
    }

    /// Adds a rule at `position` (1-based; nil or past the end: last), moving the rules
    /// from there on down one place. One transaction, serialized by a lock on the table.
    public func addFilter(field: MailFilterRule.Field, contains: String, action: MailFilterRule.Action, position: Int?) async throws -> MailFilterRule {
        try await client.withTransaction(logger: logger) { [logger] conn in
            try await conn.query("LOCK TABLE mail_filters IN SHARE ROW EXCLUSIVE MODE", logger: logger)
            var count = 0
            for try await n in try await conn.query("SELECT count(*) FROM mail_filters", logger: logger).decode(Int64.self) { count = Int(n) }
            guard count < MailFilterRule.maxRules else { throw StoreError.conflict("there are \(count) filter rules already, the most there can be") }
            let place = min(max(position ?? count + 1, 1), count + 1)
            try await conn.query("UPDATE mail_filters SET position = position + 1 WHERE position >= \(place)", logger: logger)
            var id: Int64 = 0
            for try await n in try await conn.query("""
                INSERT INTO mail_filters (position, field, contains, action) VALUES (\(place), \(field.rawValue), \(contains), \(action.rawValue))
                RETURNING id
                """, logger: logger).decode(Int64.self) { id = n }
            return MailFilterRule(id: id, position: place, field: field, contains: contains, action: action)
        }
    }

    /// Removes a rule and closes the gap; false if there is no such rule.
    public func removeFilter(id: Int64) async throws -> Bool {
        try await client.withTransaction(logger: logger) { [logger] conn in
            try await conn.query("LOCK TABLE mail_filters IN SHARE ROW EXCLUSIVE MODE", logger: logger)
            var position: Int32?
            for try await p in try await conn.query("DELETE FROM mail_filters WHERE id = \(id) RETURNING position", logger: logger)
                .decode(Int32.self) { position = p }
            guard let position else { return false }
            try await conn.query("UPDATE mail_filters SET position = position - 1 WHERE position > \(position)", logger: logger)
            return true
        }
    }

    /// Moves a rule to `position` (clamped to the list); nil if there is no such rule.
    public func moveFilter(id: Int64, to position: Int) async throws -> MailFilterRule? {
        try await client.withTransaction(logger: logger) { [logger] conn in
            try await conn.query("LOCK TABLE mail_filters IN SHARE ROW EXCLUSIVE MODE", logger: logger)
            var rows: [FilterRow] = []
            for try await row in try await conn.query(Self.filterSelect, logger: logger).decode(FilterRow.self) { rows.append(row) }
            guard let from = rows.firstIndex(where: { $0.0 == id }) else { return nil }
            let row = rows.remove(at: from)
            let to = min(max(position, 1), rows.count + 1)
            rows.insert(row, at: to - 1)
            let ids = rows.map(\.0), positions = rows.indices.map { Int32($0 + 1) }
            try await conn.query("""
                UPDATE mail_filters f SET position = t.position FROM unnest(\(ids)::bigint[], \(positions)::int[]) AS t(id, position)
                WHERE f.id = t.id AND f.position <> t.position
                """, logger: logger)
            return Self.rule(row).map { var r = $0; r.position = to; return r }
        }
    }
}
