import BrambleAPI
import BrambleCore
@preconcurrency import Crypto
import Foundation
import PostgresNIO

/// The Policy Service's records: IT policies by name, which policy each device was sent
/// and what it answered, and IT administration commands (lock, wipe, wipe-work).
///
/// The administrator's changes are plain writes (a policy "due" on the devices of its
/// users, a command "queued"); the primary's `PolicyService` signs and sends them in a
/// transaction fenced by its epoch (`policyPass`), and records the devices' answers.
extension ConfigStore {
    // MARK: Policies

    /// The user's IT policy (the default one until an administrator assigns another).
    func policy(userID: Int64, _ conn: PostgresConnection) async throws -> ITPolicy {
        for try await (name, version, rules) in try await conn.query("""
            SELECT p.name, p.version, p.rules FROM users u JOIN policies p ON p.name = COALESCE(u.policy, 'default') WHERE u.id = \(userID)
            """, logger: logger).decode((String, Int64, String).self) {
            if let policy = Self.policy(rules: rules, name: name, version: version) { return policy }
            logger.error("IT policy \(name) cannot be read or breaks the rules; the default policy applies", metadata: ["policy": "\(name)"])
        }
        return .standard
    }

    /// A row's rules (the policy's JSON) with its name and version from the columns.
    static func policy(rules: String, name: String, version: Int64) -> ITPolicy? {
        guard var policy = try? JSONDecoder().decode(ITPolicy.self, from: Data(rules.utf8)) else { return nil }
        (policy.name, policy.version) = (name, UInt64(clamping: version))
        return try? policy.validated()
    }

    /// Every policy (the built-in default too, until it is changed), or the one named.
    public func policies(name: String? = nil) async throws -> [PolicyRecord] {
        var out: [PolicyRecord] = []
        for try await (n, version, rules, updated, users, applied, pending, refused) in try await client.query("""
            WITH p AS (
                SELECT name, version, rules, updated_at FROM policies
                UNION ALL SELECT 'default', 1, '', NULL WHERE NOT EXISTS (SELECT 1 FROM policies WHERE name = 'default'))
            SELECT p.name, p.version, p.rules, p.updated_at,
                   (SELECT count(*) FROM users u WHERE COALESCE(u.policy, 'default') = p.name)::bigint,
                   COALESCE(c.applied, 0)::bigint, COALESCE(c.pending, 0)::bigint, COALESCE(c.refused, 0)::bigint
            FROM p LEFT JOIN LATERAL (
                SELECT count(*) FILTER (WHERE dp.policy = p.name AND dp.version = p.version AND dp.state = 'applied') AS applied,
                       count(*) FILTER (WHERE dp.policy = p.name AND dp.version = p.version AND dp.state = 'refused') AS refused,
                       count(*) FILTER (WHERE NOT (dp.policy = p.name AND dp.version = p.version AND dp.state IN ('applied', 'refused'))) AS pending
                FROM device_policies dp JOIN devices d ON d.pin = dp.pin AND d.status = 'active' JOIN users u ON u.id = d.user_id
                WHERE COALESCE(u.policy, 'default') = p.name) c ON true
            WHERE \(name)::text IS NULL OR p.name = \(name)
            ORDER BY p.name
            """, logger: logger).decode((String, Int64, String, Date?, Int64, Int64, Int64, Int64).self) {
            let rules = Self.policy(rules: rules, name: n, version: version) ?? ITPolicy(name: n, version: UInt64(clamping: version))
            out.append(PolicyRecord(name: n, version: version, password_required: rules.passwordRequired, min_password_length: rules.minPasswordLength,
                                    lock_timeout_minutes: rules.lockTimeoutMinutes, allowed_services: rules.allowedServices,
                                    users: users, devices_applied: applied, devices_pending: pending, devices_refused: refused, updated_at: updated))
        }
        return out
    }

