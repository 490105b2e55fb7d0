import Crypto
import Testing

@testable import BrambleCore

/// X25519 as swift-crypto computes it, against RFC 7748's vectors: CPace's scalar_mult.
@Suite struct X25519VectorTests {
    struct Vector: Sendable, CustomTestStringConvertible {
        let scalar: String, u: String, output: String
        var testDescription: String { "scalar \(scalar.prefix(16))…" }
    }

    /// RFC 7748 Section 5.2: scalar, u-coordinate (bit 255 set in the second), output.
    @Test(arguments: [
        Vector(scalar: "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
               u: "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
               output: "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"),
        Vector(scalar: "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
               u: "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
               output: "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"),
    ])
    func singleVector(_ vector: Vector) throws {
        let (scalar, u, output) = (hexBytes(vector.scalar), hexBytes(vector.u), hexBytes(vector.output))
        #expect(try x25519(scalar, u) == output)
        #expect(CPace.scalarMultVerify(scalar: scalar, point: u) == output)
    }

    /// RFC 7748 Section 5.2: k = u = 9, then k ← X25519(k, u) and u ← the old k.
    @Test func iteratedOnceAndAThousandTimes() throws {
        var k = [9] + [UInt8](repeating: 0, count: 31)
        var u = k
        for iteration in 1...1000 {
            (k, u) = (try x25519(k, u), k)
            if iteration == 1 {
                #expect(k == hexBytes("422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079"))
            }
        }
        #expect(k == hexBytes("684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51"))
    }

    /// RFC 7748 Section 6.1.
    @Test func diffieHellman() throws {
        let alicePrivate = hexBytes("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
        let alicePublic = hexBytes("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        let bobPrivate = hexBytes("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
        let bobPublic = hexBytes("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        let shared = hexBytes("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
        let basePoint = [9] + [UInt8](repeating: 0, count: 31)
        #expect(try x25519(alicePrivate, basePoint) == alicePublic)
        #expect(try x25519(bobPrivate, basePoint) == bobPublic)
        #expect(try x25519(alicePrivate, bobPublic) == shared)
        #expect(try x25519(bobPrivate, alicePublic) == shared)
        let alice = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: alicePrivate)
        #expect(Array(alice.publicKey.rawRepresentation) == alicePublic)
    }

    private func x25519(_ scalar: [UInt8], _ u: [UInt8]) throws -> [UInt8] {
        let key = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: scalar)
        let secret = try key.sharedSecretFromKeyAgreement(with: .init(rawRepresentation: u))
        return secret.withUnsafeBytes { Array($0) }
    }
}

/// Every CPACE-X25519-SHA512 vector of draft-irtf-cfrg-cpace-21, copied from its text:
/// Appendix A (string functions) and Appendix B.1 (X25519 with SHA-512).
@Suite struct CPaceDraftVectorTests {
    // B.1.1 inputs; B.1.2 and B.1.3 scalars and associated data.
    let password = Array("Password".utf8)
    let channelIdentifier = hexBytes("0b415f696e69746961746f720b425f726573706f6e646572")
    let sessionID = hexBytes("7e4b4791d6a8ef019b936c79fb7f2c57")
    let ya = hexBytes("21b4f4bd9e64ed355c3eb676a28ebedaf6d8f17bdc365995b319097153044080")
    let yb = hexBytes("848b0779ff415f0af4ea14df9dd1d3c29ac41d836c7808896c4eba19c51ac40a")
    let adA = Array("ADa".utf8)
    let adB = Array("ADb".utf8)
    // Outputs.
    let g = hexBytes("d04bf6d41f6a289632a2e929fa29bebd51092512a7829fdde7d314b62f05a73f")
    let shareA = hexBytes("1d13c89278cdadd826f6d8d7f887701430f8380ddc17611cdd6dc989ce0c9f32")
    let shareB = hexBytes("248cccf6d5cdc3646f0ad593f9e6cef4e69d4945f8372e623512ecea32185623")
    let k = hexBytes("5b067effbdc0b2a0e1d907b21ebb25cfedb96a852179a847c37e43ee71322c6b")
    let iskIR = hexBytes("""
        6e19b875f7a561d6b3ca3dbb9ef42ac55de3e717881018204b8922b4d5e53bb2aa82c300bea7b65d2b671da7\
        1922ddf6472301b79bc270adfa8bf413285f2263
        """)

    // MARK: Appendix A

