import Crypto
import Foundation
import _CryptoExtras

/// The one-time activation password (BES: set by the administrator, single use, 48 hours).
///
/// Neither side keeps the password: both run CPace on its *secret*, a slow salted hash
/// (scrypt, salted with the user's address), and the node stores only that, sealed under
/// the key-encryption key. Whoever steals the database and the KEK still has a slow
/// dictionary attack per user ahead of them; a captured exchange gives none (CPace).
public enum ActivationPassword {
    public static let minLength = 8
    public static let maxLength = 64
    /// What `--generate` makes: 12 characters from an alphabet without look-alikes
    /// (no 0/o, 1/l/i), about 59 bits.
    public static let generatedLength = 12
    static let alphabet = Array("23456789abcdefghjkmnpqrstuvwxyz")
    /// The default lifetime, BES's.
    public static let defaultExpirySeconds = 48 * 3_600
    /// Runs that end without a valid key confirmation before the activation is locked.
    public static let maxFailures = 5

    public struct Refused: Error, CustomStringConvertible, Equatable, Sendable {
        public let description: String
    }

    /// Checks the length rules and the characters: printable, no line breaks or other
    /// control characters (the password is typed on a handheld). Never echoes it.
    /// `what` names the password in the refusal (the device password has these rules too).
    public static func validate(_ password: String, what: String = "an activation password") throws(Refused) {
        let count = password.count
        guard count >= minLength else { throw Refused(description: "\(what) has at least \(minLength) characters") }
        guard count <= maxLength else { throw Refused(description: "\(what) has at most \(maxLength) characters") }
        guard !password.unicodeScalars.contains(where: Activation.isControl) else {
            throw Refused(description: "\(what) holds no control characters or line breaks")
        }
        guard password.trimmingCharacters(in: .whitespaces) == password else {
            throw Refused(description: "\(what) neither begins nor ends with a space")
        }
    }

    public static func generate() -> String {
        var rng = SystemRandomNumberGenerator()
        return String((0..<generatedLength).map { _ in alphabet[Int(rng.next(upperBound: UInt64(alphabet.count)))] })
    }

    /// The address as both sides salt and bind it: trimmed, lower-cased, NFC (the node's
    /// canonical form of an address).
    public static func canonicalEmail(_ email: String) -> String {
        email.trimmingCharacters(in: .whitespaces).lowercased().precomposedStringWithCanonicalMapping
    }

    /// CPace's password-related string: scrypt (N = 2^14, r = 8, p = 1: 16 MiB, tens of
    /// milliseconds) of the NFC password, salted with the canonical address.
    public static func secret(password: String, email: String) -> [UInt8] {
        let salt = Array("bramble-activation-v1\u{0}".utf8) + Array(canonicalEmail(email).utf8)
        // Valid parameters cannot fail; a failure here is a broken build of the library.
        let key = try! KDF.Scrypt.deriveKey(from: Array(password.precomposedStringWithCanonicalMapping.utf8), salt: salt,
                                            outputByteCount: 32, rounds: 1 << 14, blockSize: 8, parallelism: 1)
        return key.withUnsafeBytes { Array($0) }
    }
}
