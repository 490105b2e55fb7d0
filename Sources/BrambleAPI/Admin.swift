import BrambleCore
import Foundation

/// The Administration Service's API behind the `bramble` CLI (bearer token).
public enum AdminAPI {
    public static let users = "/admin/users"
    public static func user(_ email: String) -> String { users + "/" + pathEscaped(email) }
    public static let devices = "/admin/devices"
    public static func device(_ pin: String) -> String { devices + "/" + pathEscaped(pin) }
    /// An IT administration command for a device: "lock", "wipe" or "wipe-work".
    public static func deviceCommand(_ pin: String, _ command: String) -> String { device(pin) + "/" + pathEscaped(command) }
    /// The Policy Service's IT policies.
    public static let policies = "/admin/policies"
    public static func policy(_ name: String) -> String { policies + "/" + pathEscaped(name) }
    public static func policyAssignment(_ name: String) -> String { policy(name) + "/assign" }
    public static let pair = "/admin/pair"
    public static let thresholds = "/admin/pair/thresholds"
    public static func events(sinceUnixMs: Int64? = nil, limit: Int) -> String {
        "/admin/pair/events?limit=\(limit)" + (sinceUnixMs.map { "&since_ms=\($0)" } ?? "")
    }
    public static let failover = "/admin/failover"
    /// The Messaging Agent's global filter rules.
    public static let filters = "/admin/filters"
    public static func filter(_ id: Int64) -> String { "\(filters)/\(id)" }
    public static func moveFilter(_ id: Int64) -> String { "\(filters)/\(id)/move" }
    /// The Collaboration Service: the pair's IM limits and the cached sessions.
    public static let im = "/admin/im"

    static func pathEscaped(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(.init(charactersIn: "/"))) ?? s
    }
}

public struct NewUser: Codable, Sendable, Equatable {
    public var email: String
    public var name: String?
    public init(email: String, name: String? = nil) { (self.email, self.name) = (email, name) }
}

public struct UserRecord: Codable, Sendable, Equatable {
    public var email: String
    public var display_name: String
    public var created_at: Date
    /// The user's devices' PINs.
    public var devices: [String]
    /// The Messaging Agent's watch of the user's INBOX; nil until first checked.
    public var mailbox: MailboxWatch?
    /// Whether the user's devices and mailbox are reconciled (read, deleted, filed) both
    /// ways; nil from a server that does not say.
    public var reconciliation: Bool?
    /// Whether the user may use instant messaging; nil from a server that does not say.
    public var im: Bool?
    /// Over-the-air activation; nil from a server that does not say.
    public var activation: ActivationStatus?
    public init(email: String, display_name: String, created_at: Date, devices: [String], mailbox: MailboxWatch? = nil,
                reconciliation: Bool? = nil, im: Bool? = nil, activation: ActivationStatus? = nil) {
        (self.email, self.display_name, self.created_at, self.devices, self.mailbox) = (email, display_name, created_at, devices, mailbox)
        (self.reconciliation, self.im, self.activation) = (reconciliation, im, activation)
    }
}

/// A user's settings to change (`PATCH /admin/users/{email}`); nil: left as it is.
public struct UserSettings: Codable, Sendable, Equatable {
    public var reconciliation: Bool?
    public var im: Bool?
    public init(reconciliation: Bool? = nil, im: Bool? = nil) { (self.reconciliation, self.im) = (reconciliation, im) }
}

/// The pair's IM limits (`GET /admin/im`, and `PATCH` to change them) and its cached
/// sessions. `max_sessions` nil: no maximum (this server's own limit applies, "Failed"
/// past it); `idle_timeout_ms` nil: sessions never idle out.
public struct IMStatus: Codable, Sendable, Equatable {
    public struct Session: Codable, Sendable, Equatable {
        public var pin: String
        public var jid: String
        public var presence: String
        public var since: Date
        public var last_activity: Date
        public init(pin: String, jid: String, presence: String, since: Date, last_activity: Date) {
            (self.pin, self.jid, self.presence, self.since, self.last_activity) = (pin, jid, presence, since, last_activity)
        }
    }
    public var max_sessions: Int?
    public var idle_timeout_ms: Int?
    public var sessions: [Session]
    public init(max_sessions: Int?, idle_timeout_ms: Int?, sessions: [Session]) {
        (self.max_sessions, self.idle_timeout_ms, self.sessions) = (max_sessions, idle_timeout_ms, sessions)
    }
}

