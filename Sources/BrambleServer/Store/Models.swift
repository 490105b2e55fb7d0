import BrambleCore
import Crypto
import Foundation

/// An item of the outbound queue as the Dispatcher holds it.
public struct OutboundItem: Sendable {
    public var pin: PIN
    public var seq: UInt64
    public var pushID: UUID
    public var subject: String
    public var body: String
    public var expiresAt: Date
    /// What the item is: a push (sealed from `pushID`, `subject` and `body`), or a mail or
    /// More chunk (sealed from `payload`, its encoded form).
    public var service: DataFrame.Service = .push
    public var payload: [UInt8]? = nil
    /// When it was committed (the database's `created_at` once reloaded): the start of
    /// its delivery latency and of its age while unacknowledged.
    public var createdAt = Date()

    /// The bytes the Dispatcher seals.
    var plaintext: [UInt8] {
        payload ?? PushItem(pushID: pushID.uuidString.lowercased(), subject: subject, body: body).encoded()
    }
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
    /// The client's `Idempotency-Key`, if it sent one.
    public var idempotencyKey: String?
    /// The push application it comes from (nil: the operator's admin token); the
    /// application may read back its own pushes' state, and only those.
    public var pushApp: String?

    public init(to: Recipient, subject: String, body: String, expiresIn: Int) {
        (self.to, self.subject, self.body, self.expiresIn) = (to, subject, body, expiresIn)
    }

    /// What a retry under the same key must repeat exactly (SHA-256, hex).
    var fingerprint: String {
        let recipient = switch to { case .email(let e): "e:" + e; case .pin(let p): "p:" + p.description }
        let canonical = [recipient, subject, body, String(expiresIn)].map { "\($0.utf8.count):\($0)" }.joined()
        return SHA256.hash(data: Array(canonical.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}

public enum PushOutcome: Sendable {
    /// Committed (now, or by an earlier request with the same key: `replayed`); the PINs.
    case accepted(pushID: UUID, devices: [String], replayed: Bool)
    case unknownRecipient
    /// The Idempotency-Key was used for a different push.
    case keyReused
    /// Another request with the same Idempotency-Key is being committed now.
    case keyInProgress
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

public struct StoreError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable { case conflict, notFound, readOnly }
    public let kind: Kind
    public let description: String

    static func conflict(_ d: String) -> StoreError { StoreError(kind: .conflict, description: d) }
    static func notFound(_ d: String) -> StoreError { StoreError(kind: .notFound, description: d) }
    /// The host answered, but it is a standby (in recovery): the primary is elsewhere.
    static let readOnly = StoreError(kind: .readOnly, description: "the database host is a read-only standby")
}