    /// A.1.2 prepend_len.
    @Test func prependLength() {
        #expect(CPace.prependLength([]) == [0x00])
        #expect(CPace.prependLength(Array("1234".utf8)) == hexBytes("0431323334"))
        let upTo127 = (0..<127).map(UInt8.init)
        let upTo128 = (0..<128).map(UInt8.init)
        #expect(CPace.prependLength(upTo127) == [0x7F] + upTo127)
        #expect(CPace.prependLength(upTo128) == [0x80, 0x01] + upTo128)
        // LEB128 beyond the draft's vectors: 300 = 0b10_0101100.
        #expect(CPace.prependLength([UInt8](repeating: 7, count: 300)).prefix(3) == [0xAC, 0x02, 7])
    }

    /// A.1.4 lv_cat.
    @Test func lengthValueConcatenation() {
        let result = CPace.lengthValueConcatenation(Array("1234".utf8), Array("5".utf8), [], Array("678".utf8))
        #expect(result == hexBytes("043132333401350003363738"))
    }

    /// A.3.3 ordered concatenation, including its lexicographic ordering cases.
    @Test func orderedConcatenation() {
        #expect(CPace.orderedConcatenation(Array("ABCD".utf8), Array("BCD".utf8)) == hexBytes("6f6342434441424344"))
        #expect(CPace.orderedConcatenation(Array("BCD".utf8), Array("ABCDE".utf8)) == hexBytes("6f634243444142434445"))
        let larger = CPace.isLexicographicallyLarger
        #expect(!larger([0], [0, 0]))
        #expect(larger([1], [0, 0]))
        #expect(larger([0, 0], [0]))
        #expect(!larger([0, 0], [1]))
        #expect(!larger([0, 1], [1]))
        #expect(!larger(Array("ABCD".utf8), Array("BCD".utf8)))
    }

