import Foundation

/// The push API (BES's MDS push, port 8080): `POST /push` with a `PushRequestBody`, and
/// optionally an `Idempotency-Key` header; `GET /push/{id}`.
public enum PushAPI {
    public static let path = "/push"
    /// The request header that makes a retry safe (IETF httpapi draft
    /// "The Idempotency-Key HTTP Header Field"): a request repeated with the same key gets
    /// the first one's answer and never commits twice. Keys are kept 24 hours.
    public static let idempotencyKeyHeader = "Idempotency-Key"
    /// Set to "true" on an answer replayed from an earlier request with the same key.
    public static let replayedHeader = "Idempotent-Replayed"
    /// 1–255 printable ASCII characters.
    public static func isValidIdempotencyKey(_ key: String) -> Bool {
        (1...255).contains(key.utf8.count) && key.utf8.allSatisfy { (0x21...0x7e).contains($0) }
    }
    /// How long a node remembers an Idempotency-Key.
    public static let idempotencyRetentionHours = 24
    public static func statusPath(_ id: String) -> String { "/push/" + id }
}

public struct PushRequestBody: Codable, Sendable, Equatable {
    /// An e-mail address (every active device of that user) or a PIN.
    public var to: String
    public var subject: String?
    public var body: String?
    /// Seconds until an undelivered item expires (default 7 days).
    public var expires_in: Int?
    public init(to: String, subject: String? = nil, body: String? = nil, expires_in: Int? = nil) {
        (self.to, self.subject, self.body, self.expires_in) = (to, subject, body, expires_in)
    }
}

/// 202: committed; `devices` are the PINs it was queued for.
public struct PushAccepted: Codable, Sendable, Equatable {
    public var id: String
    public var devices: [String]
    public init(id: String, devices: [String]) { (self.id, self.devices) = (id, devices) }
}

public enum DeliveryStateName: String, Codable, Sendable, Comparable {
    case queued, sent, expired, acked
    var rank: Int { switch self { case .queued: 0; case .sent: 1; case .expired: 2; case .acked: 3 } }
    public static func < (a: Self, b: Self) -> Bool { a.rank < b.rank }
}

public struct PushItemStatus: Codable, Sendable, Equatable {
    public var pin: String
    public var seq: Int64
    public var state: DeliveryStateName
    public init(pin: String, seq: Int64, state: DeliveryStateName) { (self.pin, self.seq, self.state) = (pin, seq, state) }
}

public struct PushStatus: Codable, Sendable, Equatable {
    public var id: String
    /// The least advanced state of its devices' copies (`expired` only when nothing is
    /// still on its way).
    public var state: DeliveryStateName
    public var devices: [PushItemStatus]
    public init(id: String, devices: [PushItemStatus]) {
        self.id = id
        self.devices = devices
        let states = Set(devices.map(\.state))
        state = states.contains(.queued) ? .queued : states.contains(.sent) ? .sent : states.contains(.expired) ? .expired : .acked
    }
}
