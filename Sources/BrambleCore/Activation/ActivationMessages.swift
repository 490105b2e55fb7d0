import Crypto

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Over-the-air activation (seeds 001 and 002): the device and its BES agree on the
/// device's master key through the user's own mailbox, with CPace on the activation
/// password, then the Policy Service sends the signed IT policy and the service books.
///
/// The four messages, each in a `Frame.activation` and encoded as payload fields:
/// 1. `ActivationRequest` (device → relay → SMTP → the user's mailbox, as the `etp.dat`
///    attachment): session id, PIN, e-mail address, the device's CPace share Ya.
/// 2. `ActivationResponse` (BES → relay → device): the BES's SRP ID and domain signing
///    key (its associated data ADb), its share Yb, and its key confirmation Tb.
/// 3. `ActivationConfirm` (device → relay → BES): the device's confirmation Ta.
/// 4. `ActivationResult` (BES → relay → device): the device is provisioned, or refused.
///
/// CPace binds the e-mail address and PIN in its channel identifier and both sides'
/// associated data in the transcript, so the domain key the device pins comes from the
/// party that knew the password.
public enum Activation {
    /// CPace's session id: 16 random bytes from the device (a seen one is refused).
    public static let sessionIDLength = 16
    /// An Ed25519 public key.
    public static let domainKeyLength = 32
    /// A request or answer is a few hundred bytes; this bounds what is read of one.
    public static let maxMessageLength = 2_048
    public static let maxReasonLength = 256
    /// An address as SMTP carries it.
    public static let maxEmailLength = 254
    /// The attachment's name, as BES's activation mail had it.
    public static let attachmentName = "etp.dat"
    /// The header the relay puts on the request mail (the Agent's fetch leaves such mail
    /// to the activation check, which removes it).
    public static let mailHeader = "X-Bramble-Activation"
    /// The relay's seal on a request mail, one per SRP ID it serves: `SRP_ID BASE64`.
    /// Anyone can mail a user an etp.dat; only mail the relay sealed is answered and
    /// counted, so junk mailed past the relay can neither use up the user's five runs
    /// nor make the node work.
    public static let sealHeader = "X-Bramble-Activation-Seal"
    /// A request mail received longer ago than this is removed unanswered and uncounted:
    /// its device's connection is gone (the relay closes an activating connection after
    /// two minutes), and it may predate the password (typed before it was set).
    public static let requestLifetimeSeconds: TimeInterval = 180

    /// HMAC-SHA256 of the etp.dat under a key derived from the SRP key (HKDF, its own
    /// label): the relay and the SRP ID's nodes hold it, nobody else.
    public static func seal(etp: [UInt8], srpKey: SymmetricKey) -> [UInt8] {
        let key = HKDF<SHA256>.deriveKey(inputKeyMaterial: srpKey, salt: Array("bramble-activation-seal".utf8),
                                         info: Array("v1".utf8), outputByteCount: 32)
        return Array(HMAC<SHA256>.authenticationCode(for: etp, using: key))
    }

    /// Whether the request mail's seal header lines (`SRP_ID BASE64`) hold a valid seal
    /// of `etp` for `srpID`.
    public static func isSealed(etp: [UInt8], headers: String, srpID: String, srpKey: SymmetricKey) -> Bool {
        let expected = seal(etp: etp, srpKey: srpKey)
        for line in headers.split(whereSeparator: \.isNewline) {
            guard let colon = line.firstIndex(of: ":"), line[..<colon].lowercased() == sealHeader.lowercased() else { continue }
            let fields = line[line.index(after: colon)...].split(separator: " ")
            guard fields.count == 2, fields[0] == srpID, let mac = Data(base64Encoded: String(fields[1])), mac.count == expected.count else { continue }
            // Constant time: every byte compared.
            if zip(mac, expected).reduce(0, { $0 | ($1.0 ^ $1.1) }) == 0 { return true }
        }
        return false
    }

    /// The CPace channel identifier: who is being activated (the e-mail address, as the
    /// user typed it and the node looks it up, and the PIN).
    public static func channelIdentifier(email: String, pin: PIN) -> [UInt8] {
        Array("bramble-activation-v1".utf8) + lengthPrefixed(Array(email.utf8)) + lengthPrefixed(pin.bigEndianBytes)
    }

