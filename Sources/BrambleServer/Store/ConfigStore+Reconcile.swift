import BrambleCore
@preconcurrency import Crypto
import Foundation
import PostgresNIO

/// A mail a device has, as last seen in the user's mailbox (`mailbox_messages`).
public struct TrackedMessage: Sendable, Equatable {
    public var messageID: String
    /// "" once expunged.
    public var folder: String
    public var uidValidity: UInt64
    public var uid: UInt64
    /// nil: not known yet (a mail tracked before migration 11).
    public var seen: Bool?
    /// Expunged, or in the Trash.
    public var deleted: Bool

    public init(messageID: String, folder: String, uidValidity: UInt64, uid: UInt64, seen: Bool?, deleted: Bool) {
        (self.messageID, self.folder, self.uidValidity, self.uid, self.seen, self.deleted) = (messageID, folder, uidValidity, uid, seen, deleted)
    }

    /// What a device is told.
    public var state: MessageState { MessageState(messageID: messageID, read: seen ?? false, deleted: deleted, folder: folder) }

    /// Whether `other` is a state a device must hear of: read, deleted or folder differ
    /// (an unknown read state is adopted silently).
    public func differs(from other: TrackedMessage) -> Bool {
        deleted != other.deleted || folder != other.folder || (seen != nil && other.seen != nil && seen != other.seen)
    }
}

/// One folder's change watermark (CONDSTORE/QRESYNC).
public struct FolderWatermark: Sendable, Equatable {
    public var uidValidity: UInt64
    public var highestModSeq: UInt64
    public init(uidValidity: UInt64, highestModSeq: UInt64) { (self.uidValidity, self.highestModSeq) = (uidValidity, highestModSeq) }
}

/// What a check of a mailbox's changes starts from.
public struct ReconcileSnapshot: Sendable {
    public var reconciliation: Bool
    /// Bumped by every change recorded for the user: a check commits only if it has not moved.
    public var stateVersion: Int64
    public var watermarks: [String: FolderWatermark]
    public var tracked: [TrackedMessage]
}

/// What a device's read/unread/delete/file request is about.
public struct DeviceRequestContext: Sendable {
    public var userID: Int64
    public var email: String
    public var reconciliation: Bool
    public var tracked: TrackedMessage?
}

extension ConfigStore {
    /// The most tracked mails one check looks at (the newest).
    static let maxTrackedPerCheck = 2000

    typealias TrackedRow = (String, String, Int64, Int64, Bool?, Bool)
    static func tracked(_ r: TrackedRow) -> TrackedMessage {
        TrackedMessage(messageID: r.0, folder: r.1, uidValidity: UInt64(r.2), uid: UInt64(r.3), seen: r.4, deleted: r.5)
    }

    /// Turns reconciliation on or off for a user; false if there is no such user.
    public func setReconciliation(email: String, _ on: Bool) async throws -> Bool {
        for try await _ in try await client.query("UPDATE users SET reconciliation = \(on) WHERE email = \(email) RETURNING id", logger: logger) {
            return true
        }
        return false
    }

    public func reconcileSnapshot(userID: Int64) async throws -> ReconcileSnapshot? {
        var user: (Bool, Int64)?
        for try await row in try await client.query("SELECT reconciliation, state_version FROM users WHERE id = \(userID)", logger: logger)
            .decode((Bool, Int64).self) { user = row }
        guard let user else { return nil }
        var watermarks: [String: FolderWatermark] = [:]
        for try await (folder, v, m) in try await client.query(
            "SELECT folder, uid_validity, highest_modseq FROM folder_watermarks WHERE user_id = \(userID)", logger: logger
        ).decode((String, Int64, Int64).self) { watermarks[folder] = FolderWatermark(uidValidity: UInt64(v), highestModSeq: UInt64(m)) }
        var tracked: [TrackedMessage] = []
        for try await row in try await client.query("""
            SELECT message_id, folder, uid_validity, uid, seen, deleted FROM mailbox_messages
            WHERE user_id = \(userID) AND folder <> '' ORDER BY updated_at DESC LIMIT \(Self.maxTrackedPerCheck)
            """, logger: logger).decode(TrackedRow.self) { tracked.append(Self.tracked(row)) }
        return ReconcileSnapshot(reconciliation: user.0, stateVersion: user.1, watermarks: watermarks, tracked: tracked)
    }

