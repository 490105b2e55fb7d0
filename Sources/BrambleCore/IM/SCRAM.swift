import Crypto
import Foundation

// SCRAM-SHA-1 (RFC 5802), the client side, as Prosody 0.12 offers it over SASL: no
// channel binding (GS2 header "n,,"), no authorization identity.
//
// SASLprep (RFC 4013) is not applied: the username and the password are used as their
// UTF-8 bytes as given. For ASCII credentials without control characters (what Bramble
// provisions) that is what SASLprep would produce; for others a server that applies it
// may compute other keys, and the login fails rather than authenticating anyone else.

/// PBKDF2 (RFC 8018 §5.2) with HMAC-SHA-1: SCRAM-SHA-1's SaltedPassword (`Hi`).
public enum PBKDF2 {
    /// `keyLength` bytes derived from `password` and `salt` in `iterations` rounds (at least 1).
    public static func sha1(password: [UInt8], salt: [UInt8], iterations: Int, keyLength: Int = 20) -> [UInt8] {
        precondition(iterations >= 1 && keyLength >= 1, "PBKDF2 needs at least one iteration and one byte")
        // The keyed MAC's state, copied for each round rather than keyed again.
        let keyed = HMAC<Insecure.SHA1>(key: SymmetricKey(data: password))
        var derived: [UInt8] = []
        var block: UInt32 = 1
        while derived.count < keyLength {
            var mac = keyed
            mac.update(data: salt)
            mac.update(data: withUnsafeBytes(of: block.bigEndian, Array.init))
            var u = Array(mac.finalize())
            var t = u
            for _ in 1..<iterations {
                var round = keyed
                round.update(data: u)
                u = Array(round.finalize())
                for k in t.indices { t[k] ^= u[k] }
            }
            derived += t
            block += 1
        }
        return Array(derived.prefix(keyLength))
    }
}

/// What a client may keep instead of the password: the keys derived from it for one salt
/// and iteration count (a server that changes either needs the password again).
public struct SCRAMKeys: Equatable, Sendable, Codable {
    public let salt: [UInt8]
    public let iterations: Int
    public let clientKey: [UInt8]
    public let serverKey: [UInt8]

    public init(salt: [UInt8], iterations: Int, clientKey: [UInt8], serverKey: [UInt8]) {
        (self.salt, self.iterations, self.clientKey, self.serverKey) = (salt, iterations, clientKey, serverKey)
    }

    /// SaltedPassword = PBKDF2-HMAC-SHA1(password, salt, iterations) over the password's
    /// UTF-8 bytes as given (no SASLprep, see above); ClientKey = HMAC(SaltedPassword,
    /// "Client Key"), ServerKey = HMAC(SaltedPassword, "Server Key"). `iterations` ≥ 1.
    public static func derive(password: String, salt: [UInt8], iterations: Int) -> SCRAMKeys {
        let salted = SymmetricKey(data: PBKDF2.sha1(password: Array(password.utf8), salt: salt, iterations: iterations))
        return SCRAMKeys(
            salt: salt, iterations: iterations,
            clientKey: Array(HMAC<Insecure.SHA1>.authenticationCode(for: Array("Client Key".utf8), using: salted)),
            serverKey: Array(HMAC<Insecure.SHA1>.authenticationCode(for: Array("Server Key".utf8), using: salted)))
    }
}

/// What the client proves its knowledge with.
public enum SCRAMCredential: Equatable, Sendable {
    case password(String)
    /// Keys cached from an earlier login (`SCRAMClient.keys`).
    case keys(SCRAMKeys)
}

