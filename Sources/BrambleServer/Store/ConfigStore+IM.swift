import BrambleAPI
import BrambleCore
import Crypto
import Foundation
import NIOCore
import PostgresNIO

/// The Collaboration Service's records: the pair's IM limits, the session cache, what
/// each device was shown, and device requests answered. Every write is fenced by the
/// writer's epoch.
extension ConfigStore {
    public struct IMSettings: Sendable, Equatable, Codable {
        public var maxSessions: Int?
        public var idleTimeoutMs: Int?
        public init(maxSessions: Int? = nil, idleTimeoutMs: Int? = nil) { (self.maxSessions, self.idleTimeoutMs) = (maxSessions, idleTimeoutMs) }
    }

    /// A cached session: enough to log it back in without the device.
    public struct CachedIMSession: Sendable {
        public var pin: PIN
        public var jid: String
        public var keys: SCRAMKeys
        public var presence: IMPresence
        public var archiveAfter: String?
        public var since: Date
        public var lastActivity: Date
    }

    /// Who a device's IM login is for, and whether they may.
    public struct IMAccount: Sendable {
        public var email: String
        public var allowed: Bool
    }

    static let imItemExpirySeconds = 7 * 24 * 3600

    public func imSettings() async throws -> IMSettings {
        for try await (max, idle) in try await client.query("SELECT max_sessions, idle_timeout_ms FROM im_settings", logger: logger)
            .decode((Int32?, Int64?).self) {
            return IMSettings(maxSessions: max.map(Int.init), idleTimeoutMs: idle.map(Int.init))
        }
        return IMSettings()
    }

    /// The limits and the cached sessions, for `bramble im`.
    public func imStatus() async throws -> IMStatus {
        let settings = try await imSettings()
        var sessions: [IMStatus.Session] = []
        for try await (p, jid, presence, since, last) in try await client.query(
            "SELECT pin, jid, presence, since, last_activity FROM im_sessions ORDER BY jid, pin", logger: logger
        ).decode((Int64, String, String, Date, Date).self) {
            sessions.append(IMStatus.Session(pin: PIN(UInt32(p)).description, jid: jid, presence: presence, since: since, last_activity: last))
        }
        return IMStatus(max_sessions: settings.maxSessions, idle_timeout_ms: settings.idleTimeoutMs, sessions: sessions)
    }

    /// Sets the pair's limits; nil clears one (no maximum, no idle timeout).
    public func setIMSettings(_ s: IMSettings) async throws {
        try await client.query("""
            UPDATE im_settings SET max_sessions = \(s.maxSessions.map(Int32.init)), idle_timeout_ms = \(s.idleTimeoutMs.map(Int64.init))
            """, logger: logger)
    }

    /// Turns IM on or off for a user; off also ends their cached sessions (the primary's
    /// Collaboration Service closes what it holds at its next sweep). False: no such user.
    public func setUserIM(email: String, on: Bool) async throws -> Bool {
        var found = false
        for try await _ in try await client.query(
            "UPDATE users SET im = \(on) WHERE email = \(Email.canonical(email)) RETURNING id", logger: logger
        ).decode(Int64.self) { found = true }
        return found
    }

    public func imAccount(pin: PIN) async throws -> IMAccount? {
        for try await (email, allowed) in try await client.query("""
            SELECT u.email, u.im FROM devices d JOIN users u ON u.id = d.user_id WHERE d.pin = \(Int64(pin.value)) AND d.status = 'active'
            """, logger: logger).decode((String, Bool).self) { return IMAccount(email: email, allowed: allowed) }
        return nil
    }

    /// Every cached session (of active devices whose user may still use IM), and those
    /// whose keys do not open under this node's KEK (sealed under one since retired).
    public func cachedIMSessions() async throws -> (sessions: [CachedIMSession], unopenable: [PIN]) {
        var out: [CachedIMSession] = []
        var unopenable: [PIN] = []
        for try await (p, jid, sealed, presence, after, since, last) in try await client.query("""
            SELECT s.pin, s.jid, s.scram_keys, s.presence, s.archive_after, s.since, s.last_activity
            FROM im_sessions s JOIN devices d ON d.pin = s.pin JOIN users u ON u.id = d.user_id
            WHERE d.status = 'active' AND u.im
            """, logger: logger).decode((Int64, String, String, String, String?, Date, Date).self) {
            let pin = PIN(UInt32(p))
            guard let bytes = try? vault.openSecret(sealed, purpose: .imSCRAMKeys, pin: pin),
                  let keys = try? JSONDecoder().decode(SCRAMKeys.self, from: Data(bytes)) else {
                unopenable.append(pin)
                continue
            }
            out.append(CachedIMSession(pin: pin, jid: jid, keys: keys, presence: IMPresence(rawValue: presence) ?? .available,
                                       archiveAfter: after, since: since, lastActivity: last))
        }
        return (out, unopenable)
    }

