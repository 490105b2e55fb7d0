import BrambleCore
import BrambleNet
@preconcurrency import Crypto
import Foundation
import Logging
import NIOConcurrencyHelpers
import PostgresNIO

/// The configuration database: every query the node runs lives in this type and its
/// extensions, so the SQL can be read in one place.
public struct ConfigStore: Sendable, OutboundStore, DeliveryStore {
    /// The database's hosts; statements go to the writable one.
    public let database: DatabaseHosts
    /// Seals and opens the devices' master keys (the database holds them sealed).
    let vault: MasterKeyVault
    let logger: Logger

    public var client: PostgresClient { database.client }

    public init(database: DatabaseHosts, vault: MasterKeyVault, logger: Logger) {
        self.database = database
        self.vault = vault
        self.logger = logger
    }

    /// One database host (tests).
    public init(client: PostgresClient, vault: MasterKeyVault, logger: Logger) {
        self.init(database: DatabaseHosts(client: client, logger: logger), vault: vault, logger: logger)
    }

    /// A device's master key from its stored (sealed) form; nil, and an error in the log,
    /// when it does not open (a database written under another key-encryption key, or a
    /// value someone without the KEK put there): that device is not served rather than
    /// served under a key an intruder chose.
    func masterKey(_ stored: String, pin: PIN) -> SymmetricKey? {
        do {
            return try vault.open(stored, pin: pin)
        } catch {
            // Once per PIN and value: the keys are loaded again and again (every account count).
            let first = Self.unopened.withLockedValue { seen in
                if seen.count >= 10_000 { seen.removeAll() }
                return seen.insert("\(pin.value) \(stored.hashValue)").inserted
            }
            if first { logger.error("\(error)", metadata: ["device.pin": "\(pin)"]) }
            return nil
        }
    }
    private static let unopened = NIOLockedValueBox<Set<String>>([])

    public struct KeyEncryptionKeyMismatch: Error, CustomStringConvertible {
        public var description: String {
            "the key-encryption key (key-encryption-key-file) is not the one this database's device master keys are sealed under, "
                + "nor previous-key-encryption-key-file: give both nodes the same key"
        }
    }

    /// At a node's start, after the migrations: checks that this node's key-encryption key
    /// is the database's (or, during a rotation, its previous one is), and refuses to start
    /// otherwise. The first node to start with a KEK seals every master key stored plain
    /// (written before keys were sealed at rest) and records the KEK's check value; after
    /// that a plain key in the table is never sealed nor used. Returns how many it sealed.
    @discardableResult
    public func adoptKeyEncryptionKey() async throws -> Int {
        do {
            return try await adoptKeyEncryptionKeyInTransaction()
        } catch let error as PostgresTransactionError where error.closureError is KeyEncryptionKeyMismatch {
            throw KeyEncryptionKeyMismatch()
        }
    }

    private func adoptKeyEncryptionKeyInTransaction() async throws -> Int {
        try await client.withTransaction(logger: logger) { [vault, logger] conn in
            var recorded: [UInt8]?
            for try await value in try await conn.query("SELECT kek_check FROM key_encryption FOR UPDATE", logger: logger)
                .decode(ByteBuffer.self) { recorded = Array(buffer: value) }
            if let recorded {
                guard recorded == vault.currentCheck || recorded == vault.previousCheck else { throw KeyEncryptionKeyMismatch() }
                return 0
            }
            // Keys sealed before the check was recorded must open under this KEK.
            for try await (value, stored) in try await conn.query(
                "SELECT pin, master_key FROM devices WHERE master_key LIKE \(MasterKeyVault.prefix + "%") LIMIT 1", logger: logger
            ).decode((Int64, String).self) {
                guard (try? vault.opened(stored, pin: PIN(UInt32(value)))) != nil else { throw KeyEncryptionKeyMismatch() }
            }
            var sealed = 0
            var plain: [(Int64, String)] = []
            for try await row in try await conn.query(
                "SELECT pin, master_key FROM devices WHERE master_key NOT LIKE \(MasterKeyVault.prefix + "%") FOR UPDATE", logger: logger
            ).decode((Int64, String).self) { plain.append(row) }
            for (value, stored) in plain {
                guard let key = SymmetricKey(base64: stored) else { continue }
                try await conn.query("UPDATE devices SET master_key = \(vault.seal(key, pin: PIN(UInt32(value)))) WHERE pin = \(value)",
                                     logger: logger)
                sealed += 1
            }
            // Both nodes may start at once: the one that inserts first decides; the other's
            // insert waits for it and then does nothing (and is checked at its next start).
            try await conn.query("""
                INSERT INTO key_encryption (kek_check) VALUES (\(ByteBuffer(bytes: vault.currentCheck))) ON CONFLICT (only_row) DO NOTHING
                """, logger: logger)
            if sealed > 0 { logger.notice("sealed \(sealed) device master key(s) under the key-encryption key") }
            return sealed
        }
    }