    /// A.3.5 transcript_ir and A.3.7 transcript_oc.
    @Test func transcripts() {
        let (partyA, partyB) = (Array("PartyA".utf8), Array("PartyB".utf8))
        #expect(CPace.initiatorResponderTranscript(
            initiatorShare: Array("123".utf8), initiatorAssociatedData: partyA,
            responderShare: Array("234".utf8), responderAssociatedData: partyB)
            == hexBytes("03313233065061727479410332333406506172747942"))
        #expect(CPace.initiatorResponderTranscript(
            initiatorShare: Array("3456".utf8), initiatorAssociatedData: partyA,
            responderShare: Array("2345".utf8), responderAssociatedData: partyB)
            == hexBytes("043334353606506172747941043233343506506172747942"))
        #expect(CPace.orderedTranscript(Array("123".utf8), partyA, Array("234".utf8), partyB)
            == hexBytes("6f6303323334065061727479420331323306506172747941"))
        #expect(CPace.orderedTranscript(Array("3456".utf8), partyA, Array("2345".utf8), partyB)
            == hexBytes("6f63043334353606506172747941043233343506506172747942"))
    }

    // MARK: Appendix B.1

    /// B.1.1 calculate_generator: the generator string (ZPAD 109), its hash, the decoded
    /// field element, the generator.
    @Test func calculateGenerator() {
        let generatorString = CPace.generatorString(
            password: password, channelIdentifier: channelIdentifier, sessionID: sessionID)
        #expect(generatorString == hexBytes("""
            0843506163653235350850617373776f72646d000000000000000000\
            00000000000000000000000000000000000000000000000000000000\
            00000000000000000000000000000000000000000000000000000000\
            00000000000000000000000000000000000000000000000000000000\
            00000000000000000000000000000000180b415f696e69746961746f\
            720b425f726573706f6e646572107e4b4791d6a8ef019b936c79fb7f\
            2c57
            """))
        #expect(generatorString.count == 170)
        let hash = Array(SHA512.hash(data: generatorString).prefix(32))
        #expect(hash == hexBytes("03998087bdb1a2617bbe25ef5a7c18cd4f84f902328701790958755ee4aed1d3"))
        #expect(Field25519(littleEndianBytes: hash).littleEndianBytes
            == hexBytes("03998087bdb1a2617bbe25ef5a7c18cd4f84f902328701790958755ee4aed153"))
        #expect(CPace.generator(password: password, channelIdentifier: channelIdentifier, sessionID: sessionID) == g)
    }

    /// B.1.2 and B.1.3 shares, B.1.4 K both ways.
    @Test func sharesAndSharedPoint() throws {
        #expect(CPace.scalarMultVerify(scalar: ya, point: g) == shareA)
        #expect(CPace.scalarMultVerify(scalar: yb, point: g) == shareB)
        #expect(try CPace.sharedPoint(scalar: ya, peerShare: shareB) == k)
        #expect(try CPace.sharedPoint(scalar: yb, peerShare: shareA) == k)
        let initiator = try CPace.Initiator(
            password: password, channelIdentifier: channelIdentifier, sessionID: sessionID,
            associatedData: adA, scalar: ya)
        #expect(initiator.share == shareA)
    }

    /// B.1.5 ISK, initiator-responder.
    @Test func intermediateSessionKeyInitiatorResponder() {
        let transcript = CPace.initiatorResponderTranscript(
            initiatorShare: shareA, initiatorAssociatedData: adA, responderShare: shareB,
            responderAssociatedData: adB)
        #expect(transcript == hexBytes("""
            201d13c89278cdadd826f6d8d7f887701430f8380ddc17611cdd6dc989ce0c9f320341446120248cccf6d5cdc3\
            646f0ad593f9e6cef4e69d4945f8372e623512ecea3218562303414462
            """))
        #expect(CPace.domainSeparator + Array("_ISK".utf8) == hexBytes("43506163653235355f49534b"))
        #expect(CPace.lengthValueConcatenation(CPace.domainSeparator + Array("_ISK".utf8), sessionID, k) + transcript
            == hexBytes("""
                0c43506163653235355f49534b107e4b4791d6a8ef019b936c79fb7f2c57205b067effbdc0b2a0e1d907b21ebb\
                25cfedb96a852179a847c37e43ee71322c6b201d13c89278cdadd826f6d8d7f887701430f8380ddc17611cdd6d\
                c989ce0c9f320341446120248cccf6d5cdc3646f0ad593f9e6cef4e69d4945f8372e623512ecea32185623034144\
                62
                """))
        #expect(CPace.intermediateSessionKey(sessionID: sessionID, sharedPoint: k, transcript: transcript) == iskIR)
    }

    /// B.1.6 ISK, parallel (ordered-concatenation) setting.
    @Test func intermediateSessionKeyParallel() {
        let transcript = CPace.orderedTranscript(shareA, adA, shareB, adB)
        #expect(transcript == hexBytes("""
            6f6320248cccf6d5cdc3646f0ad593f9e6cef4e69d4945f8372e623512ecea3218562303414462201d13c89278\
            cdadd826f6d8d7f887701430f8380ddc17611cdd6dc989ce0c9f3203414461
            """))
        #expect(CPace.intermediateSessionKey(sessionID: sessionID, sharedPoint: k, transcript: transcript)
            == hexBytes("""
                eef745e2f6e7ae2b1a1e53da340e777167a07fe150436648c51fb199c11f3cbabfc683a2b48e1af5881940dc39\
                8d375c95e6b4ae9948a45b8770de0656382be4
                """))
    }

    /// B.1.7 sid_output for both transcripts.
    @Test func sessionIDOutput() {
        let ir = CPace.initiatorResponderTranscript(
            initiatorShare: shareA, initiatorAssociatedData: adA, responderShare: shareB,
            responderAssociatedData: adB)
        #expect(CPace.sessionIDOutput(transcript: ir) == hexBytes("""
            cbc73f62589bbc96ab6a95ec2363df621e93bc3b0cea83ba6b9571d005fa8f5d2d08f7165622777fa484c02a9e\
            6b20a84ee2dbebae8c53be757dcfc0eebdeb5f
            """))
        #expect(CPace.sessionIDOutput(transcript: CPace.orderedTranscript(shareA, adA, shareB, adB)) == hexBytes("""
            3a504e9c7f1f7fa7314861e2c487d13f28566f3043f0ca760d22c4911aca0dd8b1f12a7ad0862eb92d08a76120\
            140412ae6b8322e99d75cf1d20d8cfde2b40fe
            """))
    }

    /// The whole run through the public API with the draft's scalars reaches B.1.5's ISK.
    /// Ta and Tb have no vectors in the draft: the expected tags were computed for this test
    /// with Python's hashlib and hmac from Section 10.4's formulas and the draft's ISK.
    @Test func fullRunWithTheDraftsScalars() throws {
        let initiator = try CPace.Initiator(
            password: password, channelIdentifier: channelIdentifier, sessionID: sessionID,
            associatedData: adA, scalar: ya)
        let responder = try CPace.Responder(
            password: password, channelIdentifier: channelIdentifier, sessionID: sessionID,
            initiatorShare: initiator.share, initiatorAssociatedData: adA, associatedData: adB, scalar: yb)
        #expect(responder.share == shareB)
        #expect(responder.isk == iskIR)
        #expect(responder.confirmation == hexBytes("""
            b792827dc20f93390415cba5f17cbdbb00556053ce74d334e16ffd52258c132036f933ece5527ca39ccd6d25ac\
            7030c15b15ae6ee45b7665e5df9dc651ad9362
            """))
        let (isk, ta) = try initiator.finish(
            responderShare: responder.share, responderAssociatedData: adB,
            responderConfirmation: responder.confirmation)
        #expect(isk == iskIR)
        #expect(ta == hexBytes("""
            214b05fed53d47d1ac815b42eae64cc68f93f2013db81db04cc9a4f12a1a5ca513cb2458c9071bbecf72055687\
            2de984260fdc2b576c8f5331c455de81bd22dd
            """))
        #expect(responder.verifyInitiatorConfirmation(ta))
    }

    /// B.1.10: scalar_mult_vfy(s, uX) = qX for the low-order points and their non-canonical
    /// encodings (bit 255 set, or at least p).
    struct LowOrderVector: Sendable, CustomTestStringConvertible {
        let u: String, q: String, aborts: Bool
        init(_ u: String, _ q: String, _ aborts: Bool) { (self.u, self.q, self.aborts) = (u, q, aborts) }
        var testDescription: String { "u = \(u.prefix(16))…" }
    }

    static let lowOrderVectors: [LowOrderVector] = [
        LowOrderVector("0000000000000000000000000000000000000000000000000000000000000000", zero, true),
        LowOrderVector("0100000000000000000000000000000000000000000000000000000000000000", zero, true),
        LowOrderVector("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", zero, true),
        LowOrderVector("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800", zero, true),
        LowOrderVector("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157", zero, true),
        LowOrderVector("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", zero, true),
        LowOrderVector("daffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
         "d8e2c776bbacd510d09fd9278b7edcd25fc5ae9adfba3b6e040e8d3b71b21806", false),
        LowOrderVector("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", zero, true),
        LowOrderVector("dbffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
         "c85c655ebe8be44ba9c0ffde69f2fe10194458d137f09bbff725ce58803cdb38", false),
        LowOrderVector("d9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
         "db64dafa9b8fdd136914e61461935fe92aa372cb056314e1231bc4ec12417456", false),
        LowOrderVector("cdeb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880",
         "e062dcd5376d58297be2618c7498f55baa07d7e03184e8aada20bca28888bf7a", false),
        LowOrderVector("4c9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7",
         "993c6ad11c4c29da9a56f7691fd0ff8d732e49de6250b6c2e80003ff4629a175", false),
    ]
    static let zero = String(repeating: "0", count: 64)
    static let s = hexBytes("af46e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449aff")

    @Test(arguments: lowOrderVectors)
    func lowOrderPoint(_ vector: LowOrderVector) throws {
        let (u, q, aborts) = (vector.u, vector.q, vector.aborts)
        #expect(CPace.scalarMultVerify(scalar: Self.s, point: hexBytes(u)) == hexBytes(q))
        // u0–u5 and u7 must abort when they arrive as Ya or Yb; the others must not.
        let initiator = try CPace.Initiator(
            password: password, channelIdentifier: channelIdentifier, sessionID: sessionID, associatedData: adA)
        let responderResult = Result { () throws(CPaceError) in
            try CPace.Responder(
                password: password, channelIdentifier: channelIdentifier, sessionID: sessionID,
                initiatorShare: hexBytes(u), initiatorAssociatedData: adA, associatedData: adB)
        }
        let initiatorResult = Result { () throws(CPaceError) in
            try initiator.finish(
                responderShare: hexBytes(u), responderAssociatedData: adB,
                responderConfirmation: [UInt8](repeating: 0, count: CPace.confirmationLength))
        }
        if aborts {
            #expect(throws: CPaceError.invalidShare) { try responderResult.get() }
            #expect(throws: CPaceError.invalidShare) { try initiatorResult.get() }
        } else {
            #expect(throws: Never.self) { try responderResult.get() }
            // Not low order, so the run goes on, and fails only at the (forged) tag.
            #expect(throws: CPaceError.confirmationFailed) { try initiatorResult.get() }
        }
    }
}

@Suite struct CPacePropertyTests {
    let password = Array("correct horse battery staple".utf8)
    let channelIdentifier = Array("bramble device-pairing v1".utf8)
    let sessionID = CPace.randomSessionID()
    let adA = Array("initiator".utf8)
    let adB = Array("responder".utf8)

    func initiator(password: [UInt8]? = nil) throws -> CPace.Initiator {
        try CPace.Initiator(
            password: password ?? self.password, channelIdentifier: channelIdentifier,
            sessionID: sessionID, associatedData: adA)
    }

    func responder(
        to share: [UInt8], password: [UInt8]? = nil, channelIdentifier: [UInt8]? = nil,
        sessionID: [UInt8]? = nil, initiatorAssociatedData: [UInt8]? = nil
    ) throws -> CPace.Responder {
        try CPace.Responder(
            password: password ?? self.password, channelIdentifier: channelIdentifier ?? self.channelIdentifier,
            sessionID: sessionID ?? self.sessionID, initiatorShare: share,
            initiatorAssociatedData: initiatorAssociatedData ?? adA, associatedData: adB)
    }

    @Test func honestPartiesAgreeOnTheKeyAndConfirmEachOther() throws {
        for _ in 0..<10 {
            let a = try initiator()
            let b = try responder(to: a.share)
            let (isk, ta) = try a.finish(
                responderShare: b.share, responderAssociatedData: adB, responderConfirmation: b.confirmation)
            #expect(isk == b.isk)
            #expect(isk.count == CPace.iskLength && ta.count == CPace.confirmationLength)
            #expect(b.verifyInitiatorConfirmation(ta))
            #expect(CPace.verifyInitiatorConfirmation(
                ta, isk: b.isk, sessionID: sessionID, initiatorShare: a.share, initiatorAssociatedData: adA,
                responderShare: b.share, responderAssociatedData: adB))
        }
    }

    @Test func freshRunsDrawFreshScalars() throws {
        #expect(try initiator().share != initiator().share)
        #expect(CPace.randomSessionID() != CPace.randomSessionID())
    }

    @Test func aWrongPasswordFailsTheInitiatorsCheckOfTb() throws {
        let a = try initiator()
        let b = try responder(to: a.share, password: Array("correct horse battery stapler".utf8))
        #expect(throws: CPaceError.confirmationFailed) {
            try a.finish(responderShare: b.share, responderAssociatedData: adB, responderConfirmation: b.confirmation)
        }
    }

    @Test func aTaFromTheWrongPasswordIsRefusedByTheResponder() throws {
        // An attacker who guessed wrong plays the initiator and forges Ta under its own key.
        let b = try responder(to: try initiator().share)
        let attacker = try initiator(password: Array("guess".utf8))
        let attackerView = try responder(to: attacker.share, password: Array("guess".utf8))
        let forged = CPace.confirmationTag(
            key: CPace.confirmationKey(sessionID: sessionID, isk: attackerView.isk),
            share: attacker.share, associatedData: adA)
        #expect(!b.verifyInitiatorConfirmation(forged))
        #expect(!b.verifyInitiatorConfirmation([UInt8](repeating: 0, count: CPace.confirmationLength)))
        #expect(!CPace.verifyInitiatorConfirmation(
            forged, isk: b.isk, sessionID: sessionID, initiatorShare: attacker.share, initiatorAssociatedData: adA,
            responderShare: b.share, responderAssociatedData: adB))
    }

    @Test func anotherChannelIdentifierOrSessionIDFails() throws {
        let a = try initiator()
        for b in [
            try responder(to: a.share, channelIdentifier: Array("another channel".utf8)),
            try responder(to: a.share, sessionID: CPace.randomSessionID()),
        ] {
            #expect(throws: CPaceError.confirmationFailed) {
                try a.finish(responderShare: b.share, responderAssociatedData: adB, responderConfirmation: b.confirmation)
            }
        }
    }

    @Test func aTamperedYaOrADaFails() throws {
        let a = try initiator()
        var tamperedShare = a.share
        tamperedShare[5] ^= 0x01
        for b in [try responder(to: tamperedShare), try responder(to: a.share, initiatorAssociatedData: Array("initiatoR".utf8))] {
            #expect(throws: CPaceError.confirmationFailed) {
                try a.finish(responderShare: b.share, responderAssociatedData: adB, responderConfirmation: b.confirmation)
            }
        }
    }

    @Test func aTamperedYbADbOrTbFails() throws {
        let a = try initiator()
        let b = try responder(to: a.share)
        var tamperedShare = b.share
        tamperedShare[0] ^= 0x80
        var tamperedTag = b.confirmation
        tamperedTag[63] ^= 0x01
        let attempts: [(share: [UInt8], ad: [UInt8], tag: [UInt8])] = [
            (tamperedShare, adB, b.confirmation),
            (b.share, Array("responder ".utf8), b.confirmation),
            (b.share, adB, tamperedTag),
            (b.share, adB, Array(b.confirmation.dropLast())),
            (b.share, adB, []),
        ]
        for attempt in attempts {
            #expect(throws: CPaceError.confirmationFailed) {
                try a.finish(responderShare: attempt.share, responderAssociatedData: attempt.ad, responderConfirmation: attempt.tag)
            }
        }
    }

    @Test func aTaForAnotherTranscriptIsRefused() throws {
        let a = try initiator()
        let b = try responder(to: a.share)
        let (isk, ta) = try a.finish(responderShare: b.share, responderAssociatedData: adB, responderConfirmation: b.confirmation)
        #expect(!CPace.verifyInitiatorConfirmation(
            ta, isk: isk, sessionID: sessionID, initiatorShare: a.share, initiatorAssociatedData: Array("other".utf8),
            responderShare: b.share, responderAssociatedData: adB))
        #expect(!CPace.verifyInitiatorConfirmation(
            ta, isk: isk, sessionID: CPace.randomSessionID(), initiatorShare: a.share, initiatorAssociatedData: adA,
            responderShare: b.share, responderAssociatedData: adB))
        #expect(!CPace.verifyInitiatorConfirmation(
            Array(ta.dropLast()), isk: isk, sessionID: sessionID, initiatorShare: a.share,
            initiatorAssociatedData: adA, responderShare: b.share, responderAssociatedData: adB))
        #expect(!CPace.verifyInitiatorConfirmation(
            ta, isk: Array(isk.dropLast()), sessionID: sessionID, initiatorShare: a.share,
            initiatorAssociatedData: adA, responderShare: b.share, responderAssociatedData: adB))
    }

    @Test func sharesOfTheWrongLengthOrOfLowOrderAreInvalid() throws {
        let a = try initiator()
        let lowOrder = [UInt8](repeating: 0, count: 32)
        for share in [Array(a.share.dropLast()), a.share + [0], [], lowOrder, [1] + [UInt8](repeating: 0, count: 31)] {
            #expect(throws: CPaceError.invalidShare) { try responder(to: share) }
            #expect(throws: CPaceError.invalidShare) {
                try a.finish(responderShare: share, responderAssociatedData: adB, responderConfirmation: [])
            }
        }
    }

    @Test func malformedOwnInputsAreRefused() {
        let session = sessionID
        #expect(throws: CPaceError.invalidInput("session ID must be 16 bytes, got 15")) {
            try CPace.Initiator(password: password, channelIdentifier: [], sessionID: Array(session.dropLast()), associatedData: [])
        }
        #expect(throws: CPaceError.invalidInput("scalar must be 32 bytes, got 31")) {
            try CPace.Initiator(
                password: password, channelIdentifier: [], sessionID: session, associatedData: [],
                scalar: [UInt8](repeating: 1, count: 31))
        }
        #expect(throws: CPaceError.invalidInput("password must not be empty")) {
            try CPace.Responder(
                password: [], channelIdentifier: [], sessionID: session,
                initiatorShare: [UInt8](repeating: 9, count: 32), initiatorAssociatedData: [], associatedData: [])
        }
    }

    @Test func descriptionsShowNoSecrets() throws {
        let scalar = [UInt8](repeating: 0x5A, count: 32)
        let a = try CPace.Initiator(
            password: password, channelIdentifier: channelIdentifier, sessionID: sessionID,
            associatedData: adA, scalar: scalar)
        let b = try responder(to: a.share)
        let secrets = [CPace.hex(scalar), CPace.hex(b.isk), "90, 90, 90"]  // 0x5A = 90
        var dumped = ""
        dump(a, to: &dumped)
        dump(b, to: &dumped)
        let shown = [a.description, String(reflecting: a), "\(a)", b.description, String(reflecting: b), dumped]
        for text in shown {
            for secret in secrets { #expect(!text.contains(secret)) }
        }
        #expect(a.description.contains(CPace.hex(a.share)))
    }
}