    /// Creates or changes a policy (a new one starts from the built-in rules); every
    /// change raises its version and makes it due on every active device of its users.
    /// Rules a device could not apply are refused here (`PayloadError`).
    public func setPolicy(name: String, _ change: PolicyChange) async throws -> PolicyRecord {
        try await transaction { [logger] conn in
            var current: ITPolicy?
            for try await (version, rules) in try await conn.query("""
                SELECT version, rules FROM policies WHERE name = \(name) FOR UPDATE
                """, logger: logger).decode((Int64, String).self) {
                current = Self.policy(rules: rules, name: name, version: version) ?? ITPolicy(name: name, version: UInt64(clamping: version))
            }
            // The built-in default is version 1 on the devices that have it already.
            var policy = current ?? ITPolicy(name: name, version: name == ITPolicy.standard.name ? 1 : 0)
            if let v = change.password_required { policy.passwordRequired = v }
            if let v = change.min_password_length { policy.minPasswordLength = v }
            if let v = change.lock_timeout_minutes { policy.lockTimeoutMinutes = v }
            if let v = change.allowed_services { policy.allowedServices = v }
            policy.version += 1
            policy = try policy.validated()
            let rules = String(decoding: try JSONEncoder().encode(policy), as: UTF8.self)
            try await conn.query("""
                INSERT INTO policies (name, version, rules) VALUES (\(name), \(Int64(policy.version)), \(rules))
                ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version, rules = EXCLUDED.rules, updated_at = now()
                """, logger: logger)
            _ = try await self.markPolicyDue(name: name, version: policy.version, userIDs: nil, conn)
        }
        guard let record = try await policies(name: name).first else { throw StoreError.notFound("policy \(name)") }
        return record
    }

    /// Gives `emails` the policy `name` ("default": back to the default); all or none.
    public func assignPolicy(name: String, emails: [String]) async throws -> PolicyAssigned {
        try await transaction { [logger] conn in
            var version: Int64?
            for try await v in try await conn.query("SELECT version FROM policies WHERE name = \(name) FOR SHARE", logger: logger).decode(Int64.self) {
                version = v
            }
            if version == nil, name == ITPolicy.standard.name { version = 1 }
            guard let version else { throw StoreError.notFound("no policy \(name) (make it with `bramble policy set \(name)`)") }
            var users: [(Int64, String)] = []
            for try await row in try await conn.query("""
                SELECT id, email FROM users WHERE email = ANY(\(emails)) ORDER BY email FOR UPDATE
                """, logger: logger).decode((Int64, String).self) { users.append(row) }
            let missing = Set(emails).subtracting(users.map(\.1))
            guard missing.isEmpty else { throw StoreError.notFound("no user \(missing.sorted().joined(separator: ", "))") }
            let stored: String? = name == ITPolicy.standard.name ? nil : name
            try await conn.query("UPDATE users SET policy = \(stored) WHERE id = ANY(\(users.map(\.0)))", logger: logger)
            let devices = try await self.markPolicyDue(name: name, version: UInt64(version), userIDs: users.map(\.0), conn)
            return PolicyAssigned(policy: name, users: users.map(\.1), devices: devices)
        }
    }

    /// An administrator's change in one transaction; what its body threw (a `StoreError`,
    /// a `PayloadError`) comes out as itself, for the API to answer as such.
    private func transaction<T: Sendable>(_ body: (PostgresConnection) async throws -> sending T) async throws -> T {
        do {
            return try await client.withTransaction(logger: logger, body)
        } catch let error as PostgresTransactionError {
            if let thrown = error.closureError, thrown is StoreError || thrown is PayloadError { throw thrown }
            throw error
        }
    }

    /// Makes the policy due on the active devices of its users (of `userIDs` only, if
    /// given); returns how many.
    private func markPolicyDue(name: String, version: UInt64, userIDs: [Int64]?, _ conn: PostgresConnection) async throws -> Int64 {
        var count: Int64 = 0
        for try await _ in try await conn.query("""
            INSERT INTO device_policies (pin, policy, version, state)
            SELECT d.pin, \(name), \(Int64(version)), 'due' FROM devices d JOIN users u ON u.id = d.user_id
            WHERE d.status = 'active' AND COALESCE(u.policy, 'default') = \(name)
              AND (\(userIDs)::bigint[] IS NULL OR u.id = ANY(\(userIDs)::bigint[]))
            ORDER BY d.pin
            ON CONFLICT (pin) DO UPDATE SET policy = EXCLUDED.policy, version = EXCLUDED.version, state = 'due', detail = '', updated_at = now()
            RETURNING pin
            """, logger: logger) { count += 1 }
        return count
    }

