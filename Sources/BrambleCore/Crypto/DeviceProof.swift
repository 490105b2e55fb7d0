import Crypto

/// A device proves its PIN to the relay without the relay ever holding its master key.
///
/// The server derives a relay key from the device's master key with HKDF and registers it
/// for the PIN over its authenticated SRP link (`Frame.deviceKeys`); the device derives the
/// same key. At hello the relay sends a fresh nonce and the device answers
/// `HMAC-SHA256(relayKey, label ‖ nonce ‖ pin ‖ srpID)`. HKDF is one-way and its info
/// string separates this key from every other use of the master key, so what the relay
/// holds can open nothing the master key seals; a fresh nonce per connection means a
/// captured proof is worth nothing on another connection.
public enum DeviceProof {
    private static let label = Array("bramble-device-hello-v1".utf8)
    private static let salt = Array("bramble-relay-auth".utf8)

    /// The key the relay checks the device's proofs with.
    public static func relayKey(master: SymmetricKey, pin: PIN) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: master, salt: salt,
                               info: Array("device-relay-key-v1".utf8) + pin.bigEndianBytes, outputByteCount: 32)
    }

    public static func compute(relayKey: SymmetricKey, nonce: [UInt8], pin: PIN, srpID: String) -> [UInt8] {
        Array(code(relayKey: relayKey, nonce: nonce, pin: pin, srpID: srpID))
    }

    /// Constant-time check of a proof.
    public static func verify(_ proof: [UInt8], relayKey: SymmetricKey, nonce: [UInt8], pin: PIN, srpID: String) -> Bool {
        code(relayKey: relayKey, nonce: nonce, pin: pin, srpID: srpID) == proof
    }

    private static func code(relayKey: SymmetricKey, nonce: [UInt8], pin: PIN, srpID: String) -> HMAC<SHA256>.MAC {
        ChallengeMAC.code(key: relayKey, label + nonce + pin.bigEndianBytes + ChallengeMAC.field(srpID))
    }
}

extension PIN {
    var bigEndianBytes: [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }
}

extension DeviceKeyUpdate.Entry {
    /// The entry that registers the relay key of the device whose master key is `master`.
    public init(pin: PIN, master: SymmetricKey) {
        self.init(pin: pin, key: DeviceProof.relayKey(master: master, pin: pin).withUnsafeBytes { Array($0) })
    }
}
