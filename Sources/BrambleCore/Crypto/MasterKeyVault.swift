import Crypto
import Foundation

/// Device master keys at rest: the database holds each one sealed with AES-256-GCM under a
/// key-encryption key (KEK) that lives only in a 0600 file on the nodes, so a copy of the
/// database (a backup, a replica's disk, a dump) opens no device's traffic. The sealed
/// value is bound to its PIN (additional data), so a row's key cannot be moved to another
/// device. Text form: `v1.` + base64(nonce ‖ ciphertext ‖ tag).
///
/// Rotation: a vault made with the previous KEK too opens what that one sealed; it seals
/// only under the new one, and `ConfigStore.resealMasterKeys` (an operator's
/// `bramble keys reseal`, once both nodes hold the new KEK) moves the rest to it.
public struct MasterKeyVault: Sendable {
    public static let prefix = "v1."
    private static let label = Array("bramble-master-key-v1".utf8)
    private let kek: SymmetricKey
    private let previous: SymmetricKey?

    public init(kek: SymmetricKey, previous: SymmetricKey? = nil) {
        precondition(kek.bitCount == 256 && (previous?.bitCount ?? 256) == 256, "a key-encryption key is 256 bits")
        self.kek = kek
        self.previous = previous
    }

    /// What identifies a KEK in the database without revealing it: HMAC-SHA256 under the
    /// KEK of a fixed label.
    public static func check(of kek: SymmetricKey) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Array("bramble-kek-check-v1".utf8), using: kek))
    }
    public var currentCheck: [UInt8] { Self.check(of: kek) }
    public var previousCheck: [UInt8]? { previous.map(Self.check(of:)) }

    /// A key-encryption key from its file's text (base64 of 32 bytes), or nil.
    public static func kek(base64 text: String) -> SymmetricKey? { SymmetricKey(base64: text) }

    public struct OpenFailure: Error, CustomStringConvertible, Equatable {
        public let pin: PIN
        public init(pin: PIN) { self.pin = pin }
        public var description: String {
            "the master key of PIN \(pin) does not open under this key-encryption key (another KEK, or not sealed)"
        }
    }

    public func seal(_ key: SymmetricKey, pin: PIN) -> String {
        let bytes = key.withUnsafeBytes { Array($0) }
        // AES.GCM.seal with a random nonce only fails for a bad key size, excluded above.
        let box = try! AES.GCM.seal(bytes, using: kek, authenticating: Self.label + pin.bigEndianBytes)
        return Self.prefix + box.combined!.base64EncodedString()
    }

    /// The master key; throws for a value sealed under another KEK, altered, bound to
    /// another PIN, or not sealed at all (a plain key written by someone without the KEK
    /// is refused, not used).
    public func open(_ stored: String, pin: PIN) throws(OpenFailure) -> SymmetricKey {
        guard let key = try? opened(stored, pin: pin).key else { throw OpenFailure(pin: pin) }
        return key
    }

    /// The master key, and whether it was sealed under the previous KEK (so it should be
    /// sealed again under the current one).
    public func opened(_ stored: String, pin: PIN) throws(OpenFailure) -> (key: SymmetricKey, underPrevious: Bool) {
        guard stored.hasPrefix(Self.prefix), let combined = Data(base64Encoded: String(stored.dropFirst(Self.prefix.count))),
              let box = try? AES.GCM.SealedBox(combined: combined) else {
            throw OpenFailure(pin: pin)
        }
        let additional = Self.label + pin.bigEndianBytes
        if let bytes = try? AES.GCM.open(box, using: kek, authenticating: additional), bytes.count == 32 {
            return (SymmetricKey(data: bytes), false)
        }
        if let previous, let bytes = try? AES.GCM.open(box, using: previous, authenticating: additional), bytes.count == 32 {
            return (SymmetricKey(data: bytes), true)
        }
        throw OpenFailure(pin: pin)
    }

    var currentKEK: SymmetricKey { kek }
    var previousKEK: SymmetricKey? { previous }

    /// Whether `stored` is a sealed value (else a plain base64 key from before sealing).
    public static func isSealed(_ stored: String) -> Bool { stored.hasPrefix(prefix) }
}