    /// Cached sessions whose device or user no longer allows them (device disabled or
    /// removed, IM turned off): the Collaboration Service ends them.
    public func revokedIMSessions() async throws -> Set<PIN> {
        var revoked: Set<PIN> = []
        for try await p in try await client.query("""
            SELECT s.pin FROM im_sessions s JOIN devices d ON d.pin = s.pin JOIN users u ON u.id = d.user_id
            WHERE d.status <> 'active' OR NOT u.im
            """, logger: logger).decode(Int64.self) { revoked.insert(PIN(UInt32(p))) }
        return revoked
    }

    /// Sessions (other than `pin`'s) and which are idle past `idleMs` (no request from
    /// their device for that long).
    public func imSessionLoad(excluding pin: PIN, idleMs: Int?) async throws -> (pins: [PIN], idle: [PIN]) {
        var pins: [PIN] = []
        var idle: [PIN] = []
        for try await (p, isIdle) in try await client.query("""
            SELECT pin, \(idleMs != nil) AND last_activity < now() - \(Int64(idleMs ?? 0)) * interval '1 millisecond'
            FROM im_sessions WHERE pin <> \(Int64(pin.value))
            """, logger: logger).decode((Int64, Bool).self) {
            pins.append(PIN(UInt32(p)))
            if isIdle { idle.append(PIN(UInt32(p))) }
        }
        return (pins, idle)
    }

    public func imIdleSessions(idleMs: Int) async throws -> [PIN] {
        var out: [PIN] = []
        for try await p in try await client.query("""
            SELECT pin FROM im_sessions WHERE last_activity < now() - \(Int64(idleMs)) * interval '1 millisecond'
            """, logger: logger).decode(Int64.self) { out.append(PIN(UInt32(p))) }
        return out
    }

    /// IM requests recorded and not yet answered, each device's in ref order.
    public func pendingIMRequests(limit: Int = 500) async throws -> [PendingRequest] {
        var out: [PendingRequest] = []
        for try await (p, ref, payload) in try await client.query("""
            SELECT pin, ref, payload FROM device_requests
            WHERE state = 'pending' AND kind = ANY(\(DeviceRequest.Kind.imKinds.map { Int16($0.rawValue) }))
            ORDER BY min(received_at) OVER (PARTITION BY pin), pin, ref LIMIT \(limit)
            """, logger: logger).decode((Int64, Int64, ByteBuffer?).self) {
            guard let payload, let request = try? DeviceRequest.decodeStored(Array(buffer: payload)) else {
                logger.error("an IM request cannot be read; left as it is", metadata: ["device.pin": "\(PIN(UInt32(p)))", "request.ref": "\(ref)"])
                continue
            }
            out.append(PendingRequest(pin: PIN(UInt32(p)), ref: UInt64(ref), request: request))
        }
        return out
    }

    /// An IM login's password, opened from its sealed form.
    public func imPassword(_ sealed: String, pin: PIN) throws -> String {
        String(decoding: try vault.openSecret(sealed, purpose: .imPassword, pin: pin), as: UTF8.self)
    }

    /// What a request's answer changes in the session cache.
    public enum IMCacheChange: Sendable {
        case none
        /// A login: the session and its keys (`archiveAfter`: where its archive stands now).
        case login(jid: String, keys: SCRAMKeys, archiveAfter: String?)
        case presence(IMPresence)
        /// The device was active (a message sent).
        case touch
        case logout
    }