    /// After a rotation of the key-encryption key, once both nodes hold the new one (and
    /// the old one as previous): seals under the new KEK every master key still sealed
    /// under the previous one, and records the new KEK as the database's. Safe beside the
    /// other node (a row is rewritten only if it still holds what was read). Returns how
    /// many master keys it sealed again (the domain key and activation secrets too, logged).
    @discardableResult
    public func resealMasterKeys() async throws -> Int {
        var rows: [(Int64, String)] = []
        for try await row in try await client.query("SELECT pin, master_key FROM devices", logger: logger)
            .decode((Int64, String).self) { rows.append(row) }
        var sealed = 0
        for (value, stored) in rows {
            let pin = PIN(UInt32(value))
            guard let opened = try? vault.opened(stored, pin: pin), opened.underPrevious else { continue }
            let updated = try await client.query("""
                UPDATE devices SET master_key = \(vault.seal(opened.key, pin: pin)) WHERE pin = \(value) AND master_key = \(stored) RETURNING pin
                """, logger: logger)
            for try await _ in updated.decode(Int64.self) { sealed += 1 }
        }
        let secrets = try await resealActivationSecrets()
        try await client.query("UPDATE key_encryption SET kek_check = \(ByteBuffer(bytes: vault.currentCheck))", logger: logger)
        if sealed > 0 { logger.notice("sealed \(sealed) device master key(s) again under the new key-encryption key") }
        if secrets > 0 { logger.notice("sealed \(secrets) activation secret(s) and domain key again under the new key-encryption key") }
        return sealed
    }

    /// How a node connects. A node paused or cut off in the middle of a transaction must
    /// not keep its locks: a fenced write holds the lease row FOR KEY SHARE, and the standby's
    /// take of the lease would wait for it; so the server ends a session idle in a
    /// transaction for longer than the lease lasts. With `d.tls`, the server must speak TLS
    /// and present a certificate for `host` from the CA (no fallback to plaintext).
    public static func clientConfiguration(_ d: NodeConfiguration.Database, host: HostPort? = nil, leaseMs: Int, maximumConnections: Int,
                                           extra: [(String, String)] = []) throws -> PostgresClient.Configuration {
        let address = host ?? d.hosts[0].address
        let tls: PostgresClient.Configuration.TLS = try d.tls.map { .require(try $0.clientConfiguration()) } ?? .disable
        var pg = PostgresClient.Configuration(host: address.host, port: address.port, username: d.user, password: d.password,
                                              database: d.name, tls: tls)
        pg.options.maximumConnections = maximumConnections
        pg.options.connectTimeout = .seconds(2)
        pg.options.additionalStartupParameters = [("idle_in_transaction_session_timeout", "\(leaseMs)")] + extra
        return pg
    }

    public func migrate() async throws {
        try await Migrations.apply(on: client, logger: logger)
    }

    public func recordEvent(_ event: NewPairEvent) async throws {
        let e = event.epoch.map { Int64($0) }
        try await client.query("""
            INSERT INTO events (node, kind, epoch, reason, detail)
            VALUES (\(event.node), \(event.kind.rawValue), \(e), \(event.reason?.rawValue), \(event.detail))
            """, logger: logger)
    }

    /// The newest `limit` events of `pair`'s nodes recorded at or after `sinceUnixMs`,
    /// oldest first.
    public func pairEvents(_ pair: String, sinceUnixMs: Int64, limit: Int) async throws -> [PairEvent] {
        var events: [PairEvent] = []
        for try await (at, node, kind, epoch, reason, detail) in try await client.query("""
            SELECT (extract(epoch FROM at) * 1000)::bigint, node, kind, epoch, reason, detail FROM events
            WHERE node IN (SELECT node FROM heartbeats WHERE pair = \(pair)) AND at >= to_timestamp(\(Double(sinceUnixMs) / 1000))
            ORDER BY id DESC LIMIT \(limit)
            """, logger: logger).decode((Int64, String, String, Int64?, String?, String).self) {
            // Kinds this version does not know (a newer node's) are left out.
            guard let kind = PairEvent.Kind(rawValue: kind) else { continue }
            events.append(PairEvent(atUnixMs: at, node: node, kind: kind, epoch: epoch.map { UInt64($0) },
                                    reason: reason.flatMap(PairEvent.Reason.init(rawValue:)), detail: detail))
        }
        return events.reversed()
    }

    /// The master key of an active device, or nil.
    public func deviceKey(_ pin: PIN) async throws -> SymmetricKey? {
        let rows = try await client.query(
            "SELECT master_key FROM devices WHERE pin = \(Int64(pin.value)) AND status = 'active'", logger: logger)
        for try await key in rows.decode(String.self) { return masterKey(key, pin: pin) }
        return nil
    }

    /// Every active device's master key: what a warm standby keeps ready.
    public func deviceKeys() async throws -> [PIN: SymmetricKey] {
        var keys: [PIN: SymmetricKey] = [:]
        for try await (pin, key) in try await client.query(
            "SELECT pin, master_key FROM devices WHERE status = 'active'", logger: logger
        ).decode((Int64, String).self) {
            keys[PIN(UInt32(pin))] = masterKey(key, pin: PIN(UInt32(pin)))
        }
        return keys
    }

    /// How many users and active devices there are (the health parameters "user accounts
    /// started" and "at least one user" are measured against these).
    public func accountCounts() async throws -> HealthFacts.Accounts {
        for try await counts in try await client.query(
            "SELECT (SELECT count(*) FROM users)::bigint, (SELECT count(*) FROM devices WHERE status = 'active')::bigint",
            logger: logger
        ).decode((Int64, Int64).self) { return .init(users: Int(counts.0), activeDevices: Int(counts.1)) }
        return .init(users: 0, activeDevices: 0)
    }

    public func ping() async throws {
        try await client.query("SELECT 1", logger: logger)
    }
}