    /// Signs the user's policy for `pins` and records it sent; the items to enqueue.
    func policyItems(userID: Int64, pins: [PIN], domain: DomainKey, _ conn: PostgresConnection) async throws -> [(PIN, DataFrame.Service, [UInt8])] {
        let policy = try await policy(userID: userID, conn)
        let signed = SignedPolicy.sign(policy, with: domain.signing)
        try await conn.query("""
            INSERT INTO device_policies (pin, policy, version, state, digest)
            SELECT unnest(\(pins.map { Int64($0.value) })::bigint[]), \(policy.name), \(Int64(policy.version)), 'sent', \(ByteBuffer(bytes: signed.digest))
            ON CONFLICT (pin) DO UPDATE SET policy = EXCLUDED.policy, version = EXCLUDED.version, state = 'sent', digest = EXCLUDED.digest,
                detail = '', updated_at = now()
            """, logger: logger)
        return pins.map { ($0, .policy, signed.encoded()) }
    }

    /// A device just activated: the commands still open from before it was activated
    /// again (a lock, a wipe), then its IT policy, in one batch — a wipe reaches it before
    /// its service books can complete the activation.
    func queueActivated(userID: Int64, pin: PIN, domain: DomainKey, _ conn: PostgresConnection) async throws -> CommittedPushes? {
        let commands = try await commandItems(where: "c.state = 'queued' AND c.pin = \(Int64(pin.value))", limit: 100, domain: domain, conn)
        return try await enqueueDeviceItems(commands + (try await policyItems(userID: userID, pins: [pin], domain: domain, conn)), origin: "policy", conn)
    }

    // MARK: IT administration commands

    /// Queues `kind` for an active device (the primary signs and sends it).
    public func issueCommand(pin: PIN, kind: ITCommand.Kind, lock: DeviceLock?) async throws -> DeviceCommandRecord {
        // Only for an active device, checked in the statement that inserts it.
        do {
            for try await (id, created) in try await client.query("""
                INSERT INTO device_commands (pin, kind, lock_salt, lock_verifier)
                SELECT pin, \(kind.name), \(lock.map { ByteBuffer(bytes: $0.salt) }), \(lock.map { ByteBuffer(bytes: $0.verifier) })
                FROM devices WHERE pin = \(Int64(pin.value)) AND status = 'active'
                RETURNING id, created_at
                """, logger: logger).decode((Int64, Date).self) {
                return DeviceCommandRecord(id: id, pin: pin.description, command: kind.name, state: "queued", created_at: created, sent_at: nil, confirmed_at: nil)
            }
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23503" {
            // The device was activated again while this was queued (see `KeptCommands`).
            throw StoreError.conflict("device \(pin) was activated again as the command was queued: issue it again")
        }
        for try await status in try await client.query("SELECT status FROM devices WHERE pin = \(Int64(pin.value))", logger: logger).decode(String.self) {
            throw StoreError.conflict("device \(pin) is \(status)")
        }
        throw StoreError.notFound("no device \(pin)")
    }

    /// The IT policy of a device's user (the lock command checks the password against it).
    public func policy(pin: PIN) async throws -> ITPolicy? {
        try await client.withConnection { [self] conn in
            var user: Int64?
            for try await id in try await conn.query("SELECT user_id FROM devices WHERE pin = \(Int64(pin.value))", logger: logger).decode(Int64.self) {
                user = id
            }
            guard let user else { return nil }
            return try await policy(userID: user, conn)
        }
    }

