import Foundation

/// An IT policy as `bramble policy list|show` gives it (its rules are `ITPolicy`'s).
public struct PolicyRecord: Codable, Sendable, Equatable {
    public var name: String
    public var version: Int64
    public var password_required: Bool
    public var min_password_length: Int
    public var lock_timeout_minutes: Int
    public var allowed_services: [String]
    /// Users it is assigned to (for "default": users without another).
    public var users: Int64
    /// Their devices by the state of this policy on them.
    public var devices_applied: Int64
    public var devices_pending: Int64
    public var devices_refused: Int64
    /// nil for the built-in default no administrator has changed yet.
    public var updated_at: Date?
    public init(name: String, version: Int64, password_required: Bool, min_password_length: Int, lock_timeout_minutes: Int,
                allowed_services: [String], users: Int64, devices_applied: Int64, devices_pending: Int64, devices_refused: Int64, updated_at: Date?) {
        (self.name, self.version, self.password_required, self.min_password_length) = (name, version, password_required, min_password_length)
        (self.lock_timeout_minutes, self.allowed_services, self.users) = (lock_timeout_minutes, allowed_services, users)
        (self.devices_applied, self.devices_pending, self.devices_refused, self.updated_at) = (devices_applied, devices_pending, devices_refused, updated_at)
    }
}

public struct PolicyList: Codable, Sendable, Equatable {
    public var policies: [PolicyRecord]
    public init(policies: [PolicyRecord]) { self.policies = policies }
}

/// `PUT /admin/policies/{name}`: the rules to change (absent: unchanged; a new policy
/// starts from the built-in rules). Every change raises the version and reaches every
/// device of the policy's users.
public struct PolicyChange: Codable, Sendable, Equatable {
    public var password_required: Bool?
    public var min_password_length: Int?
    public var lock_timeout_minutes: Int?
    public var allowed_services: [String]?
    public init(password_required: Bool? = nil, min_password_length: Int? = nil, lock_timeout_minutes: Int? = nil, allowed_services: [String]? = nil) {
        (self.password_required, self.min_password_length, self.lock_timeout_minutes, self.allowed_services) =
            (password_required, min_password_length, lock_timeout_minutes, allowed_services)
    }
}

/// `POST /admin/policies/{name}/assign`: these users get the policy ("default": back to
/// the default).
public struct PolicyAssignment: Codable, Sendable, Equatable {
    public var emails: [String]
    public init(emails: [String]) { self.emails = emails }
    public static let maxUsers = 1_000
}

public struct PolicyAssigned: Codable, Sendable, Equatable {
    public var policy: String
    public var users: [String]
    /// Their active devices, to which the policy is now on its way.
    public var devices: Int64
    public init(policy: String, users: [String], devices: Int64) { (self.policy, self.users, self.devices) = (policy, users, devices) }
}

/// The IT policy on one device.
public struct DevicePolicyState: Codable, Sendable, Equatable {
    public var name: String
    public var version: Int64
    /// due (waiting to be sent), sent, applied or refused.
    public var state: String
    /// Why the device refused it.
    public var detail: String?
    public var updated_at: Date
    public init(name: String, version: Int64, state: String, detail: String?, updated_at: Date) {
        (self.name, self.version, self.state, self.detail, self.updated_at) = (name, version, state, detail, updated_at)
    }
}

/// `POST /admin/devices/{pin}/lock`: the new device password (read from a file by the
/// CLI, sent over the API's TLS; the node keeps only a verifier).
public struct DeviceLockRequest: Codable, Sendable, Equatable {
    public var password: String
    public init(password: String) { self.password = password }
}

/// An IT administration command and what became of it.
public struct DeviceCommandRecord: Codable, Sendable, Equatable {
    public var id: Int64
    public var pin: String
    /// lock, wipe or wipe-work.
    public var command: String
    /// queued (waiting for the primary), sent, confirmed (by the device) or refused (by
    /// the device, or left undone because the device was wiped first).
    public var state: String
    /// Why it was refused.
    public var detail: String?
    public var created_at: Date
    public var sent_at: Date?
    public var confirmed_at: Date?
    public init(id: Int64, pin: String, command: String, state: String, created_at: Date, sent_at: Date?, confirmed_at: Date?) {
        (self.id, self.pin, self.command, self.state, self.created_at, self.sent_at, self.confirmed_at) = (id, pin, command, state, created_at, sent_at, confirmed_at)
    }
}