/// A change of the pair's IM limits: each given value is set; `clear_*` removes one.
public struct IMSettingsChange: Codable, Sendable, Equatable {
    public var max_sessions: Int?
    public var idle_timeout_ms: Int?
    public var clear_max_sessions: Bool?
    public var clear_idle_timeout: Bool?
    public init(max_sessions: Int? = nil, idle_timeout_ms: Int? = nil, clear_max_sessions: Bool? = nil, clear_idle_timeout: Bool? = nil) {
        (self.max_sessions, self.idle_timeout_ms, self.clear_max_sessions, self.clear_idle_timeout) = (max_sessions, idle_timeout_ms, clear_max_sessions, clear_idle_timeout)
    }
}

/// A mailbox's watermark and its last check, as the Messaging Agent recorded them.
public struct MailboxWatch: Codable, Sendable, Equatable {
    public var uid_validity: UInt64?
    /// The last UID enqueued (or passed over) for the user's devices.
    public var last_uid: UInt64
    /// The last check that reached the mailbox.
    public var checked_at: Date?
    /// When the last mail was enqueued, and its Message-ID.
    public var last_mail_at: Date?
    public var last_message_id: String?
    /// Why the last check failed (nil when it worked), and when.
    public var last_error: String?
    public var error_at: Date?
    public init(uid_validity: UInt64?, last_uid: UInt64, checked_at: Date?, last_mail_at: Date?, last_message_id: String?,
                last_error: String?, error_at: Date?) {
        (self.uid_validity, self.last_uid, self.checked_at, self.last_mail_at) = (uid_validity, last_uid, checked_at, last_mail_at)
        (self.last_message_id, self.last_error, self.error_at) = (last_message_id, last_error, error_at)
    }
}

public struct UserList: Codable, Sendable, Equatable {
    public var users: [UserRecord]
    public init(users: [UserRecord]) { self.users = users }
}

public struct Removed: Codable, Sendable, Equatable {
    public var removed: String
    public init(removed: String) { self.removed = removed }
}

public struct NewDevice: Codable, Sendable, Equatable {
    public var email: String
    public var pin: String
    public init(email: String, pin: String) { (self.email, self.pin) = (email, pin) }
}

/// A device as the admin API shows it (never its key).
public struct DeviceRecord: Codable, Sendable, Equatable {
    public var pin: String
    public var email: String
    public var status: String
    /// Items committed for this device so far (its highest sequence number).
    public var last_seq: Int64
    /// Items not yet acknowledged.
    public var pending: Int64
    public var created_at: Date
    /// The IT policy the device was last sent: its name, version and state (sent, applied,
    /// refused, or due: waiting to be sent); nil if it never had one.
    public var policy: DevicePolicyState?
    /// When a lock command was confirmed by the device (nil: never locked).
    public var locked_at: Date?
    /// "all" or "work" once the device confirmed a wipe (then `status` is "wiped").
    public var wiped: String?
    public var wiped_at: Date?
    /// Its IT administration commands, newest first (at most 10).
    public var commands: [DeviceCommandRecord]?
    public init(pin: String, email: String, status: String, last_seq: Int64, pending: Int64, created_at: Date) {
        (self.pin, self.email, self.status, self.last_seq, self.pending, self.created_at) = (pin, email, status, last_seq, pending, created_at)
    }
}

public struct DeviceList: Codable, Sendable, Equatable {
    public var devices: [DeviceRecord]
    public init(devices: [DeviceRecord]) { self.devices = devices }
}

/// 201 to `POST /admin/devices`: the device and its credential (wired activation).
public struct Provisioned: Codable, Sendable, Equatable {
    public var device: DeviceRecord
    public var credential: DeviceCredential
    public init(device: DeviceRecord, credential: DeviceCredential) { (self.device, self.credential) = (device, credential) }
}

/// `POST /admin/filters`: a rule (`field`: from, to, cc, subject, importance; `action`:
/// forward, forward_high_priority, do_not_forward), at `position` (default: last).
public struct NewFilter: Codable, Sendable, Equatable {
    public var field: String
    public var contains: String
    public var action: String
    public var position: Int?
    public init(field: String, contains: String, action: String, position: Int? = nil) {
        (self.field, self.contains, self.action, self.position) = (field, contains, action, position)
    }
}

public struct FilterList: Codable, Sendable, Equatable {
    public var filters: [MailFilterRule]
    public init(filters: [MailFilterRule]) { self.filters = filters }
}