    /// A device's commands, newest first.
    func commands(pin: PIN, limit: Int = 10) async throws -> [DeviceCommandRecord] {
        var out: [DeviceCommandRecord] = []
        for try await (id, kind, state, detail, created, sent, confirmed) in try await client.query("""
            SELECT id, kind, state, detail, created_at, sent_at, confirmed_at FROM device_commands WHERE pin = \(Int64(pin.value))
            ORDER BY id DESC LIMIT \(limit)
            """, logger: logger).decode((Int64, String, String, String, Date, Date?, Date?).self) {
            var record = DeviceCommandRecord(id: id, pin: pin.description, command: kind, state: state, created_at: created, sent_at: sent, confirmed_at: confirmed)
            record.detail = detail.isEmpty ? nil : detail
            out.append(record)
        }
        return out
    }

    // MARK: The primary's pass

    /// The commands (`c`) and device policies (`dp`) a pass sends: queued or due, or sent
    /// `resendMs` ago, unanswered and no longer in the device's queue (expired, or lost).
    /// One definition for the pass and for the read that says whether it has work.
    static func commandsToSend(resendMs: UInt64) -> String {
        """
        (c.state = 'queued' OR (c.state = 'sent' AND c.sent_at < now() - \(Int64(clamping: resendMs)) * interval '1 millisecond'
            AND NOT EXISTS (SELECT 1 FROM outbound o WHERE o.pin = c.pin AND o.service = \(DataFrame.Service.command.rawValue)
                            AND o.state IN ('queued', 'sent'))))
        """
    }

    static func policiesToSend(resendMs: UInt64) -> String {
        """
        (dp.state = 'due' OR (dp.state = 'sent' AND dp.updated_at < now() - \(Int64(clamping: resendMs)) * interval '1 millisecond'
            AND NOT EXISTS (SELECT 1 FROM outbound o WHERE o.pin = dp.pin AND o.service = \(DataFrame.Service.policy.rawValue)
                            AND o.state IN ('queued', 'sent'))))
        """
    }

    /// Whether the pass has anything to do: a plain read, so that an idle primary does not
    /// open a fenced transaction (a share lock on the lease row) every couple of seconds.
    public func policyWorkPending(resendAfterMs: UInt64) async throws -> Bool {
        for try await pending in try await client.query("""
            SELECT EXISTS (SELECT 1 FROM device_commands c JOIN devices d ON d.pin = c.pin AND d.status = 'active'
                           WHERE \(unescaped: Self.commandsToSend(resendMs: resendAfterMs)))
                OR EXISTS (SELECT 1 FROM device_policies dp JOIN devices d ON d.pin = dp.pin AND d.status = 'active'
                           WHERE \(unescaped: Self.policiesToSend(resendMs: resendAfterMs)))
            """, logger: logger).decode(Bool.self) { return pending }
        return false
    }

    /// What the primary's pass sends: queued commands, due policies, and commands or
    /// policies sent `resendAfterMs` ago, still unanswered and no longer in the device's
    /// queue (expired, or lost) — sent again. At most `limit` of each per pass.
    public func policyPass(domain: DomainKey, resendAfterMs: UInt64, limit: Int = 200, pair: String, node: String, epoch: UInt64)
        async throws -> CommittedPushes? {
        try await fenced(pair, node: node, epoch: epoch) { [self, logger] conn in
            var items = try await commandItems(where: Self.commandsToSend(resendMs: resendAfterMs), limit: limit, domain: domain, conn)
            var byUser: [Int64: [PIN]] = [:]
            for try await (p, user) in try await conn.query("""
                SELECT dp.pin, d.user_id FROM device_policies dp JOIN devices d ON d.pin = dp.pin AND d.status = 'active'
                WHERE \(unescaped: Self.policiesToSend(resendMs: resendAfterMs))
                ORDER BY dp.pin LIMIT \(limit) FOR UPDATE OF dp, d SKIP LOCKED
                """, logger: logger).decode((Int64, Int64).self) { byUser[user, default: []].append(PIN(UInt32(p))) }
            for (user, pins) in byUser.sorted(by: { $0.key < $1.key }) {
                items += try await policyItems(userID: user, pins: pins, domain: domain, conn)
            }
            return try await enqueueDeviceItems(items, origin: "policy", conn)
        }
    }

