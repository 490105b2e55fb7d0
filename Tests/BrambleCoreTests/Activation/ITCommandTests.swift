import Crypto
import Testing

@testable import BrambleCore

/// The IT commands (lock, wipe, wipe-work): their encoding, the domain key's signature
/// over them, the device password a lock sets, and the device's `commandDone` request.
@Suite struct ITCommandTests {
    let domain = Curve25519.Signing.PrivateKey()
    var domainKey: [UInt8] { Array(domain.publicKey.rawRepresentation) }
    let pin = PIN(0x2A00_F00D)
    /// Fixed bytes of the right lengths: the encoding does not care whether they are scrypt's.
    let lock = DeviceLock(salt: Array(0..<16), verifier: Array(100..<132))

    func command(_ kind: ITCommand.Kind, id: UInt64 = 7, pin: PIN? = nil, issuedAt: UInt64 = 1_767_225_600) -> ITCommand {
        ITCommand(id: id, pin: pin ?? self.pin, kind: kind, lock: kind == .lock ? lock : nil, issuedAt: issuedAt)
    }

    /// An encoding written field by field, to say what the encoder never would.
    func raw(id: UInt64? = 7, pin: UInt64? = 0x2A00_F00D, kind: UInt64? = 1, salt: [UInt8]? = nil, verifier: [UInt8]? = nil,
             issuedAt: UInt64? = 1_767_225_600) -> [UInt8] {
        var w = PayloadWriter()
        if let id { w.uint(1, id) }
        if let pin { w.uint(2, pin) }
        if let kind { w.uint(3, kind) }
        if let salt { w.bytes(4, salt) }
        if let verifier { w.bytes(5, verifier) }
        if let issuedAt { w.uint(6, issuedAt) }
        return w.bytes
    }

    /// What decoding gives: the command or the `PayloadError` (the typed throw allows no other).
    func decoding(_ bytes: [UInt8]) -> Result<ITCommand, PayloadError> {
        do throws(PayloadError) { return .success(try ITCommand.decode(bytes)) } catch { return .failure(error) }
    }

    func signedDecoding(_ bytes: [UInt8]) -> Result<SignedCommand, PayloadError> {
        do throws(PayloadError) { return .success(try SignedCommand.decode(bytes)) } catch { return .failure(error) }
    }

    // MARK: Encoding

    @Test(arguments: ITCommand.Kind.allCases)
    func aCommandRoundTrips(_ kind: ITCommand.Kind) throws {
        let c = command(kind)
        #expect(try ITCommand.decode(c.encoded()) == c)
        #expect((c.lock != nil) == (kind == .lock))
        let extremes = command(kind, id: .max, pin: PIN(.max), issuedAt: .max)
        #expect(try ITCommand.decode(extremes.encoded()) == extremes)
        let zeros = command(kind, id: 0, pin: PIN(0), issuedAt: 0)
        #expect(try ITCommand.decode(zeros.encoded()) == zeros)
    }

    @Test func theEncodingIsTheDocumentedTags() throws {
        let bytes = command(.lock).encoded()
        let f = try PayloadFields(bytes)
        #expect(try f.uint(1, "id") == 7)
        #expect(try f.uint(2, "pin") == 0x2A00_F00D)
        #expect(try f.uint(3, "kind") == 1)
        #expect(try f.bytes(4, max: 16, "salt").map(Array.init) == lock.salt)
        #expect(try f.bytes(5, max: 32, "verifier").map(Array.init) == lock.verifier)
        #expect(try f.uint(6, "issued_at") == 1_767_225_600)
        #expect(ITCommand.Kind.allCases.map(\.rawValue) == [1, 2, 3])
        // A wipe carries no lock fields at all.
        let wipe = try PayloadFields(command(.wipe).encoded())
        #expect(try wipe.bytes(4, max: 64, "salt") == nil && wipe.bytes(5, max: 64, "verifier") == nil)
    }