    /// The user of a device's request, and where the mail is as last seen (else where the
    /// device's copy came from, in the INBOX).
    public func requestContext(_ request: PendingRequest) async throws -> DeviceRequestContext? {
        var user: (Int64, String, Bool)?
        for try await row in try await client.query("""
            SELECT u.id, u.email, u.reconciliation FROM devices d JOIN users u ON u.id = d.user_id WHERE d.pin = \(Int64(request.pin.value))
            """, logger: logger).decode((Int64, String, Bool).self) { user = row }
        guard let user else { return nil }
        var context = DeviceRequestContext(userID: user.0, email: user.1, reconciliation: user.2)
        guard let id = request.request.messageID else { return context }
        for try await row in try await client.query("""
            SELECT message_id, folder, uid_validity, uid, seen, deleted FROM mailbox_messages WHERE user_id = \(user.0) AND message_id = \(id)
            """, logger: logger).decode(TrackedRow.self) { context.tracked = Self.tracked(row) }
        if context.tracked == nil {
            for try await (v, uid) in try await client.query("""
                SELECT uid_validity, uid FROM mail_items WHERE user_id = \(user.0) AND message_id = \(id) ORDER BY created_at DESC LIMIT 1
                """, logger: logger).decode((Int64, Int64).self) {
                context.tracked = TrackedMessage(messageID: id, folder: "INBOX", uidValidity: UInt64(v), uid: UInt64(uid), seen: nil, deleted: false)
            }
        }
        return context
    }

    /// What became of a device's read/unread/delete/file.
    public enum ReconcileResult: Sendable {
        /// Done: the mail's state now (the user's other devices hear it).
        case done(TrackedMessage)
        /// Not done: why, and the mail's true state (the requester hears it), if known.
        case failed(reason: String, state: TrackedMessage?)
    }

    /// Ends a device's read/unread/delete/file request, fenced by `epoch`, if still pending:
    /// done, the mail's row updated and a `state` item for each of the user's other active
    /// devices that have it (none if the row already says so: a check saw the change
    /// first and told every device); failed, a `state` item with the true state for the requester.
    public func finishReconcileRequest(_ request: PendingRequest, userID: Int64, _ result: ReconcileResult,
                                       pair: String, node: String, epoch: UInt64, origin: String) async throws -> CommittedPushes {
        try await fenced(pair, node: node, epoch: epoch) { [logger] conn in
            let (pin, ref) = (Int64(request.pin.value), Int64(request.ref))
            var pending = false
            for try await _ in try await conn.query(
                "SELECT 1 FROM device_requests WHERE pin = \(pin) AND ref = \(ref) AND state = 'pending' FOR UPDATE", logger: logger
            ) { pending = true }
            guard pending else { return CommittedPushes(outcomes: [], keys: [:], items: []) }
            try await conn.query("UPDATE users SET state_version = state_version + 1 WHERE id = \(userID)", logger: logger)
            switch result {
            case .done(let message):
                // A check of the mailbox may have seen the change first (the mail server
                // notifies of the Agent's own changes too) and told the devices already.
                var stored: TrackedMessage?
                for try await row in try await conn.query("""
                    SELECT message_id, folder, uid_validity, uid, seen, deleted FROM mailbox_messages
                    WHERE user_id = \(userID) AND message_id = \(message.messageID) FOR UPDATE
                    """, logger: logger).decode(TrackedRow.self) { stored = Self.tracked(row) }
                let told = stored.map { $0.folder == message.folder && $0.deleted == message.deleted && $0.seen == message.seen } ?? false
                try await Self.upsert([message], userID: userID, conn, logger: logger)
                try await conn.query("UPDATE device_requests SET state = 'done', done_at = now() WHERE pin = \(pin) AND ref = \(ref)", logger: logger)
                if told { return CommittedPushes(outcomes: [], keys: [:], items: []) }
                return try await enqueueStates([message.state], userID: userID, except: request.pin, only: nil, origin: origin, conn)
            case .failed(let reason, let state):
                try await conn.query("""
                    UPDATE device_requests SET state = 'failed', detail = \(reason), done_at = now() WHERE pin = \(pin) AND ref = \(ref)
                    """, logger: logger)
                guard let state else { return CommittedPushes(outcomes: [], keys: [:], items: []) }
                try await Self.upsert([state], userID: userID, conn, logger: logger)
                return try await enqueueStates([state.state], userID: userID, except: nil, only: request.pin, origin: origin, conn)
            }
        }
    }