    /// The commands `predicate` (on `c`, the command) selects for active devices, oldest
    /// first, signed with the domain key and marked sent: the items that carry them.
    func commandItems(where predicate: String, limit: Int, domain: DomainKey, _ conn: PostgresConnection)
        async throws -> [(PIN, DataFrame.Service, [UInt8])] {
        var items: [(PIN, DataFrame.Service, [UInt8])] = []
        var commandIDs: [Int64] = []
        for try await (id, p, kind, salt, verifier, created) in try await conn.query("""
            SELECT c.id, c.pin, c.kind, c.lock_salt, c.lock_verifier, c.created_at
            FROM device_commands c JOIN devices d ON d.pin = c.pin AND d.status = 'active'
            WHERE \(unescaped: predicate)
            ORDER BY c.id LIMIT \(limit) FOR UPDATE OF c, d SKIP LOCKED
            """, logger: logger).decode((Int64, Int64, String, ByteBuffer?, ByteBuffer?, Date).self) {
            let lock = salt.flatMap { s in verifier.map { DeviceLock(salt: Array(buffer: s), verifier: Array(buffer: $0)) } }
            // The table's checks keep commands valid; a row that is not is never signed.
            guard let kind = ITCommand.Kind(name: kind), case let command = ITCommand(
                id: UInt64(id), pin: PIN(UInt32(p)), kind: kind, lock: lock, issuedAt: UInt64(max(0, created.timeIntervalSince1970))),
                  command.isValid else {
                logger.error("IT command \(id) cannot be sent: its row is not a valid command", metadata: ["device.pin": "\(PIN(UInt32(p)))"])
                continue
            }
            items.append((command.pin, .command, SignedCommand.sign(command, with: domain.signing).encoded()))
            commandIDs.append(id)
        }
        if !commandIDs.isEmpty {
            try await conn.query("UPDATE device_commands SET state = 'sent', sent_at = now() WHERE id = ANY(\(commandIDs))", logger: logger)
        }
        return items
    }

    // MARK: The devices' answers

    /// Policy confirmations and command confirmations recorded and not yet acted on.
    public func pendingPolicyRequests(limit: Int = 500) async throws -> [PendingRequest] {
        var out: [PendingRequest] = []
        for try await (p, ref, payload) in try await client.query("""
            SELECT pin, ref, payload FROM device_requests
            WHERE state = 'pending' AND kind = ANY(\(DeviceRequest.Kind.policyKinds.map { Int16($0.rawValue) }))
            ORDER BY received_at, pin, ref LIMIT \(limit)
            """, logger: logger).decode((Int64, Int64, ByteBuffer?).self) {
            guard let payload, let request = try? DeviceRequest.decodeStored(Array(buffer: payload)) else { continue }
            out.append(PendingRequest(pin: PIN(UInt32(p)), ref: UInt64(ref), request: request))
        }
        return out
    }

    /// What recording a device's answer led to.
    public struct PolicyOutcome: Sendable {
        /// Items to deliver (the service books, when a policy applied during activation
        /// released them).
        public var committed: CommittedPushes?
        /// The device confirmed a wipe: it no longer has a key.
        public var wiped = false
        /// What the device confirmed, for the log.
        public var summary = ""
        /// Whether the answer was new (not one recorded before).
        public var recorded: Bool { !summary.isEmpty }
    }