    @Test func anUnknownTagIsSkipped() throws {
        // As every payload: a newer server may add fields an older device ignores.
        var w = PayloadWriter()
        w.uint(9, 1)
        w.bytes(200, [1, 2, 3])
        #expect(try ITCommand.decode(command(.wipe).encoded() + w.bytes) == command(.wipe))
    }

    @Test func aLockCommandWithoutItsSaltAndVerifierIsRefused() throws {
        let refusal = PayloadError("a lock command carries a 16-byte salt and a 32-byte verifier")
        let salt = lock.salt, verifier = lock.verifier
        #expect(try ITCommand.decode(raw(kind: 1, salt: salt, verifier: verifier)) == command(.lock))
        #expect(throws: refusal) { try ITCommand.decode(raw(kind: 1)) }
        #expect(throws: refusal) { try ITCommand.decode(raw(kind: 1, salt: salt)) }
        #expect(throws: refusal) { try ITCommand.decode(raw(kind: 1, verifier: verifier)) }
        #expect(throws: refusal) { try ITCommand.decode(raw(kind: 1, salt: [], verifier: [])) }
        #expect(throws: refusal) { try ITCommand.decode(raw(kind: 1, salt: Array(salt.dropLast()), verifier: verifier)) }
        #expect(throws: refusal) { try ITCommand.decode(raw(kind: 1, salt: salt, verifier: Array(verifier.dropLast()))) }
        #expect(throws: refusal) { try ITCommand.decode(raw(kind: 1, salt: [], verifier: verifier)) }
        // Over the bound: refused as the field is read, before it is copied.
        #expect(throws: PayloadError("lock salt longer than 16 bytes")) { try ITCommand.decode(raw(kind: 1, salt: salt + [0], verifier: verifier)) }
        #expect(throws: PayloadError("lock verifier longer than 32 bytes")) { try ITCommand.decode(raw(kind: 1, salt: salt, verifier: verifier + [0])) }
        // What the encoder writes for a lock without one.
        #expect(throws: refusal) { try ITCommand.decode(ITCommand(id: 1, pin: pin, kind: .lock, issuedAt: 0).encoded()) }
    }

    @Test(arguments: [ITCommand.Kind.wipe, .wipeWork])
    func aWipeCarryingAVerifierIsRefused(_ kind: ITCommand.Kind) throws {
        let refusal = PayloadError("only a lock command carries a password verifier")
        let k = UInt64(kind.rawValue)
        #expect(try ITCommand.decode(raw(kind: k)) == command(kind))
        #expect(throws: refusal) { try ITCommand.decode(raw(kind: k, salt: lock.salt, verifier: lock.verifier)) }
        #expect(throws: refusal) { try ITCommand.decode(raw(kind: k, salt: lock.salt)) }
        #expect(throws: refusal) { try ITCommand.decode(raw(kind: k, verifier: lock.verifier)) }
        #expect(throws: refusal) { try ITCommand.decode(raw(kind: k, salt: [])) }
        #expect(throws: refusal) { try ITCommand.decode(raw(kind: k, verifier: [])) }
        // What the encoder writes for one built with a lock.
        #expect(throws: refusal) { try ITCommand.decode(ITCommand(id: 1, pin: pin, kind: kind, lock: lock, issuedAt: 0).encoded()) }
    }

    @Test(arguments: [0, 4, 16, 255, 256, 257, UInt64(UInt32.max), .max] as [UInt64])
    func anUnknownKindIsRefused(_ kind: UInt64) {
        #expect(throws: PayloadError("unknown command kind")) { try ITCommand.decode(raw(kind: kind)) }
        #expect(throws: PayloadError("unknown command kind")) { try ITCommand.decode(raw(kind: kind, salt: lock.salt, verifier: lock.verifier)) }
    }

    @Test func aPINOutsideThirtyTwoBitsIsRefused() throws {
        #expect(try ITCommand.decode(raw(pin: UInt64(UInt32.max), kind: 2)).pin == PIN(.max))
        for value in [UInt64(UInt32.max) + 1, 1 << 32 | 0x2A00_F00D, .max] {
            // Not cut to its low 32 bits: 1 << 32 | PIN is not that PIN.
            #expect(throws: PayloadError("pin out of range")) { try ITCommand.decode(raw(pin: value, kind: 2)) }
        }
    }