/// Why a SCRAM exchange was refused. The client throws only this type.
public struct SCRAMError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Reason: Equatable, Sendable {
        /// The server-first message is not RFC 5802's: what was expected.
        case malformedServerFirst(expected: String)
        /// The server's nonce does not extend ours.
        case nonceMismatch
        /// An iteration count outside 1…`maxIterations` (a hostile server could make us spin).
        case iterationsOutOfBounds(Int)
        /// The cached keys are for another salt or iteration count: the password is needed.
        case saltChanged
        /// The cached keys are not SHA-1's 20 bytes each.
        case invalidKeys
        /// The server-final message is neither `v=` nor `e=`.
        case malformedServerFinal
        /// The server does not know our password: it is not the server we enrolled with.
        case serverSignatureMismatch
        /// The server refused: its `e=` value (made printable).
        case serverError(String)
        /// `verify` before `clientFinalMessage`.
        case outOfOrder
    }
    public let reason: Reason
    public init(_ reason: Reason) { self.reason = reason }

    public var description: String {
        switch reason {
        case .malformedServerFirst(let expected): "SCRAM: malformed server-first message, expected \(expected)"
        case .nonceMismatch: "SCRAM: the server's nonce does not extend the client's"
        case .iterationsOutOfBounds(let n): "SCRAM: iteration count \(n) out of bounds"
        case .saltChanged: "SCRAM: the server's salt or iteration count changed; the cached keys do not apply"
        case .invalidKeys: "SCRAM: the cached keys are not 20 bytes each"
        case .malformedServerFinal: "SCRAM: malformed server-final message"
        case .serverSignatureMismatch: "SCRAM: the server's signature does not match"
        case .serverError(let e): "SCRAM: the server refused: \(e)"
        case .outOfOrder: "SCRAM: server-final before server-first"
        }
    }
}

/// The client side of one SCRAM-SHA-1 exchange (RFC 5802 §3, §5):
///
///     var scram = SCRAMClient(username: "user", credential: .password("pencil"), clientNonce: nonce)
///     send(scram.clientFirstMessage())
///     send(try scram.clientFinalMessage(serverFirst: received))
///     try scram.verify(serverFinal: received)   // then cache scram.keys
public struct SCRAMClient: Sendable {
    /// The largest iteration count accepted by default: far above what servers use, low
    /// enough that deriving the keys takes a fraction of a second.
    public static let defaultMaxIterations = 100_000

    public let username: String
    public let clientNonce: String
    public let credential: SCRAMCredential
    /// Iteration counts above this are refused before any work is done.
    public var maxIterations = SCRAMClient.defaultMaxIterations
    /// After `clientFinalMessage`: the keys used, to cache instead of the password.
    public private(set) var keys: SCRAMKeys?
    private var expectedServerSignature: [UInt8]?

    /// `clientNonce`: fresh random printable ASCII without `,` for each exchange (at least
    /// 18 bytes of randomness, e.g. 24 base64 characters).
    public init(username: String, credential: SCRAMCredential, clientNonce: String) {
        precondition(!clientNonce.isEmpty && clientNonce.utf8.allSatisfy(isNonceByte), "a SCRAM nonce is printable ASCII without ','")
        self.username = username
        self.credential = credential
        self.clientNonce = clientNonce
    }

    /// `n,,n=USER,r=NONCE`, the username with `=` and `,` written `=3D` and `=2C`.
    public func clientFirstMessage() -> String { "n,," + clientFirstBare }

    private var clientFirstBare: String {
        let name = username.replacingOccurrences(of: "=", with: "=3D").replacingOccurrences(of: ",", with: "=2C")
        return "n=\(name),r=\(clientNonce)"
    }