/// `POST /admin/filters/ID/move`.
public struct FilterMove: Codable, Sendable, Equatable {
    public var position: Int
    public init(position: Int) { self.position = position }
}

/// What the API and the CLI accept as an e-mail address.
public enum Email {
    /// One `@`, a non-empty local part, a dotted domain, no spaces: enough to catch typos.
    /// No `*` either: the Messaging Agent logs in to a mailbox as `EMAIL*SERVICE`. No
    /// control character (NUL included, which the database's text refuses). Checked on
    /// bytes and scalars, never Characters: an "@" that a combining mark follows is one
    /// Character that is not "@", and a second "@" hidden so would reach Dovecot's login.
    public static func isPlausible(_ s: String) -> Bool {
        let bytes = Array(s.utf8)
        guard bytes.count <= 254, bytes.count(where: { $0 == 0x40 }) == 1, let at = bytes.firstIndex(of: 0x40) else { return false }
        let domain = bytes[(at + 1)...]
        guard at > 0, domain.contains(0x2E), domain.first != 0x2E, domain.last != 0x2E else { return false }
        return !s.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) || $0 == "*" || $0.properties.isWhitespace }
    }

    /// The one form an address is stored, looked up and compared in: trimmed, lower-cased,
    /// Unicode NFC. Two spellings of one address (é as one scalar, or as e and a combining
    /// accent) are one user, as the database's byte-wise comparisons then agree with
    /// Swift's canonical equivalence.
    public static func canonical(_ s: String) -> String {
        s.trimmingCharacters(in: .whitespaces).lowercased().precomposedStringWithCanonicalMapping
    }

    /// Free text the API stores (a push's subject and body, a user's name, a filter's
    /// pattern) holds no NUL: PostgreSQL's text cannot, and one such push would fail the
    /// whole group commit it was batched in.
    public static func hasNUL(_ s: String) -> Bool { s.utf8.contains(0) }
}

/// Push applications: each holds its own bearer token, good only for `POST /push` and its
/// own pushes' `GET /push/{id}`, and revocable on its own; the admin token stays with the operators.
extension AdminAPI {
    public static let apps = "/admin/apps"
    public static func app(_ name: String) -> String { apps + "/" + pathEscaped(name) }
}

/// A push application's token: `bpa_` and 256 random bits in unpadded base64url (43
/// characters); the prefix tells a leaked token's kind.
public enum PushAppToken {
    public static let prefix = "bpa_"
    public static func isWellFormed(_ token: String) -> Bool {
        token.utf8.count == prefix.utf8.count + 43 && token.hasPrefix(prefix) && token.utf8.dropFirst(prefix.utf8.count).allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2D || c == 0x5F
        }
    }
}

public struct NewPushApp: Codable, Sendable, Equatable {
    public var name: String
    public init(name: String) { self.name = name }
    /// 1–64 letters, digits, '.', '-' or '_'.
    public static func isValidName(_ name: String) -> Bool {
        (1...64).contains(name.utf8.count) && name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2E || c == 0x2D || c == 0x5F
        }
    }
}

/// What `POST /admin/apps` answers, once: the token is not stored (only its SHA-256) and
/// cannot be shown again.
public struct PushAppCreated: Codable, Sendable, Equatable {
    public var name: String
    public var token: String
    public var created_at: Date
    public init(name: String, token: String, created_at: Date) { (self.name, self.token, self.created_at) = (name, token, created_at) }
}

public struct PushAppRecord: Codable, Sendable, Equatable {
    public var name: String
    public var created_at: Date
    /// When it was revoked; its token has pushed nothing since.
    public var revoked_at: Date?
    public init(name: String, created_at: Date, revoked_at: Date?) { (self.name, self.created_at, self.revoked_at) = (name, created_at, revoked_at) }
}

public struct PushAppList: Codable, Sendable, Equatable {
    public var apps: [PushAppRecord]
    public init(apps: [PushAppRecord]) { self.apps = apps }
}

/// Device master keys at rest: after a rotation of the key-encryption key, `POST` seals
/// every key still under the previous KEK under the new one.
extension AdminAPI {
    public static let resealKeys = "/admin/keys/reseal"
}

public struct KeysResealed: Codable, Sendable, Equatable {
    /// How many master keys were sealed again under the new key-encryption key.
    public var resealed: Int
    public init(resealed: Int) { self.resealed = resealed }
}