    /// Answers an IM request once: marks it done (or failed, with `failure`), changes the
    /// session cache, and enqueues `items` for the device. Nil if the request was answered
    /// already (by this node or another).
    public func answerIMRequest(_ key: PendingRequest.Key, failure: String?, cache: IMCacheChange,
                                items: [(service: DataFrame.Service, payload: [UInt8])],
                                pair: String, node: String, epoch: UInt64, origin: String) async throws -> CommittedPushes? {
        try await fenced(pair, node: node, epoch: epoch) { [self, logger] conn in
            let (pin, ref) = (Int64(key.pin.value), Int64(key.ref))
            var pending = false
            for try await _ in try await conn.query("""
                SELECT 1 FROM device_requests WHERE pin = \(pin) AND ref = \(ref) AND state = 'pending' FOR UPDATE
                """, logger: logger) { pending = true }
            guard pending else { return nil }
            if let failure {
                try await conn.query("""
                    UPDATE device_requests SET state = 'failed', detail = \(failure), done_at = now() WHERE pin = \(pin) AND ref = \(ref)
                    """, logger: logger)
            } else {
                try await conn.query("UPDATE device_requests SET state = 'done', done_at = now() WHERE pin = \(pin) AND ref = \(ref)", logger: logger)
            }
            // A login's sealed password goes once the login is answered.
            try await conn.query("""
                UPDATE device_requests SET payload = \(ByteBuffer(bytes: DeviceRequest.imLogin(jid: "redacted@redacted", secret: .sealed("")).encoded()))
                WHERE pin = \(pin) AND ref = \(ref) AND kind = \(Int16(DeviceRequest.Kind.imLogin.rawValue))
                """, logger: logger)
            try await applyIMCache(cache, pin: key.pin, conn)
            return try await enqueueDeviceItems(items.map { (key.pin, $0.service, $0.payload) }, origin: origin, conn)
        }
    }

    private func applyIMCache(_ change: IMCacheChange, pin: PIN, _ conn: PostgresConnection) async throws {
        let p = Int64(pin.value)
        switch change {
        case .none: break
        case .login(let jid, let keys, let after):
            let sealed = vault.sealSecret(Array(try JSONEncoder().encode(keys)), purpose: .imSCRAMKeys, pin: pin)
            try await conn.query("""
                INSERT INTO im_sessions (pin, jid, scram_keys, archive_after) VALUES (\(p), \(jid), \(sealed), \(after))
                ON CONFLICT (pin) DO UPDATE SET jid = excluded.jid, scram_keys = excluded.scram_keys,
                    archive_after = CASE WHEN im_sessions.jid = excluded.jid THEN coalesce(im_sessions.archive_after, excluded.archive_after)
                                         ELSE excluded.archive_after END,
                    since = CASE WHEN im_sessions.jid = excluded.jid THEN im_sessions.since ELSE now() END,
                    presence = 'available', last_activity = now()
                """, logger: logger)
        case .presence(let presence):
            try await conn.query("""
                UPDATE im_sessions SET presence = \(presence.rawValue), last_activity = now() WHERE pin = \(p)
                """, logger: logger)
        case .touch:
            try await conn.query("UPDATE im_sessions SET last_activity = now() WHERE pin = \(p)", logger: logger)
        case .logout:
            try await conn.query("DELETE FROM im_sessions WHERE pin = \(p)", logger: logger)
        }
    }

    /// Ends cached sessions the server logged out (idle, the maximum, permission revoked),
    /// telling each device why. Returns what the Dispatcher sends.
    public func endIMSessions(_ ended: [(pin: PIN, jid: String, reason: String)],
                              pair: String, node: String, epoch: UInt64, origin: String) async throws -> CommittedPushes {
        try await fenced(pair, node: node, epoch: epoch) { [self, logger] conn in
            var items: [(PIN, DataFrame.Service, [UInt8])] = []
            for e in ended {
                var gone = false
                for try await _ in try await conn.query("DELETE FROM im_sessions WHERE pin = \(Int64(e.pin.value)) RETURNING pin", logger: logger) { gone = true }
                if gone {
                    items.append((e.pin, .imSession, IMSessionOutcome(jid: e.jid, state: .loggedOut, reason: e.reason).encoded()))
                }
            }
            return try await enqueueDeviceItems(items, origin: origin, conn) ?? CommittedPushes(outcomes: [], keys: [:], items: [])
        }
    }

    /// A message for a device, once: by `key` (its archive id, or sender and id), nothing
    /// if the device was given it before. `archiveAfter`: the session's archive watermark
    /// moves there in the same transaction. Returns what the Dispatcher sends.
    public func deliverIM(pin: PIN, jid: String, key: String, message: IMMessage, archiveAfter: String?,
                          pair: String, node: String, epoch: UInt64, origin: String) async throws -> CommittedPushes {
        try await fenced(pair, node: node, epoch: epoch) { [self, logger] conn in
            let p = Int64(pin.value)
            var fresh = false
            for try await _ in try await conn.query("""
                INSERT INTO im_delivered (pin, message_key) VALUES (\(p), \(key)) ON CONFLICT DO NOTHING RETURNING pin
                """, logger: logger) { fresh = true }
            if let archiveAfter {
                try await conn.query("UPDATE im_sessions SET archive_after = \(archiveAfter) WHERE pin = \(p) AND jid = \(jid)", logger: logger)
            }
            guard fresh else { return CommittedPushes(outcomes: [], keys: [:], items: []) }
            return try await enqueueDeviceItems([(pin, .im, message.encoded())], origin: origin, conn) ?? CommittedPushes(outcomes: [], keys: [:], items: [])
        }
    }

