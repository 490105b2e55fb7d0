import Crypto

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What wired activation hands to a device (BES: activation over USB through Desktop
/// Manager): its PIN, its owner, the SRP ID of its BES, and its 256-bit master key.
/// Stored as JSON with mode 0600; `description` never shows the key.
public struct DeviceCredential: Codable, Sendable, Equatable, CustomStringConvertible {
    public var pin: String
    public var email: String
    public var srpID: String
    /// Base64 of the 32-byte master key.
    public var masterKey: String
    /// Base64 of the domain's Ed25519 public key: the device applies only IT policies it
    /// signed (pinned at activation). nil in a credential from before the Policy Service.
    public var domainKey: String?

    enum CodingKeys: String, CodingKey {
        case pin, email
        case srpID = "srp_id"
        case masterKey = "master_key"
        case domainKey = "domain_key"
    }

    public init(pin: PIN, email: String, srpID: String, masterKey: SymmetricKey, domainKey: [UInt8]? = nil) {
        self.pin = pin.description
        self.email = email
        self.srpID = srpID
        self.masterKey = masterKey.withUnsafeBytes { Data($0).base64EncodedString() }
        self.domainKey = domainKey.map { Data($0).base64EncodedString() }
    }

    /// The domain's public key, if the credential has a valid one.
    public var domainPublicKey: [UInt8]? {
        guard let domainKey, let data = Data(base64Encoded: domainKey), data.count == Activation.domainKeyLength else { return nil }
        return Array(data)
    }

    public var description: String { "DeviceCredential(pin: \(pin), email: \(email), srp_id: \(srpID))" }

    /// Checks every field; the error names the field and never echoes the key.
    public func validated() throws -> (pin: PIN, key: SymmetricKey) {
        guard let pin = PIN(self.pin) else { throw CredentialError("pin '\(self.pin)' is not 1–8 hex digits") }
        guard SRPIdentifier.isValid(srpID) else { throw CredentialError("srp_id is not a valid SRP identifier") }
        guard let key = SymmetricKey(base64: masterKey) else {
            throw CredentialError("master_key is not base64 of 32 bytes")
        }
        return (pin, key)
    }
}

public struct CredentialError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ d: String) { description = "invalid credential: " + d }
}

extension SymmetricKey {
    /// A 256-bit key from its base64 text, or nil if it is not exactly 32 bytes.
    public init?(base64: String) {
        guard let data = Data(base64Encoded: base64), data.count == 32 else { return nil }
        self.init(data: data)
    }

    public var base64: String { withUnsafeBytes { Data($0).base64EncodedString() } }
}

// SymmetricKey is an immutable value (copy-on-write secure storage) that swift-crypto 3
// does not yet mark Sendable.
extension SymmetricKey: @retroactive @unchecked Sendable {}