    /// The client-final message answering `serverFirst` (`r=…,s=…,i=…`): the server's
    /// nonce must extend ours, the salt be base64, the iteration count within
    /// 1…`maxIterations`; cached keys must be for that salt and count (else `saltChanged`).
    public mutating func clientFinalMessage(serverFirst: String) throws(SCRAMError) -> String {
        keys = nil
        expectedServerSignature = nil
        let fields = serverFirst.split(separator: ",", omittingEmptySubsequences: false)
        if let first = fields.first, first.hasPrefix("e=") { throw SCRAMError(.serverError(Self.printable(first.dropFirst(2)))) }
        guard let first = fields.first, !first.hasPrefix("m=") else { throw SCRAMError(.malformedServerFirst(expected: "no mandatory extension (m=)")) }
        guard fields.count >= 3 else { throw SCRAMError(.malformedServerFirst(expected: "r=, s= and i=")) }

        guard fields[0].hasPrefix("r="), case let nonce = fields[0].dropFirst(2), !nonce.isEmpty, nonce.utf8.allSatisfy(isNonceByte) else {
            throw SCRAMError(.malformedServerFirst(expected: "r= and a printable nonce"))
        }
        guard nonce.hasPrefix(clientNonce), nonce.count > clientNonce.count else { throw SCRAMError(.nonceMismatch) }

        guard fields[1].hasPrefix("s="), let salt = Data(base64Encoded: String(fields[1].dropFirst(2))), !salt.isEmpty else {
            throw SCRAMError(.malformedServerFirst(expected: "s= and a base64 salt"))
        }
        let digits = fields[2].dropFirst(2)
        guard fields[2].hasPrefix("i="), !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            throw SCRAMError(.malformedServerFirst(expected: "i= and a decimal iteration count"))
        }
        let iterations = Int(digits) ?? .max
        guard iterations >= 1 && iterations <= maxIterations else { throw SCRAMError(.iterationsOutOfBounds(iterations)) }

        let used: SCRAMKeys
        switch credential {
        case .password(let password):
            used = .derive(password: password, salt: Array(salt), iterations: iterations)
        case .keys(let cached):
            guard cached.salt == Array(salt) && cached.iterations == iterations else { throw SCRAMError(.saltChanged) }
            guard cached.clientKey.count == 20 && cached.serverKey.count == 20 else { throw SCRAMError(.invalidKeys) }
            used = cached
        }

        let withoutProof = "c=biws,r=\(nonce)"  // biws: base64 of the GS2 header "n,,"
        let authMessage = Array((clientFirstBare + "," + serverFirst + "," + withoutProof).utf8)
        let storedKey = SymmetricKey(data: Insecure.SHA1.hash(data: used.clientKey))
        let clientSignature = HMAC<Insecure.SHA1>.authenticationCode(for: authMessage, using: storedKey)
        let proof = zip(used.clientKey, clientSignature).map { $0 ^ $1 }
        expectedServerSignature = Array(HMAC<Insecure.SHA1>.authenticationCode(for: authMessage, using: SymmetricKey(data: used.serverKey)))
        keys = used
        return withoutProof + ",p=" + Data(proof).base64EncodedString()
    }

    /// Checks the server-final message: `v=` must be the server's signature (proof that
    /// it knows the keys); `e=` is the server's refusal.
    public func verify(serverFinal: String) throws(SCRAMError) {
        guard let expected = expectedServerSignature else { throw SCRAMError(.outOfOrder) }
        let first = serverFinal.split(separator: ",", omittingEmptySubsequences: false).first ?? ""
        if first.hasPrefix("e=") { throw SCRAMError(.serverError(Self.printable(first.dropFirst(2)))) }
        guard first.hasPrefix("v="), let signature = Data(base64Encoded: String(first.dropFirst(2))) else {
            throw SCRAMError(.malformedServerFinal)
        }
        // Compared in full whatever differs first.
        guard signature.count == expected.count, zip(signature, expected).reduce(0, { $0 | ($1.0 ^ $1.1) }) == 0 else {
            throw SCRAMError(.serverSignatureMismatch)
        }
    }

    private static func printable(_ s: Substring) -> String { MailText.printable(String(s.prefix(200))) }
}

/// RFC 5802's printable: %x21-2B / %x2D-7E (no comma).
private func isNonceByte(_ b: UInt8) -> Bool { b >= 0x21 && b <= 0x7E && b != 0x2C }