    /// The device's master key: HKDF-SHA256 of CPace's ISK, salted with the session id,
    /// with the whole transcript (both shares and both sides' associated data) in its info.
    public static func masterKey(isk: [UInt8], request: ActivationRequest, response: ActivationResponse) -> SymmetricKey {
        let transcript = SHA256.hash(data: lengthPrefixed(request.share) + lengthPrefixed(request.associatedData)
            + lengthPrefixed(response.share) + lengthPrefixed(response.associatedData))
        return HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: isk), salt: request.sessionID,
                                      info: Array("bramble-master-key-v1".utf8) + Array(transcript), outputByteCount: 32)
    }

    /// A message's fields, once its length is within bounds.
    static func fields(_ bytes: [UInt8], _ what: String) throws(PayloadError) -> PayloadFields {
        guard bytes.count <= maxMessageLength else { throw PayloadError("\(what) over \(maxMessageLength) bytes") }
        return try PayloadFields(bytes)
    }

    static func lengthPrefixed(_ bytes: [UInt8]) -> [UInt8] {
        [UInt8(truncatingIfNeeded: bytes.count >> 8), UInt8(truncatingIfNeeded: bytes.count)] + bytes
    }

    /// An e-mail address in an activation message, which the relay puts in an SMTP
    /// command and a header: bounded; one `@` between a non-empty local part and a dotted
    /// domain; no space or control character (C0, DEL, C1, line separators); none of the
    /// characters that make a source route, a list or a relay hop (`<>()[],;:"\%!`).
    public static func isAcceptableEmail(_ s: String) -> Bool {
        let bytes = Array(s.utf8)
        guard (3...maxEmailLength).contains(bytes.count), bytes.count(where: { $0 == 0x40 }) == 1,
              let at = bytes.firstIndex(of: 0x40), at > 0 else { return false }
        let domain = bytes[(at + 1)...]
        guard domain.contains(0x2E), domain.first != 0x2E, domain.last != 0x2E else { return false }
        return !s.unicodeScalars.contains { isControl($0) || $0.properties.isWhitespace || "<>()[],;:\"\\%!".unicodeScalars.contains($0) }
    }

    /// C0, DEL, C1 and the Unicode line and paragraph separators.
    static func isControl(_ u: Unicode.Scalar) -> Bool {
        u.value < 0x20 || (0x7F...0x9F).contains(u.value) || u.value == 0x2028 || u.value == 0x2029
    }

    /// Text bound for a header or a terminal, without control characters.
    public static func printable(_ s: String) -> String {
        String(String.UnicodeScalarView(s.unicodeScalars.filter { !isControl($0) }))
    }

    /// The domain of an acceptable address, lower-cased.
    public static func domain(of email: String) -> String? {
        guard isAcceptableEmail(email), let at = email.firstIndex(of: "@") else { return nil }
        return email[email.index(after: at)...].lowercased()
    }
}

/// The device's activation request, the content of `etp.dat`.
/// Tags: 1 version, 2 session id, 3 PIN, 4 e-mail address, 5 CPace share Ya.
public struct ActivationRequest: Equatable, Sendable {
    public static let version: UInt64 = 1
    public var sessionID: [UInt8]
    public var pin: PIN
    public var email: String
    public var share: [UInt8]

    public init(sessionID: [UInt8], pin: PIN, email: String, share: [UInt8]) {
        (self.sessionID, self.pin, self.email, self.share) = (sessionID, pin, email, share)
    }

    /// ADa: what the device says of itself, bound into the transcript.
    public var associatedData: [UInt8] { Activation.lengthPrefixed(pin.bigEndianBytes) + Activation.lengthPrefixed(Array(email.utf8)) }

    public func encoded() -> [UInt8] {
        var w = PayloadWriter()
        w.uint(1, Self.version)
        w.bytes(2, sessionID)
        w.uint(3, UInt64(pin.value))
        w.string(4, email, max: Activation.maxEmailLength)
        w.bytes(5, share)
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(PayloadError) -> ActivationRequest {
        let f = try Activation.fields(bytes, "activation request")
        let version = try f.requiredUInt(1, "version")
        guard version == Self.version else { throw PayloadError("activation request version \(version) is not \(Self.version)") }
        let sid = try f.fixed(2, Activation.sessionIDLength, "session_id")
        let rawPIN = try f.requiredUInt(3, "pin")
        guard rawPIN <= UInt64(UInt32.max) else { throw PayloadError("pin out of range") }
        let email = try f.requiredString(4, max: Activation.maxEmailLength, "email")
        guard Activation.isAcceptableEmail(email) else { throw PayloadError("email is not an e-mail address") }
        return ActivationRequest(sessionID: sid, pin: PIN(UInt32(rawPIN)), email: email, share: try f.fixed(5, 32, "share"))
    }
}

/// The BES's answer to a request. Tags: 1 session id, 2 SRP ID, 3 domain signing key
/// (Ed25519, public), 4 share Yb, 5 confirmation Tb.
public struct ActivationResponse: Equatable, Sendable {
    public var sessionID: [UInt8]
    public var srpID: String
    public var domainKey: [UInt8]
    public var share: [UInt8]
    public var confirmation: [UInt8]

