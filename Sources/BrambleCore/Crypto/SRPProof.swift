import Crypto

/// Challenge–response on an SRP link: the relay sends a random nonce, the server answers
/// with `HMAC-SHA256(key, label ‖ nonce ‖ srpID ‖ epoch)`. The key never crosses the wire,
/// and binding the epoch stops a captured proof being replayed at another epoch.
public enum SRPProof {
    private static let label = Array("bramble-srp-v1".utf8)

    public static func compute(key: SymmetricKey, nonce: [UInt8], srpID: String, epoch: UInt64) -> [UInt8] {
        Array(code(key: key, nonce: nonce, srpID: srpID, epoch: epoch))
    }

    /// Constant-time check of a proof.
    public static func verify(_ proof: [UInt8], key: SymmetricKey, nonce: [UInt8], srpID: String, epoch: UInt64) -> Bool {
        code(key: key, nonce: nonce, srpID: srpID, epoch: epoch) == proof
    }

    private static func code(key: SymmetricKey, nonce: [UInt8], srpID: String, epoch: UInt64) -> HMAC<SHA256>.MAC {
        var mac = HMAC<SHA256>(key: key)
        mac.update(data: label)
        mac.update(data: nonce)
        mac.update(data: [UInt8(truncatingIfNeeded: srpID.utf8.count)])
        mac.update(data: Array(srpID.utf8))
        mac.update(data: withUnsafeBytes(of: epoch.bigEndian) { Array($0) })
        return mac.finalize()
    }
}
