import BrambleCore
import Foundation

/// A user as the admin API shows it.
public struct UserRecord: Codable, Sendable, Equatable {
    public var email: String
    public var displayName: String
    public var createdAt: Date
    public var devices: [String]

    enum CodingKeys: String, CodingKey {
        case email, devices
        case displayName = "display_name"
        case createdAt = "created_at"
    }
}

/// A device as the admin API shows it (never its key).
public struct DeviceRecord: Codable, Sendable, Equatable {
    public var pin: String
    public var email: String
    public var status: String
    /// Items committed for this device so far (its highest sequence number).
    public var lastSeq: Int64
    /// Items not yet acknowledged.
    public var pending: Int64
    public var createdAt: Date

    enum CodingKeys: String, CodingKey {
        case pin, email, status, pending
        case lastSeq = "last_seq"
        case createdAt = "created_at"
    }
}

/// One device's copy of a push, as `GET /push/{id}` shows it.
public struct PushItemStatus: Codable, Sendable, Equatable {
    public var pin: String
    public var seq: Int64
    public var state: String
}

/// An item of the outbound queue as the Dispatcher holds it.
public struct OutboundItem: Sendable {
    public var pin: PIN
    public var seq: UInt64
    public var pushID: UUID
    public var subject: String
    public var body: String
    public var expiresAt: Date
}

/// What an application asks to push.
public struct PushRequest: Sendable {
    public enum Recipient: Sendable, Hashable {
        case email(String)
        case pin(PIN)
    }
    public var to: Recipient
    public var subject: String
    public var body: String
    /// Seconds until an undelivered item expires.
    public var expiresIn: Int
}

/// Delivery states an item moves through after it is committed (it starts `queued`).
public enum DeliveryState: String, Sendable, Comparable {
    case sent, expired, acked
    var rank: Int { switch self { case .sent: 0; case .expired: 1; case .acked: 2 } }
    public static func < (a: Self, b: Self) -> Bool { a.rank < b.rank }
}

/// One item reaching a delivery state, as the Dispatcher reports it for recording.
public struct DeliveryTransition: Sendable, Equatable {
    public var pin: PIN
    public var seq: UInt64
    public var state: DeliveryState
}

public enum PushOutcome: Sendable {
    case accepted(pushID: UUID, items: [OutboundItem])
    case unknownRecipient
}

public struct StoreError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable { case conflict, notFound, readOnly }
    public let kind: Kind
    public let description: String

    static func conflict(_ d: String) -> StoreError { StoreError(kind: .conflict, description: d) }
    static func notFound(_ d: String) -> StoreError { StoreError(kind: .notFound, description: d) }
    /// The host answered, but it is a standby (in recovery): the primary is elsewhere.
    static let readOnly = StoreError(kind: .readOnly, description: "the database host is a read-only standby")
}