    @Test func aMissingOrMisshapenFieldIsRefused() {
        #expect(throws: PayloadError("id missing")) { try ITCommand.decode(raw(id: nil, kind: 2)) }
        #expect(throws: PayloadError("pin missing")) { try ITCommand.decode(raw(pin: nil, kind: 2)) }
        #expect(throws: PayloadError("kind missing")) { try ITCommand.decode(raw(kind: nil)) }
        #expect(throws: PayloadError("issued_at missing")) { try ITCommand.decode(raw(kind: 2, issuedAt: nil)) }
        #expect(throws: PayloadError("pin missing")) { try ITCommand.decode([]) }
        var narrow = PayloadWriter()
        narrow.uint(1, 7); narrow.bytes(2, [0x2A, 0x00, 0xF0, 0x0D]); narrow.uint(3, 2); narrow.uint(6, 0)
        #expect(throws: PayloadError("pin is not 8 bytes")) { try ITCommand.decode(narrow.bytes) }
        var wide = PayloadWriter()
        wide.uint(1, 7); wide.uint(2, 1); wide.bytes(3, [0, 0, 0, 0, 0, 0, 0, 0, 2]); wide.uint(6, 0)
        #expect(throws: PayloadError("kind is not 8 bytes")) { try ITCommand.decode(wide.bytes) }
    }

    @Test(arguments: ITCommand.Kind.allCases)
    func everyPrefixOfAnEncodingIsRefusedNotATrap(_ kind: ITCommand.Kind) throws {
        let bytes = command(kind).encoded()
        for n in 0..<bytes.count {
            guard case .failure(let error) = decoding(Array(bytes.prefix(n))) else {
                Issue.record("a \(n)-byte prefix of a \(bytes.count)-byte \(kind.name) command decoded"); continue
            }
            #expect(!error.reason.isEmpty)
        }
        // The same cut from the front.
        for n in 1..<bytes.count { _ = decoding(Array(bytes.dropFirst(n))) }
        let signed = SignedCommand.sign(command(kind), with: domain).encoded()
        for n in 0..<signed.count {
            guard case .failure = signedDecoding(Array(signed.prefix(n))) else {
                Issue.record("a \(n)-byte prefix of a \(signed.count)-byte signed \(kind.name) command decoded"); continue
            }
        }
    }

