import Crypto
import Foundation

/// Other secrets the nodes keep in the database under the same key-encryption key: an IM
/// login's password while its request waits, and the SCRAM keys a cached IM session logs
/// back in with. Each is bound to its purpose and PIN (additional data), so a sealed value
/// cannot be moved to another device or read as another kind of secret.
/// Text form: `s1.` + base64(nonce ‖ ciphertext ‖ tag).
extension MasterKeyVault {
    public static let secretPrefix = "s1."

    public enum SecretPurpose: String, Sendable {
        case imPassword = "bramble-im-password-v1"
        case imSCRAMKeys = "bramble-im-scram-keys-v1"
        /// An activation password's secret (scrypt), bound to the user's address.
        case activationSecret = "bramble-activation-secret-v1"
        /// A CPace run's ISK while the device's key confirmation is awaited, bound to the
        /// run's session id.
        case activationISK = "bramble-activation-isk-v1"
        /// The domain's Ed25519 signing key (IT policies).
        case domainSigningKey = "bramble-domain-signing-key-v1"
    }

    public struct SecretOpenFailure: Error, CustomStringConvertible, Equatable {
        public let pin: PIN
        public var description: String { "a secret of PIN \(pin) does not open under this key-encryption key" }
    }

    public func sealSecret(_ bytes: [UInt8], purpose: SecretPurpose, pin: PIN) -> String {
        sealSecret(bytes, purpose: purpose, context: pin.bigEndianBytes)
    }

    /// Opens under the current KEK, or the previous one during a rotation.
    public func openSecret(_ stored: String, purpose: SecretPurpose, pin: PIN) throws(SecretOpenFailure) -> [UInt8] {
        guard let bytes = openSecret(stored, purpose: purpose, context: pin.bigEndianBytes) else { throw SecretOpenFailure(pin: pin) }
        return bytes
    }

    /// A secret bound to `context` (an address, a session id) rather than a PIN.
    public func sealSecret(_ bytes: [UInt8], purpose: SecretPurpose, context: [UInt8]) -> String {
        let box = try! AES.GCM.seal(bytes, using: currentKEK, authenticating: Array(purpose.rawValue.utf8) + context)
        return Self.secretPrefix + box.combined!.base64EncodedString()
    }

    /// The secret, if it opens only under the previous KEK (a rotation: seal it again).
    public func secretUnderPrevious(_ stored: String, purpose: SecretPurpose, context: [UInt8]) -> [UInt8]? {
        guard let previousKEK, stored.hasPrefix(Self.secretPrefix),
              let combined = Data(base64Encoded: String(stored.dropFirst(Self.secretPrefix.count))),
              let box = try? AES.GCM.SealedBox(combined: combined) else { return nil }
        let additional = Array(purpose.rawValue.utf8) + context
        guard (try? AES.GCM.open(box, using: currentKEK, authenticating: additional)) == nil,
              let bytes = try? AES.GCM.open(box, using: previousKEK, authenticating: additional) else { return nil }
        return Array(bytes)
    }

    /// nil when it does not open under either KEK with this purpose and context.
    public func openSecret(_ stored: String, purpose: SecretPurpose, context: [UInt8]) -> [UInt8]? {
        guard stored.hasPrefix(Self.secretPrefix), let combined = Data(base64Encoded: String(stored.dropFirst(Self.secretPrefix.count))),
              let box = try? AES.GCM.SealedBox(combined: combined) else { return nil }
        let additional = Array(purpose.rawValue.utf8) + context
        for key in [currentKEK] + (previousKEK.map { [$0] } ?? []) {
            if let bytes = try? AES.GCM.open(box, using: key, authenticating: additional) { return Array(bytes) }
        }
        return nil
    }
}
