import BrambleAPI
import BrambleCore
@preconcurrency import Crypto
import Foundation
import PostgresNIO

extension ConfigStore {
    public func addUser(email: String, displayName: String) async throws -> UserRecord {
        do {
            let rows = try await client.query("""
                INSERT INTO users (email, display_name) VALUES (\(email), \(displayName))
                RETURNING email, display_name, created_at
                """, logger: logger)
            for try await (e, n, c) in rows.decode((String, String, Date).self) {
                return UserRecord(email: e, display_name: n, created_at: c, devices: [])
            }
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
            throw StoreError.conflict("user \(email) already exists")
        }
        throw StoreError.notFound("inserted user")
    }

    public func users(email: String? = nil) async throws -> [UserRecord] {
        let rows = try await client.query("""
            SELECT u.email, u.display_name, u.created_at,
                   COALESCE(array_agg(lpad(upper(to_hex(d.pin)), 8, '0') ORDER BY d.pin)
                            FILTER (WHERE d.pin IS NOT NULL), '{}'),
                   m.user_id IS NOT NULL, m.uid_validity, COALESCE(m.last_uid, 0), m.checked_at, m.last_mail_at,
                   m.last_message_id, m.last_error, m.error_at, u.reconciliation, u.im
            FROM users u LEFT JOIN devices d ON d.user_id = u.id LEFT JOIN mailboxes m ON m.user_id = u.id
            WHERE \(email)::text IS NULL OR u.email = \(email)
            GROUP BY u.id, m.user_id ORDER BY u.email
            """, logger: logger)
        var users: [UserRecord] = []
        for try await (e, n, c, pins, watched, validity, last, checked, mailAt, messageID, error, errorAt, reconciliation, im) in rows.decode(
            (String, String, Date, [String], Bool, Int64?, Int64, Date?, Date?, String?, String?, Date?, Bool, Bool).self) {
            let mailbox = watched ? MailboxWatch(uid_validity: validity.map { UInt64($0) }, last_uid: UInt64(last), checked_at: checked,
                                                 last_mail_at: mailAt, last_message_id: messageID, last_error: error, error_at: errorAt) : nil
            users.append(UserRecord(email: e, display_name: n, created_at: c, devices: pins, mailbox: mailbox, reconciliation: reconciliation, im: im))
        }
        let activations = try await activationStatuses(email: email)
        for i in users.indices { users[i].activation = activations[users[i].email] ?? ActivationStatus.none }
        return users
    }

    /// Removes a user with their devices and queued items; false if there was none.
    public func removeUser(email: String) async throws -> Bool {
        let rows = try await client.query("DELETE FROM users WHERE email = \(email) RETURNING id", logger: logger)
        for try await _ in rows { return true }
        return false
    }

    /// Creates a device for an existing user with a fresh master key (wired activation).
    /// A user with no active device until now starts with a fresh mailbox watch: mail
    /// from this activation on, not the backlog since an old watermark.
    public func provisionDevice(email: String, pin: PIN, key: SymmetricKey) async throws -> DeviceRecord {
        let pinValue = Int64(pin.value)
        do {
            let rows = try await client.query("""
                WITH forgotten AS (
                    DELETE FROM mailboxes m USING users u WHERE m.user_id = u.id AND u.email = \(email)
                      AND NOT EXISTS (SELECT 1 FROM devices d WHERE d.user_id = u.id AND d.status = 'active'))
                INSERT INTO devices (pin, user_id, master_key)
                SELECT \(pinValue), id, \(vault.seal(key, pin: pin)) FROM users WHERE email = \(email)
                RETURNING created_at
                """, logger: logger)
            for try await created in rows.decode(Date.self) {
                return DeviceRecord(pin: pin.description, email: email, status: "active", last_seq: 0, pending: 0, created_at: created)
            }
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
            throw StoreError.conflict("PIN \(pin) is already provisioned")
        }
        throw StoreError.notFound("no user \(email)")
    }

    public func devices(pin: PIN? = nil) async throws -> [DeviceRecord] {
        let pinValue = pin.map { Int64($0.value) }
        let rows = try await client.query("""
            SELECT d.pin, u.email, d.status, d.last_seq, d.created_at,
                   (SELECT count(*) FROM outbound o WHERE o.pin = d.pin AND o.state IN ('queued', 'sent')),
                   d.locked_at, d.wiped, d.wiped_at, dp.policy, dp.version, dp.state, dp.detail, dp.updated_at
            FROM devices d JOIN users u ON u.id = d.user_id LEFT JOIN device_policies dp ON dp.pin = d.pin
            WHERE \(pinValue)::bigint IS NULL OR d.pin = \(pinValue)
            ORDER BY d.pin
            """, logger: logger)
        var devices: [DeviceRecord] = []
        for try await (p, e, s, seq, c, pending, locked, wiped, wipedAt, policy, version, state, detail, updated) in rows.decode(
            (Int64, String, String, Int64, Date, Int64, Date?, String?, Date?, String?, Int64?, String?, String?, Date?).self) {
            var device = DeviceRecord(pin: PIN(UInt32(p)).description, email: e, status: s, last_seq: seq, pending: pending, created_at: c)
            (device.locked_at, device.wiped, device.wiped_at) = (locked, wiped, wipedAt)
            if let policy, let version, let state, let updated {
                device.policy = DevicePolicyState(name: policy, version: version, state: state, detail: detail?.isEmpty == false ? detail : nil, updated_at: updated)
            }
            devices.append(device)
        }
        if let pin, !devices.isEmpty { devices[0].commands = try await commands(pin: pin) }
        return devices
    }

    // MARK: Push applications

    /// Registers a push application under the SHA-256 of its token (the token itself is
    /// never stored). A name in use, revoked or not, is a conflict.
    public func addPushApp(name: String, tokenSHA256: [UInt8]) async throws -> PushAppRecord {
        do {
            let rows = try await client.query("""
                INSERT INTO push_apps (name, token_sha256) VALUES (\(name), \(ByteBuffer(bytes: tokenSHA256))) RETURNING created_at
                """, logger: logger)
            for try await created in rows.decode(Date.self) { return PushAppRecord(name: name, created_at: created, revoked_at: nil) }
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
            throw StoreError.conflict("push application \(name) already exists (revoked ones keep their name)")
        }
        throw StoreError.notFound("inserted push application")
    }

    public func pushApps() async throws -> [PushAppRecord] {
        var apps: [PushAppRecord] = []
        for try await (name, created, revoked) in try await client.query(
            "SELECT name, created_at, revoked_at FROM push_apps ORDER BY name", logger: logger
        ).decode((String, Date, Date?).self) { apps.append(PushAppRecord(name: name, created_at: created, revoked_at: revoked)) }
        return apps
    }

    /// Revokes a push application (at once: its token is looked up at every request);
    /// false if there is none, or it was revoked already.
    public func revokePushApp(name: String) async throws -> Bool {
        let rows = try await client.query(
            "UPDATE push_apps SET revoked_at = now() WHERE name = \(name) AND revoked_at IS NULL RETURNING name", logger: logger)
        for try await _ in rows { return true }
        return false
    }

    /// The name of the live push application whose token has this SHA-256, or nil.
    public func pushApp(tokenSHA256: [UInt8]) async throws -> String? {
        for try await name in try await client.query(
            "SELECT name FROM push_apps WHERE token_sha256 = \(ByteBuffer(bytes: tokenSHA256)) AND revoked_at IS NULL", logger: logger
        ).decode(String.self) { return name }
        return nil
    }
}