    @Test func garbageIsAPayloadErrorOrAValidCommand() {
        // Deterministic (the suite's SplitMix64), so a failure repeats.
        var rng = SplitMix64(seed: 0x2A00_F00D)
        let lengths = [0, 1, 4, 7, 8, 9, 15, 16, 17, 31, 32, 33]
        var decoded = 0
        for round in 0..<3_000 {
            var bytes: [UInt8]
            if round % 3 == 0 {
                // Random bytes.
                bytes = (0..<Int(rng.next() % 160)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            } else {
                // The command's fields, well framed, each kept, dropped, repeated, cut or
                // changed at random: most are refused, some read as a command.
                func uint(_ n: UInt64) -> [UInt8] { withUnsafeBytes(of: n.bigEndian) { Array($0) } }
                func random(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
                var fields: [(tag: UInt8, value: [UInt8])] = [
                    (1, uint(rng.next())), (2, uint(rng.next() % 4 == 0 ? rng.next() : rng.next() & 0xFFFF_FFFF)),
                    (3, uint(rng.next() % 5)), (6, uint(rng.next())),
                ]
                if rng.next() % 2 == 0 { fields += [(4, random(16)), (5, random(32))] }
                for _ in 0..<Int(rng.next() % 3) {
                    let at = Int(rng.next() % UInt64(fields.count))
                    switch rng.next() % 4 {
                    case 0: if fields.count > 1 { fields.remove(at: at) }
                    case 1: fields[at].value = random(lengths[Int(rng.next() % UInt64(lengths.count))])
                    case 2: fields.append((UInt8(rng.next() % 8), random(lengths[Int(rng.next() % UInt64(lengths.count))])))
                    default: fields.append(fields[at])
                    }
                }
                fields.shuffle(using: &rng)
                var w = PayloadWriter()
                for f in fields { w.bytes(f.tag, f.value) }
                bytes = w.bytes
                if round % 7 == 0, !bytes.isEmpty { bytes.removeLast(Int(rng.next() % UInt64(bytes.count)) + 1) }
            }
            switch decoding(bytes) {
            case .failure(let error): #expect(!error.reason.isEmpty)
            case .success(let c):
                decoded += 1
                #expect((c.kind == .lock) == (c.lock != nil))
                #expect(c.lock.map { $0.salt.count == 16 && $0.verifier.count == 32 } ?? true)
                #expect((try? ITCommand.decode(c.encoded())) == c)
            }
            if case .success(let s) = signedDecoding(bytes) {
                #expect(s.signature.count == 64 && s.command.count <= 256)
                #expect(throws: SignedPolicy.Refused.self) { try s.verified(domainKey: domainKey, pin: pin) }
            }
        }
        #expect(decoded >= 100, "the structured inputs should read as a command now and then (214 of 3000 with this seed)")
        // A length that claims more than there is, and a flood of empty fields.
        for bytes in [[1, 0xFF, 0xFF, 0xFF, 0xFF], [1, 0x7F, 0xFF, 0xFF, 0xFF, 0], Array(repeating: 0, count: 5 * 1_025)] as [[UInt8]] {
            #expect(throws: PayloadError.self) { try ITCommand.decode(bytes) }
            #expect(throws: PayloadError.self) { try SignedCommand.decode(bytes) }
        }
    }

    @Test func everyFlippedByteOfAnEncodingIsRefusedOrReadsBackTheSame() {
        let bytes = command(.lock).encoded()
        for index in bytes.indices {
            for mask: UInt8 in [0x01, 0x80, 0xFF] {
                var flipped = bytes
                flipped[index] ^= mask
                if case .success(let c) = decoding(flipped) {
                    #expect((try? ITCommand.decode(c.encoded())) == c)
                }
            }
        }
    }

    // MARK: Signature

    @Test(arguments: ITCommand.Kind.allCases)
    func aSignedCommandRoundTripsAndVerifies(_ kind: ITCommand.Kind) throws {
        let c = command(kind)
        let signed = SignedCommand.sign(c, with: domain)
        #expect(signed.command == c.encoded())
        #expect(signed.signature.count == 64)
        let decoded = try SignedCommand.decode(signed.encoded())
        #expect(decoded == signed)
        #expect(try decoded.verified(domainKey: domainKey, pin: pin) == c)
    }

    @Test func aCommandSignedByAnotherDomainIsRefused() {
        let signed = SignedCommand.sign(command(.wipe), with: Curve25519.Signing.PrivateKey())
        #expect(throws: SignedPolicy.Refused(description: "the command is not signed by this device's domain")) {
            try signed.verified(domainKey: domainKey, pin: pin)
        }
        // Nor is one of ours checked with another domain's key.
        let ours = SignedCommand.sign(command(.wipe), with: domain)
        #expect(throws: SignedPolicy.Refused(description: "the command is not signed by this device's domain")) {
            try ours.verified(domainKey: Array(Curve25519.Signing.PrivateKey().publicKey.rawRepresentation), pin: pin)
        }
    }