    /// Fails a request that cannot be acted on (no such user or mail, reconciliation off).
    public func failRequest(_ request: PendingRequest, reason: String, pair: String, node: String, epoch: UInt64) async throws {
        try await fenced(pair, node: node, epoch: epoch) { [logger] conn in
            try await conn.query("""
                UPDATE device_requests SET state = 'failed', detail = \(reason), done_at = now()
                WHERE pin = \(Int64(request.pin.value)) AND ref = \(Int64(request.ref)) AND state = 'pending'
                """, logger: logger)
        }
    }

    /// Answers a `folders` request: the list as a `folders` item, the request done.
    public func answerFolders(_ request: PendingRequest, _ list: FolderList, pair: String, node: String, epoch: UInt64,
                              origin: String) async throws -> CommittedPushes {
        try await fenced(pair, node: node, epoch: epoch) { [logger] conn in
            let (pin, ref) = (Int64(request.pin.value), Int64(request.ref))
            var key: String?
            for try await k in try await conn.query("""
                SELECT d.master_key FROM device_requests r JOIN devices d ON d.pin = r.pin
                WHERE r.pin = \(pin) AND r.ref = \(ref) AND r.state = 'pending' AND d.status = 'active' FOR UPDATE OF r, d
                """, logger: logger).decode(String.self) { key = k }
            guard let key else { return CommittedPushes(outcomes: [], keys: [:], items: []) }
            try await conn.query("UPDATE device_requests SET state = 'done', done_at = now() WHERE pin = \(pin) AND ref = \(ref)", logger: logger)
            let seq = try await reserveSequences([request.pin: 1], conn)[request.pin]!
            let item = OutboundItem(pin: request.pin, seq: seq, pushID: UUID(), subject: "", body: "",
                                    expiresAt: Date().addingTimeInterval(TimeInterval(Self.mailExpirySeconds)), service: .folders, payload: list.encoded())
            try await insertOutbound([(item, Self.mailExpirySeconds)], conn)
            _ = try await notifyOutbound(counts: [request.pin: 1], first: [request.pin: seq], origin: origin, conn)
            return CommittedPushes(outcomes: [], keys: masterKey(key, pin: request.pin).map { [request.pin: $0] } ?? [:], items: [item])
        }
    }

    /// Records what a check of the mailbox's changes found, fenced by `epoch`, if nothing
    /// was recorded for the user since its snapshot (`stateVersion`; else nil: check
    /// again): the folders' new watermarks, the mails' states, and a `state` item for
    /// every active device that has a mail whose state differs from the stored one.
    public func commitReconcile(userID: Int64, stateVersion: Int64, watermarks: [String: FolderWatermark], observed: [TrackedMessage],
                                pair: String, node: String, epoch: UInt64, origin: String) async throws -> CommittedPushes? {
        try await fenced(pair, node: node, epoch: epoch) { [logger] conn in
            var version: Int64?
            for try await v in try await conn.query("SELECT state_version FROM users WHERE id = \(userID) FOR UPDATE", logger: logger)
                .decode(Int64.self) { version = v }
            guard version == stateVersion else { return nil }
            if !watermarks.isEmpty {
                let folders = Array(watermarks.keys)
                try await conn.query("""
                    INSERT INTO folder_watermarks (user_id, folder, uid_validity, highest_modseq)
                    SELECT \(userID), t.folder, t.v, t.m FROM unnest(\(folders)::text[], \(folders.map { Int64(watermarks[$0]!.uidValidity) })::bigint[],
                                                                \(folders.map { Int64(watermarks[$0]!.highestModSeq) })::bigint[]) AS t(folder, v, m)
                    ON CONFLICT (user_id, folder) DO UPDATE SET uid_validity = EXCLUDED.uid_validity, highest_modseq = EXCLUDED.highest_modseq
                    """, logger: logger)
            }
            guard !observed.isEmpty else { return CommittedPushes(outcomes: [], keys: [:], items: []) }
            var stored: [String: TrackedMessage] = [:]
            for try await row in try await conn.query("""
                SELECT message_id, folder, uid_validity, uid, seen, deleted FROM mailbox_messages
                WHERE user_id = \(userID) AND message_id = ANY(\(observed.map(\.messageID)))
                """, logger: logger).decode(TrackedRow.self) { stored[row.0] = Self.tracked(row) }
            var changed: [MessageState] = []
            var rows: [TrackedMessage] = []
            for var message in observed {
                guard let old = stored[message.messageID] else { continue }
                if message.seen == nil { message.seen = old.seen }
                if message != old { rows.append(message) }
                if message.differs(from: old) { changed.append(message.state) }
            }
            try await Self.upsert(rows, userID: userID, conn, logger: logger)
            try await conn.query("UPDATE users SET state_version = state_version + 1 WHERE id = \(userID)", logger: logger)
            return try await enqueueStates(changed, userID: userID, except: nil, only: nil, origin: origin, conn)
        }
    }