    /// Records a device's answer to its IT policy or an IT command. A policy applied during
    /// activation releases the service books (what the device may use, as its policy
    /// allows); a confirmed lock or wipe is recorded on the device (a wiped one is
    /// "wiped", its master key forgotten).
    public func recordPolicyOutcome(_ request: PendingRequest, srpID: String, imOffered: Bool, pair: String, node: String, epoch: UInt64)
        async throws -> PolicyOutcome {
        try await fenced(pair, node: node, epoch: epoch) { [self, logger] conn in
            let (pin, ref) = (Int64(request.pin.value), Int64(request.ref))
            var pending = false
            for try await _ in try await conn.query("""
                SELECT 1 FROM device_requests WHERE pin = \(pin) AND ref = \(ref) AND state = 'pending' FOR UPDATE
                """, logger: logger) { pending = true }
            guard pending else { return PolicyOutcome() }
            try await conn.query("UPDATE device_requests SET state = 'done', done_at = now() WHERE pin = \(pin) AND ref = \(ref)", logger: logger)
            var user: (id: Int64, email: String)?
            for try await r in try await conn.query("""
                SELECT u.id, u.email FROM devices d JOIN users u ON u.id = d.user_id WHERE d.pin = \(pin)
                """, logger: logger).decode((Int64, String).self) { user = r }
            guard let user else { return PolicyOutcome() }
            switch request.request {
            case .commandDone(let id, let kind):
                var confirmed = false
                for try await _ in try await conn.query("""
                    UPDATE device_commands SET state = 'confirmed', confirmed_at = now()
                    WHERE id = \(Int64(clamping: id)) AND pin = \(pin) AND kind = \(kind.name) AND state <> 'confirmed' RETURNING id
                    """, logger: logger) { confirmed = true }
                guard confirmed else { return PolicyOutcome() }
                switch kind {
                case .lock:
                    try await conn.query("UPDATE devices SET locked_at = now() WHERE pin = \(pin)", logger: logger)
                    return PolicyOutcome(summary: "device locked")
                case .wipe, .wipeWork:
                    // The device deletes its keys once it has this recorded: so does the node.
                    try await conn.query("""
                        UPDATE devices SET status = 'wiped', wiped = \(kind == .wipe ? "all" : "work"), wiped_at = now(), master_key = ''
                        WHERE pin = \(pin)
                        """, logger: logger)
                    try await conn.query("""
                        UPDATE device_commands SET state = 'refused', detail = 'the device was wiped', confirmed_at = now()
                        WHERE pin = \(pin) AND state IN ('queued', 'sent')
                        """, logger: logger)
                    return PolicyOutcome(wiped: true, summary: kind == .wipe ? "device wiped" : "device's work data wiped")
                }
            case .commandRefused(let id, let reason):
                try await conn.query("""
                    UPDATE device_commands SET state = 'refused', detail = \(reason), confirmed_at = now()
                    WHERE id = \(Int64(clamping: id)) AND pin = \(pin) AND state IN ('queued', 'sent')
                    """, logger: logger)
                return PolicyOutcome(summary: "IT command refused: \(reason)")
            case .policyRefused(_, let digest, let reason):
                // The answer names the policy by its digest (versions repeat across policies).
                try await conn.query("""
                    UPDATE device_policies SET state = 'refused', detail = \(reason), updated_at = now()
                    WHERE pin = \(pin) AND digest = \(ByteBuffer(bytes: digest)) AND state = 'sent'
                    """, logger: logger)
                try await conn.query("""
                    UPDATE activations SET last_event = \("PIN \(request.pin) refused its IT policy: \(reason)"), last_event_at = now()
                    WHERE user_id = \(user.id) AND pin = \(pin) AND state = 'confirmed'
                    """, logger: logger)
                return PolicyOutcome(summary: "IT policy refused")
            case .policyApplied(let version, let digest):
                try await conn.query("""
                    UPDATE device_policies SET state = 'applied', detail = '', updated_at = now()
                    WHERE pin = \(pin) AND digest = \(ByteBuffer(bytes: digest)) AND state = 'sent'
                    """, logger: logger)
                var activating = false
                for try await _ in try await conn.query("""
                    SELECT 1 FROM activations WHERE user_id = \(user.id) AND pin = \(pin) AND state = 'confirmed' AND services_seq IS NULL FOR UPDATE
                    """, logger: logger) { activating = true }
                guard activating else { return PolicyOutcome(summary: "IT policy applied") }
                let policy = try await policy(userID: user.id, conn)
                // Only the policy in force releases the books, not an older one (the policy
                // changed while the device activated): the one in force is sent now.
                guard digest == Array(SHA256.hash(data: policy.encoded())) else {
                    try await conn.query("UPDATE device_policies SET state = 'due', updated_at = now() WHERE pin = \(pin)", logger: logger)
                    return PolicyOutcome(summary: "an older IT policy applied; the one in force is sent")
                }
                let books = ServiceBooks.offered(srpID: srpID, email: user.email, imOffered: imOffered, policy: policy)
                guard let committed = try await enqueueDeviceItems([(request.pin, .serviceBooks, books.encoded())],
                                                                   origin: "policy", conn),
                      let item = committed.items.first else { return PolicyOutcome() }
                try await conn.query("""
                    UPDATE activations SET services_seq = \(Int64(item.seq)),
                        last_event = \("PIN \(request.pin) applied IT policy \(policy.name) v\(version); service books sent"), last_event_at = now()
                    WHERE user_id = \(user.id)
                    """, logger: logger)
                return PolicyOutcome(committed: committed, summary: "IT policy applied; service books sent")
            default:
                return PolicyOutcome()
            }
        }
    }
}