    @Test func aFlippedByteInTheCommandOrTheSignatureIsRefused() {
        let signed = SignedCommand.sign(command(.lock), with: domain)
        let refusal = SignedPolicy.Refused(description: "the command is not signed by this device's domain")
        for index in signed.command.indices {
            var tampered = signed
            tampered.command[index] ^= 0x01
            #expect(throws: refusal) { try tampered.verified(domainKey: domainKey, pin: pin) }
        }
        for index in [0, 1, 31, 32, 62, 63] {
            for mask: UInt8 in [0x01, 0x80] {
                var tampered = signed
                tampered.signature[index] ^= mask
                #expect(throws: refusal) { try tampered.verified(domainKey: domainKey, pin: pin) }
            }
        }
        var shorter = signed
        shorter.command.removeLast()
        #expect(throws: refusal) { try shorter.verified(domainKey: domainKey, pin: pin) }
        // Tampered on the wire: the encoding's bytes, decoded, then checked.
        let wire = signed.encoded()
        for index in [5, 20, wire.count - 70, wire.count - 1] {
            var flipped = wire
            flipped[index] ^= 0x10
            if case .success(let read) = signedDecoding(flipped) {
                #expect(throws: SignedPolicy.Refused.self) { try read.verified(domainKey: domainKey, pin: pin) }
            }
        }
    }

