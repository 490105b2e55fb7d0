import Crypto

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// An IT policy: the rules a device must apply (BES: password required, minimum length,
/// security timeout, which services the device may use). The Policy Service signs it with
/// the domain's key; the device applies only a policy signed by the key it pinned at
/// activation, and says so (`DeviceRequest.policyApplied`).
///
/// Tags: 1 name, 2 version, 3 password_required, 4 min_password_length,
/// 5 lock_timeout_minutes, 6 allowed_service (repeated).
public struct ITPolicy: Equatable, Sendable, Codable {
    public static let maxNameLength = 64
    public static let services = ["push", "mail", "im"]

    public var name: String
    /// Raised on every change: the device confirms the version it applied.
    public var version: UInt64
    public var passwordRequired: Bool
    public var minPasswordLength: Int
    /// Minutes of inactivity before the device locks (0: never).
    public var lockTimeoutMinutes: Int
    /// Of `services`: what the service books may offer.
    public var allowedServices: [String]

    enum CodingKeys: String, CodingKey {
        case name, version
        case passwordRequired = "password_required"
        case minPasswordLength = "min_password_length"
        case lockTimeoutMinutes = "lock_timeout_minutes"
        case allowedServices = "allowed_services"
    }

    public init(name: String, version: UInt64 = 1, passwordRequired: Bool = false, minPasswordLength: Int = 0,
                lockTimeoutMinutes: Int = 0, allowedServices: [String] = ITPolicy.services) {
        (self.name, self.version, self.passwordRequired, self.minPasswordLength) = (name, version, passwordRequired, minPasswordLength)
        (self.lockTimeoutMinutes, self.allowedServices) = (lockTimeoutMinutes, allowedServices)
    }

    /// The policy every user has until the administrator assigns another.
    public static let standard = ITPolicy(name: "default")

    /// The rules a policy's values must keep (a policy the device could not apply is
    /// refused when it is set, not when a device meets it).
    public func validated() throws(PayloadError) -> ITPolicy {
        // ASCII only (no look-alikes from other scripts), with a letter or digit in it (not
        // "." or ".."; it is a path segment of the admin API).
        guard !name.isEmpty, name.utf8.count <= Self.maxNameLength,
              name.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || $0.properties.numericType == .decimal || "-_.".unicodeScalars.contains($0)) }),
              name.unicodeScalars.contains(where: { $0.properties.isAlphabetic || $0.properties.numericType == .decimal }) else {
            throw PayloadError("a policy's name is 1–\(Self.maxNameLength) ASCII letters, digits, '-', '_' or '.', with a letter or digit")
        }
        guard (0...64).contains(minPasswordLength) else { throw PayloadError("min_password_length is 0–64") }
        guard (0...1_440).contains(lockTimeoutMinutes) else { throw PayloadError("lock_timeout_minutes is 0–1440") }
        guard allowedServices.allSatisfy(Self.services.contains), Set(allowedServices).count == allowedServices.count else {
            throw PayloadError("allowed services are among \(Self.services.joined(separator: ", ")), each once")
        }
        return self
    }

    public func encoded() -> [UInt8] {
        var w = PayloadWriter()
        w.string(1, name, max: Self.maxNameLength)
        w.uint(2, version)
        w.bool(3, passwordRequired)
        w.uint(4, UInt64(clamping: minPasswordLength))
        w.uint(5, UInt64(clamping: lockTimeoutMinutes))
        for s in allowedServices { w.string(6, s, max: 16) }
        return w.bytes
    }

    public static func decode(_ bytes: some Collection<UInt8>) throws(PayloadError) -> ITPolicy {
        let f = try PayloadFields(bytes)
        let minLength = try f.uint(4, "min_password_length") ?? 0
        let timeout = try f.uint(5, "lock_timeout_minutes") ?? 0
        guard minLength <= 64, timeout <= 1_440 else { throw PayloadError("policy value out of range") }
        return try ITPolicy(name: try f.requiredString(1, max: maxNameLength, "name"), version: try f.requiredUInt(2, "version"),
                            passwordRequired: try f.bool(3, "password_required"), minPasswordLength: Int(minLength),
                            lockTimeoutMinutes: Int(timeout), allowedServices: try f.strings(6, max: 16, maxCount: 16, "allowed_service")).validated()
    }
}

/// Bytes the domain's Ed25519 key signed under a label (an IT policy, an IT command):
/// encoded as tags 1 the bytes, 2 the 64-byte signature.
enum DomainSignature {
    static func sign(_ label: [UInt8], _ bytes: [UInt8], with key: Curve25519.Signing.PrivateKey) -> [UInt8] {
        // Ed25519 signing of bytes in memory does not fail.
        Array(try! key.signature(for: label + bytes))
    }

