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
        ChallengeMAC.code(key: key, label + nonce + ChallengeMAC.field(srpID) + withUnsafeBytes(of: epoch.bigEndian) { Array($0) })
    }
}

/// The MAC both challenge proofs (`SRPProof`, `DeviceProof`) answer with; its result
/// compares in constant time.
enum ChallengeMAC {
    static func code(key: SymmetricKey, _ message: [UInt8]) -> HMAC<SHA256>.MAC {
        HMAC<SHA256>.authenticationCode(for: message, using: key)
    }

    /// An SRP ID as a proof binds it: its length, then its bytes.
    static func field(_ srpID: String) -> [UInt8] {
        [UInt8(truncatingIfNeeded: srpID.utf8.count)] + Array(srpID.utf8)
    }
}
