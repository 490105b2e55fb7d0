import BrambleCore
import Foundation

/// The Administration Service's API behind the `bramble` CLI (bearer token).
public enum AdminAPI {
    public static let users = "/admin/users"
    public static func user(_ email: String) -> String { users + "/" + pathEscaped(email) }
    public static let devices = "/admin/devices"
    public static func device(_ pin: String) -> String { devices + "/" + pathEscaped(pin) }
    public static let pair = "/admin/pair"
    public static let thresholds = "/admin/pair/thresholds"
    public static func events(sinceUnixMs: Int64? = nil, limit: Int) -> String {
        "/admin/pair/events?limit=\(limit)" + (sinceUnixMs.map { "&since_ms=\($0)" } ?? "")
    }
    public static let failover = "/admin/failover"

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
    public init(email: String, display_name: String, created_at: Date, devices: [String]) {
        (self.email, self.display_name, self.created_at, self.devices) = (email, display_name, created_at, devices)
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