    /// A read state as the database batch takes it (an array of optionals does not bind): -1 unknown.
    static func tristate(_ seen: Bool?) -> Int16 { seen.map { $0 ? 1 : 0 } ?? -1 }

    static func upsert(_ messages: [TrackedMessage], userID: Int64, _ conn: PostgresConnection, logger: Logger) async throws {
        guard !messages.isEmpty else { return }
        try await conn.query("""
            INSERT INTO mailbox_messages (user_id, message_id, folder, uid_validity, uid, seen, deleted)
            SELECT \(userID), t.id, t.folder, t.v, t.uid, CASE t.seen WHEN 1 THEN true WHEN 0 THEN false END, t.deleted
            FROM unnest(\(messages.map(\.messageID))::text[], \(messages.map(\.folder))::text[], \(messages.map { Int64($0.uidValidity) })::bigint[],
                        \(messages.map { Int64($0.uid) })::bigint[], \(messages.map { Self.tristate($0.seen) })::smallint[], \(messages.map(\.deleted))::boolean[])
                 AS t(id, folder, v, uid, seen, deleted)
            ON CONFLICT (user_id, message_id) DO UPDATE SET folder = EXCLUDED.folder, uid_validity = EXCLUDED.uid_validity, uid = EXCLUDED.uid,
                seen = COALESCE(EXCLUDED.seen, mailbox_messages.seen), deleted = EXCLUDED.deleted, updated_at = now()
            """, logger: logger)
    }

    /// A `state` item per state for each of the user's active devices that have the mail
    /// (`except` one, or `only` one).
    func enqueueStates(_ states: [MessageState], userID: Int64, except: PIN?, only: PIN?, origin: String,
                       _ conn: PostgresConnection) async throws -> CommittedPushes {
        guard !states.isEmpty else { return CommittedPushes(outcomes: [], keys: [:], items: []) }
        var keys: [PIN: SymmetricKey] = [:]
        var targets: [(PIN, MessageState)] = []
        let byID = Dictionary(states.map { ($0.messageID, $0) }, uniquingKeysWith: { _, last in last })
        for try await (p, key, id) in try await conn.query("""
            SELECT d.pin, d.master_key, m.message_id FROM devices d JOIN mail_items m ON m.pin = d.pin
            WHERE d.user_id = \(userID) AND d.status = 'active' AND m.message_id = ANY(\(Array(byID.keys)))
            ORDER BY d.pin, m.message_id FOR UPDATE OF d
            """, logger: logger).decode((Int64, String, String).self) {
            let pin = PIN(UInt32(p))
            if pin == except || (only != nil && pin != only) { continue }
            guard let state = byID[id] else { continue }
            if keys[pin] == nil { keys[pin] = masterKey(key, pin: pin) }
            targets.append((pin, state))
        }
        guard !targets.isEmpty else { return CommittedPushes(outcomes: [], keys: [:], items: []) }
        let counts = Dictionary(grouping: targets, by: \.0).mapValues(\.count)
        var next = try await reserveSequences(counts, conn)
        let expires = Date().addingTimeInterval(TimeInterval(Self.mailExpirySeconds))
        var items: [OutboundItem] = []
        for (pin, state) in targets {
            items.append(OutboundItem(pin: pin, seq: next[pin]!, pushID: UUID(), subject: "", body: "", expiresAt: expires,
                                      service: .state, payload: state.encoded()))
            next[pin]! += 1
        }
        try await insertOutbound(items.map { ($0, Self.mailExpirySeconds) }, conn)
        let first = Dictionary(uniqueKeysWithValues: counts.keys.map { pin in (pin, next[pin]! - UInt64(counts[pin]!)) })
        _ = try await notifyOutbound(counts: counts, first: first, origin: origin, conn)
        return CommittedPushes(outcomes: [], keys: keys, items: items)
    }
}
