import Crypto
import Foundation

/// Device master keys at rest: the database holds each one sealed with AES-256-GCM under a
/// key-encryption key (KEK) that lives only in a 0600 file on the nodes, so a copy of the
/// database (a backup, a replica's disk, a dump) opens no device's traffic. The sealed
/// value is bound to its PIN (additional data), so a row's key cannot be moved to another
/// device. Text form: `v1.` + base64(nonce ‖ ciphertext ‖ tag).
public struct MasterKeyVault: Sendable {
    public static let prefix = "v1."
    private static let label = Array("bramble-master-key-v1".utf8)
    private let kek: SymmetricKey

    public init(kek: SymmetricKey) {
        precondition(kek.bitCount == 256, "the key-encryption key is 256 bits")
        self.kek = kek
    }

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
        guard stored.hasPrefix(Self.prefix), let combined = Data(base64Encoded: String(stored.dropFirst(Self.prefix.count))),
              let box = try? AES.GCM.SealedBox(combined: combined),
              let bytes = try? AES.GCM.open(box, using: kek, authenticating: Self.label + pin.bigEndianBytes),
              bytes.count == 32 else {
            throw OpenFailure(pin: pin)
        }
        return SymmetricKey(data: bytes)
    }

    /// Whether `stored` is a sealed value (else a plain base64 key from before sealing).
    public static func isSealed(_ stored: String) -> Bool { stored.hasPrefix(prefix) }
}