    /// Moves a session's archive watermark (after a catch-up delivered everything before it).
    public func setIMArchiveWatermark(pin: PIN, jid: String, after: String, pair: String, node: String, epoch: UInt64) async throws {
        try await fenced(pair, node: node, epoch: epoch) { [logger] conn in
            try await conn.query("UPDATE im_sessions SET archive_after = \(after) WHERE pin = \(Int64(pin.value)) AND jid = \(jid)", logger: logger)
        }
    }

    /// Items for devices that are not answers (contacts, presence), fenced.
    public func enqueueIM(_ items: [(pin: PIN, service: DataFrame.Service, payload: [UInt8])],
                          pair: String, node: String, epoch: UInt64, origin: String) async throws -> CommittedPushes {
        try await fenced(pair, node: node, epoch: epoch) { [self] conn in
            try await enqueueDeviceItems(items.map { ($0.pin, $0.service, $0.payload) }, origin: origin, conn) ?? CommittedPushes(outcomes: [], keys: [:], items: [])
        }
    }

    /// When a device's message was first handed to the IM server (nil: never), recording
    /// this attempt if it is the first: a new primary finding one looks in the archive,
    /// from then on, before sending again.
    public func recordIMAttempt(_ key: PendingRequest.Key, pair: String, node: String, epoch: UInt64) async throws -> Date? {
        try await fenced(pair, node: node, epoch: epoch) { [logger] conn in
            var before: Date?
            for try await at in try await conn.query("""
                SELECT attempted_at FROM im_outgoing WHERE pin = \(Int64(key.pin.value)) AND ref = \(Int64(key.ref))
                """, logger: logger).decode(Date.self) { before = at }
            try await conn.query("""
                INSERT INTO im_outgoing (pin, ref) VALUES (\(Int64(key.pin.value)), \(Int64(key.ref)))
                ON CONFLICT (pin, ref) DO NOTHING
                """, logger: logger)
            return before
        }
    }

    /// Forgets what no failover needs any more: delivery keys older than the archive keeps
    /// messages (a week). (Attempts go with their requests, which the Agent prunes.)
    public func pruneIM() async throws {
        try await client.query("""
            DELETE FROM im_delivered WHERE (pin, message_key) IN (
                SELECT pin, message_key FROM im_delivered WHERE delivered_at < now() - interval '8 days' LIMIT 5000)
            """, logger: logger)
    }

    /// Enqueues items for active devices in one transaction: sequence numbers, rows, the
    /// pair's notification. Items for a device no longer active are dropped.
    func enqueueDeviceItems(_ items: [(PIN, DataFrame.Service, [UInt8])], origin: String, _ conn: PostgresConnection) async throws -> CommittedPushes? {
        guard !items.isEmpty else { return nil }
        let pins = Array(Set(items.map(\.0))).sorted { $0.value < $1.value }
        var stored: [PIN: String] = [:]
        for try await (p, key) in try await conn.query("""
            SELECT pin, master_key FROM devices WHERE pin = ANY(\(pins.map { Int64($0.value) })) AND status = 'active' ORDER BY pin FOR UPDATE
            """, logger: logger).decode((Int64, String).self) { stored[PIN(UInt32(p))] = key }
        let live = items.filter { stored[$0.0] != nil }
        guard !live.isEmpty else { return nil }
        var counts: [PIN: Int] = [:]
        for item in live { counts[item.0, default: 0] += 1 }
        let first = try await reserveSequences(counts, conn)
        var next = first
        let expires = Date().addingTimeInterval(TimeInterval(Self.imItemExpirySeconds))
        var out: [OutboundItem] = []
        for (pin, service, payload) in live {
            out.append(OutboundItem(pin: pin, seq: next[pin]!, pushID: UUID(), subject: "", body: "", expiresAt: expires, service: service, payload: payload))
            next[pin]! += 1
        }
        try await insertOutbound(out.map { ($0, Self.imItemExpirySeconds) }, conn)
        _ = try await notifyOutbound(counts: counts, first: first, origin: origin, conn)
        var keys: [PIN: SymmetricKey] = [:]
        for (pin, s) in stored where counts[pin] != nil { if let k = masterKey(s, pin: pin) { keys[pin] = k } }
        return CommittedPushes(outcomes: [], keys: keys, items: out)
    }
}