    @Test func aCommandForAnotherDeviceIsRefused() throws {
        let signed = SignedCommand.sign(command(.wipe, pin: PIN(0x0000_BEEF)), with: domain)
        #expect(throws: SignedPolicy.Refused(description: "the command is for device 0000BEEF, not this one")) {
            try signed.verified(domainKey: domainKey, pin: pin)
        }
        #expect(throws: SignedPolicy.Refused(description: "the command is for device 0000BEEF, not this one")) {
            try signed.verified(domainKey: domainKey, pin: PIN(0x0000_BEEE))
        }
        #expect(try signed.verified(domainKey: domainKey, pin: PIN(0x0000_BEEF)).kind == .wipe)
    }

    @Test(arguments: [0, 31, 33, 64])
    func aDomainKeyOfTheWrongLengthIsRefused(_ length: Int) {
        let signed = SignedCommand.sign(command(.lock), with: domain)
        #expect(throws: SignedPolicy.Refused(description: "no valid domain key to check the command with")) {
            try signed.verified(domainKey: Array((domainKey + domainKey).prefix(length)), pin: pin)
        }
    }

    @Test func aSignedCommandThatDoesNotReadIsRefused() {
        for (bytes, reason): ([UInt8], String) in [(raw(kind: 2, salt: lock.salt, verifier: lock.verifier), "only a lock command carries a password verifier"),
                                (raw(kind: 9), "unknown command kind"), ([1, 2, 3], "field header truncated"), ([], "pin missing")] {
            let signed = SignedCommand(command: bytes, signature: DomainSignature.sign(SignedCommand.label, bytes, with: domain))
            #expect(throws: SignedPolicy.Refused(description: "the command cannot be read: malformed payload: \(reason)")) {
                try signed.verified(domainKey: domainKey, pin: pin)
            }
        }
    }

    @Test func aPolicySignatureIsNoCommandSignatureNorTheOtherWay() throws {
        let bytes = command(.wipe).encoded()
        // The same bytes under the policy's label, or under none.
        for signature in [DomainSignature.sign(SignedPolicy.label, bytes, with: domain), Array(try domain.signature(for: bytes))] {
            #expect(throws: SignedPolicy.Refused(description: "the command is not signed by this device's domain")) {
                try SignedCommand(command: bytes, signature: signature).verified(domainKey: domainKey, pin: pin)
            }
        }
        // A signed command delivered as a policy (the two encodings share their layout).
        let asPolicy = try SignedPolicy.decode(SignedCommand.sign(command(.wipe), with: domain).encoded())
        #expect(throws: SignedPolicy.Refused(description: "the policy is not signed by this device's domain")) {
            try asPolicy.verified(domainKey: domainKey)
        }
        #expect(SignedCommand.label != SignedPolicy.label)
    }

    @Test func aSignedCommandBoundsItsFields() throws {
        let signed = SignedCommand.sign(command(.lock), with: domain)
        func encoding(command: [UInt8]?, signature: [UInt8]?) -> [UInt8] {
            var w = PayloadWriter()
            if let command { w.bytes(1, command) }
            if let signature { w.bytes(2, signature) }
            return w.bytes
        }
        #expect(try SignedCommand.decode(encoding(command: Array(repeating: 0, count: 256), signature: signed.signature)).command.count == 256)
        #expect(throws: PayloadError("command longer than 256 bytes")) {
            try SignedCommand.decode(encoding(command: Array(repeating: 0, count: 257), signature: signed.signature))
        }
        for length in [0, 63, 65, 128] {
            #expect(throws: PayloadError.self) { try SignedCommand.decode(encoding(command: signed.command, signature: Array(repeating: 1, count: length))) }
        }
        #expect(throws: PayloadError("command missing")) { try SignedCommand.decode(encoding(command: nil, signature: signed.signature)) }
        #expect(throws: PayloadError("signature is not 64 bytes")) { try SignedCommand.decode(encoding(command: signed.command, signature: nil)) }
        #expect(throws: PayloadError.self) { try SignedCommand.decode(Array(signed.encoded().dropLast())) }
        // The largest command the encoder writes fits well within the bound.
        #expect(command(.lock, id: .max, pin: PIN(.max), issuedAt: .max).encoded().count <= 256)
    }

    // MARK: Kinds

    @Test(arguments: [("lock", ITCommand.Kind.lock), ("wipe", .wipe), ("wipe-work", .wipeWork)])
    func aKindIsNamedAsOperatorsTypeIt(_ name: String, _ kind: ITCommand.Kind) {
        #expect(ITCommand.Kind(name: name) == kind)
        #expect(kind.name == name)
    }

    @Test(arguments: ["", "Lock", "WIPE", "wipeWork", "wipe_work", "wipe work", " wipe", "wipe-work ", "unlock", "1", "lock\u{0}"])
    func anyOtherNameIsNoKind(_ name: String) {
        #expect(ITCommand.Kind(name: name) == nil)
    }

    @Test func theCommandServiceIsDeliveredLikeThePolicy() {
        #expect(DataFrame.Service.command.rawValue == 16)
        #expect(DataFrame.Service(rawValue: 16) == .command)
        #expect(DataFrame.Service.command.isDelivered)
    }

    // MARK: Device lock

    @Test func aDeviceLockMatchesItsPasswordOnly() {
        // Scrypt (N = 2^14) is tens of milliseconds: six derivations in all.
        let password = "Grüße aus Köln 2026"
        let first = DeviceLock.make(password: password)
        let second = DeviceLock.make(password: password)
        #expect(first.salt.count == DeviceLock.saltLength && first.verifier.count == DeviceLock.verifierLength)
        #expect(first.salt != second.salt, "each lock has its own random salt")
        #expect(first.verifier != second.verifier, "so the same password gives another verifier")
        #expect(first.matches(password))
        #expect(second.matches(password))
        #expect(!first.matches("Grüße aus Köln 2027"))
        // The password is compared as NFC: "ü" typed as u + U+0308 is the same password.
        #expect(first.matches("Gru\u{308}ße aus Ko\u{308}ln 2026"))
    }

    @Test func aDeviceLockRoundTripsInItsCommand() throws {
        let real = DeviceLock(salt: Array(repeating: 0xAB, count: 16), verifier: Array(repeating: 0xCD, count: 32))
        let c = ITCommand(id: 3, pin: pin, kind: .lock, lock: real, issuedAt: 9)
        #expect(try SignedCommand.decode(SignedCommand.sign(c, with: domain).encoded()).verified(domainKey: domainKey, pin: pin).lock == real)
    }

    @Test func aDevicePasswordFollowsTheActivationPasswordsRulesInItsOwnWords() {
        func refusal(_ password: String) -> ActivationPassword.Refused? {
            do { try DeviceLock.validate(password) } catch { return error }
            return nil
        }
        #expect(refusal("Zq9#Xk7") == .init(description: "a device password has at least 8 characters"))
        #expect(refusal("Zq9#Xk7m") == nil)
        #expect(refusal("correct horse battery staple") == nil)
        for bad in ["Zq9#Xk7", "", String(repeating: "Zq9#Xk7m", count: 8) + "w", "pass\nword1", " password1", "password1 "] {
            let description = refusal(bad)?.description ?? ""
            #expect(description.hasPrefix("a device password "), "\(description.debugDescription)")
            #expect(!description.contains("activation"), "\(description.debugDescription)")
        }
    }

    // MARK: The device's confirmation

    @Test(arguments: ITCommand.Kind.allCases)
    func commandDoneRoundTrips(_ kind: ITCommand.Kind) throws {
        for id: UInt64 in [0, 1, 7, .max] {
            let request = DeviceRequest.commandDone(id: id, kind: kind)
            #expect(try DeviceRequest.decode(request.encoded()) == request)
            #expect(try DeviceRequest.decodeStored(request.encoded()) == request)
        }
        let request = DeviceRequest.commandDone(id: 7, kind: kind)
        let f = try PayloadFields(request.encoded())
        #expect(try f.uint(1, "kind") == 16 && f.uint(16, "id") == 7 && f.uint(17, "command kind") == UInt64(kind.rawValue))
        #expect(request.kind == .commandDone && request.kind.rawValue == 16)
        #expect(DeviceRequest.Kind.policyKinds.contains(.commandDone))
        #expect(request.verb == "command done")
        #expect(request.messageID == nil && request.recipients.isEmpty && !request.reconciles && !request.sendsMail && !request.isIM)
    }

    @Test(arguments: [0, 4, 9, 255, 256, 258, .max] as [UInt64])
    func commandDoneWithAnUnknownKindIsRefused(_ kind: UInt64) {
        var w = PayloadWriter()
        w.uint(1, 16); w.uint(16, 7); w.uint(17, kind)
        #expect(throws: PayloadError("unknown command kind")) { try DeviceRequest.decode(w.bytes) }
    }

    @Test func commandDoneWithoutItsFieldsIsRefused() {
        var noID = PayloadWriter()
        noID.uint(1, 16); noID.uint(17, 1)
        #expect(throws: PayloadError("command id missing")) { try DeviceRequest.decode(noID.bytes) }
        var noKind = PayloadWriter()
        noKind.uint(1, 16); noKind.uint(16, 7)
        #expect(throws: PayloadError("command kind missing")) { try DeviceRequest.decode(noKind.bytes) }
        var narrow = PayloadWriter()
        narrow.uint(1, 16); narrow.uint(16, 7); narrow.bytes(17, [1])
        #expect(throws: PayloadError("command kind is not 8 bytes")) { try DeviceRequest.decode(narrow.bytes) }
    }

    @Test func commandRefusedAndPolicyRefusedRoundTripAndNameWhatTheyAnswer() throws {
        let digest = [UInt8](repeating: 0xAB, count: 32)
        for request in [DeviceRequest.commandRefused(id: 9, reason: "the command is not signed by this device's domain"),
                        .commandRefused(id: .max, reason: ""),
                        .policyRefused(version: 3, digest: digest, reason: "not signed")] {
            #expect(try DeviceRequest.decode(request.encoded()) == request)
        }
        #expect(DeviceRequest.Kind.policyKinds.contains(.commandRefused))
        #expect(DeviceRequest.commandRefused(id: 9, reason: "x").kind.rawValue == 17)
        #expect(DeviceRequest.commandRefused(id: 9, reason: "x").verb == "command refused")
        // A refusal names the policy it refuses by digest: without one it is not read.
        var noDigest = PayloadWriter()
        noDigest.uint(1, 15); noDigest.uint(13, 3); noDigest.string(15, "no", max: 16)
        #expect(throws: PayloadError("digest is not 32 bytes")) { try DeviceRequest.decode(noDigest.bytes) }
        var noID = PayloadWriter()
        noID.uint(1, 17); noID.string(15, "why", max: 16)
        #expect(throws: PayloadError("command id missing")) { try DeviceRequest.decode(noID.bytes) }
    }
}