    public init(sessionID: [UInt8], srpID: String, domainKey: [UInt8], share: [UInt8], confirmation: [UInt8]) {
        (self.sessionID, self.srpID, self.domainKey, self.share, self.confirmation) = (sessionID, srpID, domainKey, share, confirmation)
    }

    /// ADb: which BES answers and the key its IT policies will be signed with.
    public var associatedData: [UInt8] { Activation.lengthPrefixed(Array(srpID.utf8)) + Activation.lengthPrefixed(domainKey) }

    public func encoded() -> [UInt8] {
        var w = PayloadWriter()
        w.bytes(1, sessionID)
        w.string(2, srpID, max: 255)
        w.bytes(3, domainKey)
        w.bytes(4, share)
        w.bytes(5, confirmation)
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(PayloadError) -> ActivationResponse {
        let f = try Activation.fields(bytes, "activation response")
        let srpID = try f.requiredString(2, max: 255, "srp_id")
        guard SRPIdentifier.isValid(srpID) else { throw PayloadError("srp_id is not a valid SRP identifier") }
        return ActivationResponse(sessionID: try f.fixed(1, Activation.sessionIDLength, "session_id"), srpID: srpID,
                                  domainKey: try f.fixed(3, Activation.domainKeyLength, "domain_key"),
                                  share: try f.fixed(4, 32, "share"), confirmation: try f.fixed(5, 64, "confirmation"))
    }
}

/// The device's key confirmation. Tags: 1 session id, 2 confirmation Ta.
public struct ActivationConfirm: Equatable, Sendable {
    public var sessionID: [UInt8]
    public var confirmation: [UInt8]

    public init(sessionID: [UInt8], confirmation: [UInt8]) { (self.sessionID, self.confirmation) = (sessionID, confirmation) }

    public func encoded() -> [UInt8] {
        var w = PayloadWriter()
        w.bytes(1, sessionID)
        w.bytes(2, confirmation)
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(PayloadError) -> ActivationConfirm {
        let f = try Activation.fields(bytes, "activation confirmation")
        return ActivationConfirm(sessionID: try f.fixed(1, Activation.sessionIDLength, "session_id"), confirmation: try f.fixed(2, 64, "confirmation"))
    }
}

/// How the BES ended a run. Tags: 1 session id, 2 accepted, 3 reason (refused).
public struct ActivationResult: Equatable, Sendable {
    public var sessionID: [UInt8]
    public var accepted: Bool
    public var reason: String

    public init(sessionID: [UInt8], accepted: Bool, reason: String = "") {
        (self.sessionID, self.accepted, self.reason) = (sessionID, accepted, reason)
    }

    public func encoded() -> [UInt8] {
        var w = PayloadWriter()
        w.bytes(1, sessionID)
        w.bool(2, accepted)
        if !reason.isEmpty { w.string(3, reason, max: Activation.maxReasonLength) }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(PayloadError) -> ActivationResult {
        let f = try Activation.fields(bytes, "activation result")
        let reason = try f.string(3, max: Activation.maxReasonLength, "reason") ?? ""
        return ActivationResult(sessionID: try f.fixed(1, Activation.sessionIDLength, "session_id"), accepted: try f.bool(2, "accepted"),
                                reason: Activation.printable(reason))
    }
}

extension PayloadFields {
    /// A required field of exactly `length` bytes.
    func fixed(_ tag: UInt8, _ length: Int, _ name: String) throws(PayloadError) -> [UInt8] {
        guard let value = try bytes(tag, max: length, name) else { throw PayloadError("\(name) missing") }
        guard value.count == length else { throw PayloadError("\(name) is \(value.count) bytes, not \(length)") }
        return Array(value)
    }
}
