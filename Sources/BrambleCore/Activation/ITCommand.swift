import Crypto
import Foundation
import _CryptoExtras

/// An IT administration command (BES: "Specify a new device password and lock the
/// device", "Delete all device data", "Delete only the work data"): made by
/// `bramble device lock|wipe|wipe-work`, signed by the domain's key like the IT policy,
/// delivered as an item (service `command`), and confirmed by the device with a
/// `commandDone` request before it wipes anything.
///
/// Tags: 1 id, 2 PIN, 3 kind, 4 lock salt, 5 lock verifier, 6 issued at (Unix seconds).
public struct ITCommand: Equatable, Sendable {
    public enum Kind: UInt8, Sendable, CaseIterable {
        /// Set a new device password and lock the device.
        case lock = 1
        /// Delete all device data and keys.
        case wipe = 2
        /// Delete the work data (and the keys that reach the company) only.
        case wipeWork = 3

        /// How operators and the device log name it.
        public var name: String {
            switch self {
            case .lock: "lock"
            case .wipe: "wipe"
            case .wipeWork: "wipe-work"
            }
        }

        public init?(name: String) {
            guard let kind = Self.allCases.first(where: { $0.name == name }) else { return nil }
            self = kind
        }
    }

    /// The command's number in the configuration database (what the device confirms).
    public var id: UInt64
    /// The device it is for: a device refuses a command for another PIN.
    public var pin: PIN
    public var kind: Kind
    /// The new device password's verifier (`lock` only).
    public var lock: DeviceLock?
    public var issuedAt: UInt64

    public init(id: UInt64, pin: PIN, kind: Kind, lock: DeviceLock? = nil, issuedAt: UInt64) {
        (self.id, self.pin, self.kind, self.lock, self.issuedAt) = (id, pin, kind, lock, issuedAt)
    }

    /// Whether the device could read it: a lock carries its verifier (16-byte salt, 32-byte
    /// verifier), nothing else carries one. The server signs only valid commands.
    public var isValid: Bool {
        guard let lock else { return kind != .lock }
        return kind == .lock && lock.salt.count == DeviceLock.saltLength && lock.verifier.count == DeviceLock.verifierLength
    }

    public func encoded() -> [UInt8] {
        var w = PayloadWriter()
        w.uint(1, id)
        w.uint(2, UInt64(pin.value))
        w.uint(3, UInt64(kind.rawValue))
        if let lock {
            w.bytes(4, lock.salt)
            w.bytes(5, lock.verifier)
        }
        w.uint(6, issuedAt)
        return w.bytes
    }

    public static func decode(_ bytes: some Collection<UInt8>) throws(PayloadError) -> ITCommand {
        let f = try PayloadFields(bytes)
        let pin = try f.requiredUInt(2, "pin")
        guard pin <= UInt64(UInt32.max) else { throw PayloadError("pin out of range") }
        guard let kind = Kind(rawValue: UInt8(clamping: try f.requiredUInt(3, "kind"))) else { throw PayloadError("unknown command kind") }
        let salt = try f.bytes(4, max: DeviceLock.saltLength, "lock salt")
        let verifier = try f.bytes(5, max: DeviceLock.verifierLength, "lock verifier")
        var lock: DeviceLock?
        switch (kind, salt, verifier) {
        case (.lock, let salt?, let verifier?) where salt.count == DeviceLock.saltLength && verifier.count == DeviceLock.verifierLength:
            lock = DeviceLock(salt: Array(salt), verifier: Array(verifier))
        case (.lock, _, _): throw PayloadError("a lock command carries a 16-byte salt and a 32-byte verifier")
        case (_, nil, nil): lock = nil
        default: throw PayloadError("only a lock command carries a password verifier")
        }
        return ITCommand(id: try f.requiredUInt(1, "id"), pin: PIN(UInt32(pin)), kind: kind, lock: lock,
                         issuedAt: try f.requiredUInt(6, "issued_at"))
    }
}

/// The device password a lock command sets, as the device keeps it: never the password,
/// only scrypt of it under a random salt (the same cost as the activation secret).
public struct DeviceLock: Equatable, Sendable {
    public static let saltLength = 16
    public static let verifierLength = 32
    public var salt: [UInt8]
    public var verifier: [UInt8]

    public init(salt: [UInt8], verifier: [UInt8]) { (self.salt, self.verifier) = (salt, verifier) }

    /// The rules of the activation password: 8–64 characters, no control characters, no
    /// edge spaces (it is typed on the handheld too).
    public static func validate(_ password: String) throws(ActivationPassword.Refused) {
        try ActivationPassword.validate(password, what: "a device password")
    }

    public static func make(password: String) -> DeviceLock {
        var rng = SystemRandomNumberGenerator()
        let salt = (0..<saltLength).map { _ in UInt8.random(in: 0...255, using: &rng) }
        return DeviceLock(salt: salt, verifier: derive(password, salt: salt))
    }

    /// Whether `password` is the one the verifier was made from (compared in constant time).
    public func matches(_ password: String) -> Bool {
        let candidate = Self.derive(password, salt: salt)
        guard candidate.count == verifier.count else { return false }
        return zip(candidate, verifier).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }

    static func derive(_ password: String, salt: [UInt8]) -> [UInt8] {
        // Valid parameters cannot fail; a failure here is a broken build of the library.
        let key = try! KDF.Scrypt.deriveKey(from: Array(password.precomposedStringWithCanonicalMapping.utf8),
                                            salt: Array("bramble-device-lock-v1\u{0}".utf8) + salt,
                                            outputByteCount: verifierLength, rounds: 1 << 14, blockSize: 8, parallelism: 1)
        return key.withUnsafeBytes { Array($0) }
    }
}

/// An IT command as the device receives it (service `command`): its encoding and the
/// domain key's signature over a label and it (tags as `SignedPolicy`'s).
public struct SignedCommand: Equatable, Sendable {
    static let label = Array("bramble-it-command-v1".utf8)
    public var command: [UInt8]
    public var signature: [UInt8]

    public static func sign(_ command: ITCommand, with key: Curve25519.Signing.PrivateKey) -> SignedCommand {
        let bytes = command.encoded()
        return SignedCommand(command: bytes, signature: DomainSignature.sign(label, bytes, with: key))
    }

    /// The command, if the device's domain signed it for this device.
    public func verified(domainKey: [UInt8], pin: PIN) throws(SignedPolicy.Refused) -> ITCommand {
        try DomainSignature.check(Self.label, command, signature: signature, domainKey: domainKey, what: "command")
        let decoded: ITCommand
        do { decoded = try ITCommand.decode(command) } catch { throw SignedPolicy.Refused(description: "the command cannot be read: \(error)") }
        guard decoded.pin == pin else { throw SignedPolicy.Refused(description: "the command is for device \(decoded.pin), not this one") }
        return decoded
    }

    public func encoded() -> [UInt8] { DomainSignature.encode(command, signature: signature) }

    public static func decode(_ bytes: [UInt8]) throws(PayloadError) -> SignedCommand {
        let (command, signature) = try DomainSignature.decode(bytes, max: 256, what: "command")
        return SignedCommand(command: command, signature: signature)
    }
}
