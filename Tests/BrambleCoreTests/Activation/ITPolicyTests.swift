import Crypto
import Testing

@testable import BrambleCore

/// The IT policy, its signature by the domain key, and the service books.
@Suite struct ITPolicyTests {
    let domain = Curve25519.Signing.PrivateKey()
    var domainKey: [UInt8] { Array(domain.publicKey.rawRepresentation) }
    let policy = ITPolicy(name: "sales-EU_2026.1", version: 7, passwordRequired: true, minPasswordLength: 6,
                          lockTimeoutMinutes: 30, allowedServices: ["push", "mail"])

    // MARK: Signature

    @Test func aSignedPolicyVerifiesToThePolicyUnderItsDomainKey() throws {
        let signed = SignedPolicy.sign(policy, with: domain)
        #expect(signed.policy == policy.encoded())
        #expect(signed.signature.count == 64)
        #expect(try signed.verified(domainKey: domainKey) == policy)
        #expect(try SignedPolicy.sign(.standard, with: domain).verified(domainKey: domainKey) == .standard)
    }

    @Test func aPolicySignedByAnotherKeyIsRefused() {
        let signed = SignedPolicy.sign(policy, with: Curve25519.Signing.PrivateKey())
        #expect(throws: SignedPolicy.Refused(description: "the policy is not signed by this device's domain")) {
            try signed.verified(domainKey: domainKey)
        }
    }

    @Test func aFlippedBitInThePolicyOrTheSignatureIsRefused() {
        let signed = SignedPolicy.sign(policy, with: domain)
        let refusal = SignedPolicy.Refused(description: "the policy is not signed by this device's domain")
        for index in [0, 5, signed.policy.count / 2, signed.policy.count - 1] {
            for bit in [0, 7] {
                var tampered = signed
                tampered.policy[index] ^= UInt8(1 << bit)
                #expect(throws: refusal) { try tampered.verified(domainKey: domainKey) }
            }
        }
        for index in [0, 31, 32, 63] {
            var tampered = signed
            tampered.signature[index] ^= 0x01
            #expect(throws: refusal) { try tampered.verified(domainKey: domainKey) }
        }
        var shorter = signed
        shorter.policy.removeLast()
        #expect(throws: refusal) { try shorter.verified(domainKey: domainKey) }
    }

    @Test func theSignatureCoversALabelNotTheBarePolicyBytes() throws {
        // A signature over the encoding alone (say, made by the domain key for some other
        // purpose) is no policy signature.
        let bare = SignedPolicy(policy: policy.encoded(), signature: Array(try domain.signature(for: policy.encoded())))
        #expect(throws: SignedPolicy.Refused.self) { try bare.verified(domainKey: domainKey) }
    }

    @Test(arguments: [0, 31, 33, 64])
    func aDomainKeyOfTheWrongLengthIsRefused(_ length: Int) {
        let signed = SignedPolicy.sign(policy, with: domain)
        let key = Array((domainKey + domainKey).prefix(length))
        #expect(throws: SignedPolicy.Refused(description: "no valid domain key to check the policy with")) {
            try signed.verified(domainKey: key)
        }
    }

    @Test func aSignedPolicyThatDoesNotReadIsRefused() {
        // Properly signed bytes that are no valid policy: out-of-range values, or no policy at all.
        for bytes in [ITPolicy(name: "x", minPasswordLength: 65).encoded(), [1, 2, 3], []] {
            let signed = SignedPolicy(policy: bytes, signature: Array(try! domain.signature(for: SignedPolicy.label + bytes)))
            #expect(throws: SignedPolicy.Refused.self) { try signed.verified(domainKey: domainKey) }
        }
    }

    @Test func theDigestIsSHA256OfThePolicyBytes() {
        let signed = SignedPolicy.sign(policy, with: domain)
        #expect(signed.digest == Array(SHA256.hash(data: policy.encoded())))
        #expect(signed.digest.count == 32)
        // Not of the signature: two signatures over one policy give one digest.
        var resigned = signed
        resigned.signature = Array(try! domain.signature(for: SignedPolicy.label + signed.policy))
        #expect(resigned.digest == signed.digest)
        var next = policy
        next.version += 1
        #expect(SignedPolicy.sign(next, with: domain).digest != signed.digest)
    }

    // MARK: Encodings

    @Test func aPolicyRoundTrips() throws {
        #expect(try ITPolicy.decode(policy.encoded()) == policy)
        #expect(try ITPolicy.decode(ITPolicy.standard.encoded()) == .standard)
        let nothingAllowed = ITPolicy(name: "locked", version: .max, allowedServices: [])
        #expect(try ITPolicy.decode(nothingAllowed.encoded()) == nothingAllowed)
    }

    @Test func aSignedPolicyRoundTrips() throws {
        let signed = SignedPolicy.sign(policy, with: domain)
        let decoded = try SignedPolicy.decode(signed.encoded())
        #expect(decoded == signed)
        #expect(try decoded.verified(domainKey: domainKey) == policy)
    }

    @Test func aSignedPolicyBoundsItsFields() throws {
        let signed = SignedPolicy.sign(policy, with: domain)
        func encoding(policy: [UInt8]?, signature: [UInt8]?) -> [UInt8] {
            var w = PayloadWriter()
            if let policy { w.bytes(1, policy) }
            if let signature { w.bytes(2, signature) }
            return w.bytes
        }
        #expect(throws: PayloadError.self) { try SignedPolicy.decode(encoding(policy: Array(repeating: 0, count: 4_097), signature: signed.signature)) }
        #expect(try SignedPolicy.decode(encoding(policy: Array(repeating: 0, count: 4_096), signature: signed.signature)).policy.count == 4_096)
        for length in [0, 63, 65, 128] {
            #expect(throws: PayloadError.self) { try SignedPolicy.decode(encoding(policy: signed.policy, signature: Array(repeating: 1, count: length))) }
        }
        #expect(throws: PayloadError("policy missing")) { try SignedPolicy.decode(encoding(policy: nil, signature: signed.signature)) }
        #expect(throws: PayloadError.self) { try SignedPolicy.decode(encoding(policy: signed.policy, signature: nil)) }
        #expect(throws: PayloadError.self) { try SignedPolicy.decode(Array(signed.encoded().dropLast())) }
    }

    @Test func serviceBooksRoundTrip() throws {
        let books = ServiceBooks.offered(srpID: "bramble", email: "ann@example.com", imOffered: true, policy: .standard)
        #expect(try ServiceBooks.decode(books.encoded()) == books)
        #expect(try ServiceBooks.decode(ServiceBooks(books: []).encoded()) == ServiceBooks(books: []))
        let unnamed = ServiceBooks(books: [.init(service: "mail", identifier: "ann@example.com", name: "")])
        #expect(try ServiceBooks.decode(unnamed.encoded()) == unnamed)
    }

    @Test func serviceBooksBoundTheirInput() throws {
        func book(service: String = "push", identifier: String = "bramble", name: String = "n") -> ServiceBooks.Book {
            .init(service: service, identifier: identifier, name: name)
        }
        func raw(_ books: [[UInt8]]) -> [UInt8] {
            var w = PayloadWriter()
            for b in books { w.bytes(1, b) }
            return w.bytes
        }
        func record(service: [UInt8]?, identifier: [UInt8]?, name: [UInt8]?) -> [UInt8] {
            var r = PayloadWriter()
            if let service { r.bytes(1, service) }
            if let identifier { r.bytes(2, identifier) }
            if let name { r.bytes(3, name) }
            return r.bytes
        }
        let thirtyTwo = ServiceBooks(books: Array(repeating: book(), count: 32))
        #expect(try ServiceBooks.decode(thirtyTwo.encoded()) == thirtyTwo)
        #expect(throws: PayloadError.self) { try ServiceBooks.decode(ServiceBooks(books: Array(repeating: book(), count: 33)).encoded()) }
        let a = Array("a".utf8)
        #expect(throws: PayloadError.self) { try ServiceBooks.decode(raw([record(service: Array(repeating: 0x61, count: 17), identifier: a, name: a)])) }
        #expect(throws: PayloadError.self) { try ServiceBooks.decode(raw([record(service: a, identifier: Array(repeating: 0x61, count: 256), name: a)])) }
        #expect(throws: PayloadError.self) { try ServiceBooks.decode(raw([record(service: a, identifier: a, name: Array(repeating: 0x61, count: 129))])) }
        #expect(throws: PayloadError("service missing")) { try ServiceBooks.decode(raw([record(service: nil, identifier: a, name: a)])) }
        #expect(throws: PayloadError("identifier missing")) { try ServiceBooks.decode(raw([record(service: Array("push".utf8), identifier: nil, name: a)])) }
        #expect(throws: PayloadError("unknown service \"a\"")) { try ServiceBooks.decode(raw([record(service: a, identifier: a, name: a)])) }
        #expect(throws: PayloadError.self) { try ServiceBooks.decode(raw([record(service: [0xC3], identifier: a, name: a)])) }
        #expect(throws: PayloadError.self) { try ServiceBooks.decode(raw([[1, 0, 0]])) }
        // The encoder cuts each field to what the decoder reads.
        let long = ServiceBooks(books: [book(identifier: String(repeating: "i", count: 300), name: String(repeating: "é", count: 100))])
        let cut = try ServiceBooks.decode(long.encoded())
        #expect(cut.books[0].identifier.utf8.count == 255 && cut.books[0].name.utf8.count <= 128)
    }

    // MARK: Offered books

    @Test func theBooksOfferedFollowTheAllowedServicesAndIM() {
        func services(_ allowed: [String], im: Bool) -> [String] {
            ServiceBooks.offered(srpID: "bramble", email: "ann@example.com", imOffered: im,
                                 policy: ITPolicy(name: "p", allowedServices: allowed)).books.map(\.service)
        }
        #expect(services(["push", "mail", "im"], im: true) == ["push", "mail", "im"])
        #expect(services(["push", "mail", "im"], im: false) == ["push", "mail"], "no IM book when the node offers no IM")
        #expect(services(["push", "mail"], im: true) == ["push", "mail"], "no IM book when the policy forbids it")
        #expect(services(["im", "mail"], im: true) == ["mail", "im"])
        #expect(services(["push"], im: true) == ["push"])
        #expect(services([], im: true) == [])
    }

    @Test func theOfferedBooksNameTheirRoutingIdentities() throws {
        let books = ServiceBooks.offered(srpID: "bramble", email: "ann@example.com", imOffered: true, policy: .standard).books
        #expect(books.map(\.identifier) == ["bramble", "ann@example.com", "ann@example.com"])
        #expect(books.allSatisfy { !$0.name.isEmpty })
        #expect(books.first?.name.contains("bramble") == true)
    }

    // MARK: Validation

    @Test func aValidPolicyIsValid() throws {
        #expect(try policy.validated() == policy)
        #expect(try ITPolicy.standard.validated() == .standard)
        let edges = ITPolicy(name: String(repeating: "a", count: ITPolicy.maxNameLength), version: 0, minPasswordLength: 64,
                             lockTimeoutMinutes: 1_440, allowedServices: ["im"])
        #expect(try edges.validated() == edges)
        #expect(try ITPolicy(name: "Richtlinie-Groesse_1.0").validated().name == "Richtlinie-Groesse_1.0")
        // Names are ASCII (no look-alikes from other scripts) with a letter or digit (not "." or "..").
        for name in ["Richtlinie-Größe", "strіct", ".", "..", "-_."] {
            #expect(throws: PayloadError.self, "\(name)") { try ITPolicy(name: name).validated() }
        }
    }

    @Test(arguments: [-1, 65, 1_000, Int.min, Int.max])
    func aMinimumPasswordLengthOutside0To64IsRefused(_ value: Int) {
        #expect(throws: PayloadError("min_password_length is 0–64")) {
            try ITPolicy(name: "p", minPasswordLength: value).validated()
        }
    }

    @Test(arguments: [-1, 1_441, Int.min, Int.max])
    func aLockTimeoutOutside0To1440IsRefused(_ value: Int) {
        #expect(throws: PayloadError("lock_timeout_minutes is 0–1440")) {
            try ITPolicy(name: "p", lockTimeoutMinutes: value).validated()
        }
    }

    @Test(arguments: [["fax"], ["push", "Mail"], ["push", ""], ["push", "push"], ["mail", "im", "mail"]])
    func unknownOrRepeatedServicesAreRefused(_ services: [String]) {
        #expect(throws: PayloadError.self) { try ITPolicy(name: "p", allowedServices: services).validated() }
    }

    @Test(arguments: ["", "a b", "a/b", "a:b", "x\u{0}", "tab\t", "new\nline", "emoji😀", String(repeating: "a", count: ITPolicy.maxNameLength + 1)])
    func aBadNameIsRefused(_ name: String) {
        #expect(throws: PayloadError.self) { try ITPolicy(name: name).validated() }
    }

    @Test func decodingRefusesWhatValidationRefuses() {
        var w = PayloadWriter()
        w.string(1, "p", max: 64); w.uint(2, 1); w.uint(4, 65)
        #expect(throws: PayloadError.self) { try ITPolicy.decode(w.bytes) }
        var huge = PayloadWriter()
        huge.string(1, "p", max: 64); huge.uint(2, 1); huge.uint(5, .max)
        #expect(throws: PayloadError.self) { try ITPolicy.decode(huge.bytes) }
        #expect(throws: PayloadError.self) { try ITPolicy.decode(ITPolicy(name: "p", allowedServices: ["push", "push"]).encoded()) }
        #expect(throws: PayloadError.self) { try ITPolicy.decode(ITPolicy(name: "p", allowedServices: ["fax"]).encoded()) }
        #expect(throws: PayloadError.self) { try ITPolicy.decode(ITPolicy(name: "a b").encoded()) }
        var noName = PayloadWriter()
        noName.uint(2, 1)
        #expect(throws: PayloadError("name missing")) { try ITPolicy.decode(noName.bytes) }
        var noVersion = PayloadWriter()
        noVersion.string(1, "p", max: 64)
        #expect(throws: PayloadError("version missing")) { try ITPolicy.decode(noVersion.bytes) }
        var many = PayloadWriter()
        many.string(1, "p", max: 64); many.uint(2, 1)
        for _ in 0..<17 { many.string(6, "push", max: 16) }
        #expect(throws: PayloadError.self) { try ITPolicy.decode(many.bytes) }
    }

    @Test func absentOptionalFieldsDecodeToTheirDefaults() throws {
        var w = PayloadWriter()
        w.string(1, "bare", max: 64); w.uint(2, 3)
        #expect(try ITPolicy.decode(w.bytes) == ITPolicy(name: "bare", version: 3, passwordRequired: false, minPasswordLength: 0,
                                                        lockTimeoutMinutes: 0, allowedServices: []))
    }
}