    static func check(_ label: [UInt8], _ bytes: [UInt8], signature: [UInt8], domainKey: [UInt8], what: String) throws(SignedPolicy.Refused) {
        guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: domainKey) else {
            throw SignedPolicy.Refused(description: "no valid domain key to check the \(what) with")
        }
        guard key.isValidSignature(signature, for: label + bytes) else {
            throw SignedPolicy.Refused(description: "the \(what) is not signed by this device's domain")
        }
    }

    static func encode(_ bytes: [UInt8], signature: [UInt8]) -> [UInt8] {
        var w = PayloadWriter()
        w.bytes(1, bytes)
        w.bytes(2, signature)
        return w.bytes
    }

    static func decode(_ bytes: [UInt8], max: Int, what: String) throws(PayloadError) -> (bytes: [UInt8], signature: [UInt8]) {
        let f = try PayloadFields(bytes)
        guard let body = try f.bytes(1, max: max, what) else { throw PayloadError("\(what) missing") }
        guard let signature = try f.bytes(2, max: 64, "signature"), signature.count == 64 else { throw PayloadError("signature is not 64 bytes") }
        return (Array(body), Array(signature))
    }
}

/// A policy as the device receives it (service `policy`): its encoding and the domain
/// key's Ed25519 signature over a label and that encoding. Tags: 1 policy, 2 signature.
public struct SignedPolicy: Equatable, Sendable {
    static let label = Array("bramble-it-policy-v1".utf8)
    public var policy: [UInt8]
    public var signature: [UInt8]

    public static func sign(_ policy: ITPolicy, with key: Curve25519.Signing.PrivateKey) -> SignedPolicy {
        let bytes = policy.encoded()
        return SignedPolicy(policy: bytes, signature: DomainSignature.sign(label, bytes, with: key))
    }

    /// Why a device did not apply a policy or an IT command.
    public struct Refused: Error, CustomStringConvertible, Equatable, Sendable {
        public let description: String
        public init(description: String) { self.description = description }
    }

    /// The policy, if `domainKey` (the 32-byte Ed25519 public key pinned at activation)
    /// signed it.
    public func verified(domainKey: [UInt8]) throws(Refused) -> ITPolicy {
        try DomainSignature.check(Self.label, policy, signature: signature, domainKey: domainKey, what: "policy")
        do { return try ITPolicy.decode(policy) } catch { throw Refused(description: "the policy cannot be read: \(error)") }
    }

    public func encoded() -> [UInt8] { DomainSignature.encode(policy, signature: signature) }

    public static func decode(_ bytes: [UInt8]) throws(PayloadError) -> SignedPolicy {
        let (policy, signature) = try DomainSignature.decode(bytes, max: 4_096, what: "policy")
        return SignedPolicy(policy: policy, signature: signature)
    }

    /// What the device confirms it applied: SHA-256 of the signed policy bytes.
    public var digest: [UInt8] { Array(SHA256.hash(data: policy)) }
}

/// The service books (service `serviceBooks`): which services the device may use and how
/// it names them, sent once the device confirmed its IT policy.
/// Tags: 1 book (repeated record: 1 service, 2 identifier, 3 name).
public struct ServiceBooks: Equatable, Sendable {
    public struct Book: Equatable, Sendable, Codable {
        /// "push", "mail", "im".
        public var service: String
        /// The routing identity of the service: the SRP ID (push), the mailbox address
        /// (mail, BES's CMIME), the IM user ID (im).
        public var identifier: String
        public var name: String
        public init(service: String, identifier: String, name: String) { (self.service, self.identifier, self.name) = (service, identifier, name) }
    }

    public var books: [Book]
    public init(books: [Book]) { self.books = books }

    /// The books a user's policy allows: push, mail and IM, as the node offers them.
    public static func offered(srpID: String, email: String, imOffered: Bool, policy: ITPolicy) -> ServiceBooks {
        var books: [Book] = []
        if policy.allowedServices.contains("push") { books.append(Book(service: "push", identifier: srpID, name: "Bramble push (\(srpID))")) }
        if policy.allowedServices.contains("mail") { books.append(Book(service: "mail", identifier: email, name: "Bramble e-mail (CMIME)")) }
        if imOffered, policy.allowedServices.contains("im") { books.append(Book(service: "im", identifier: email, name: "Bramble instant messaging")) }
        return ServiceBooks(books: books)
    }

    public func encoded() -> [UInt8] {
        var w = PayloadWriter()
        for b in books {
            var r = PayloadWriter()
            r.string(1, b.service, max: 16)
            r.string(2, b.identifier, max: 255)
            r.string(3, b.name, max: 128)
            w.record(1, r)
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(PayloadError) -> ServiceBooks {
        var books: [Book] = []
        for r in try PayloadFields(bytes).records(1, maxCount: 32, "book") {
            let service = try r.requiredString(1, max: 16, "service")
            guard ITPolicy.services.contains(service) else { throw PayloadError("unknown service \(service.debugDescription)") }
            books.append(Book(service: service, identifier: try r.requiredString(2, max: 255, "identifier"),
                              name: try r.string(3, max: 128, "name") ?? ""))
        }
        return ServiceBooks(books: books)
    }
}