/// A device's IT commands across its activation again (`confirmActivation` deletes and
/// recreates the device row, and the row's cascade would take the commands with it): the
/// history as it was, its lock in force, and the commands still open queued again for the
/// new activation (sent with its IT policy, `queueActivated`) — its old queue is gone,
/// and a lock or wipe the administrator ordered must still reach it.
struct KeptCommands: Sendable {
    struct Row: Sendable {
        var id: Int64, kind: String, salt: ByteBuffer?, verifier: ByteBuffer?, state: String, detail: String
        var created: Date, sent: Date?, confirmed: Date?
    }
    var rows: [Row] = []
    /// When the device was locked, unless a full wipe took its password since.
    var lockedAt: Date?

    static func read(pin: Int64, _ conn: PostgresConnection, logger: Logger) async throws -> KeptCommands {
        var kept = KeptCommands()
        // The row locked first: a command issued meanwhile (its foreign key check waits
        // for this) fails aloud instead of going with the row's cascade unseen.
        for try await locked in try await conn.query("""
            SELECT CASE WHEN wiped = 'all' THEN NULL ELSE locked_at END FROM devices WHERE pin = \(pin) FOR UPDATE
            """, logger: logger).decode(Date?.self) { kept.lockedAt = locked }
        for try await (id, kind, salt, verifier, state, detail, created, sent, confirmed) in try await conn.query("""
            SELECT id, kind, lock_salt, lock_verifier, state, detail, created_at, sent_at, confirmed_at
            FROM device_commands WHERE pin = \(pin) ORDER BY id
            """, logger: logger).decode((Int64, String, ByteBuffer?, ByteBuffer?, String, String, Date, Date?, Date?).self) {
            kept.rows.append(Row(id: id, kind: kind, salt: salt, verifier: verifier, state: state, detail: detail,
                                 created: created, sent: sent, confirmed: confirmed))
        }
        return kept
    }

    /// Puts the commands back under the recreated device row, the open ones queued, and
    /// the lock in force queued again too (unless a newer lock or a wipe is open): a device
    /// activated again with its storage reset would otherwise be unlocked while its record
    /// says locked (a device that kept its lock confirms the same command again, changing
    /// nothing).
    func restore(pin: Int64, _ conn: PostgresConnection, logger: Logger) async throws {
        let isOpen = { (row: Row) in row.state == "queued" || row.state == "sent" }
        let lastLock = rows.last { $0.kind == "lock" && $0.state != "refused" }
        let wipeOpen = rows.contains { $0.kind != "lock" && isOpen($0) }
        let lockInForce = lockedAt != nil && !wipeOpen && lastLock?.state == "confirmed" ? lastLock?.id : nil
        for row in rows {
            let open = isOpen(row) || row.id == lockInForce
            try await conn.query("""
                INSERT INTO device_commands (id, pin, kind, lock_salt, lock_verifier, state, detail, created_at, sent_at, confirmed_at)
                VALUES (\(row.id), \(pin), \(row.kind), \(row.salt), \(row.verifier), \(open ? "queued" : row.state), \(row.detail),
                        \(row.created), \(open ? nil : row.sent), \(open ? nil : row.confirmed))
                """, logger: logger)
        }
    }
}
