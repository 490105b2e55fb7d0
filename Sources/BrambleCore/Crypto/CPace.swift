import Crypto

/// Why a CPace run was refused. None of the cases carries secret material.
public enum CPaceError: Error, Equatable, Sendable {
    /// The peer's share is not 32 bytes, or X25519 with it gives the neutral element (all
    /// zero): a low-order point on the curve or its twist. The draft's "abort if K = G.I".
    case invalidShare
    /// The peer's key-confirmation tag is wrong: another password, channel identifier or
    /// session ID, or a share or associated data changed on the way.
    case confirmationFailed
    /// A caller's own input is malformed; the text says which.
    case invalidInput(String)
}

/// CPace, the balanced password-authenticated key exchange of draft-irtf-cfrg-cpace-21,
/// cipher suite CPACE-X25519-SHA512 (Section 5), in the initiator-responder setting, with
/// the explicit key confirmation the draft describes in Section 10.4.
///
/// Flow: the initiator sends (Ya, ADa); the responder answers (Yb, ADb, Tb); the initiator
/// checks Tb and sends Ta; the responder checks Ta. Both then hold the same ISK, which
/// should go through a KDF (e.g. HKDF) before use (draft Section 4).
///
/// Key confirmation (draft Section 10.4, "one suitable option"), with MAC = HMAC-SHA512:
///     mac_key = SHA-512(b"CPaceMac" || sid || ISK)
///     Ta = HMAC(mac_key, lv_cat(Ya, ADa)),  Tb = HMAC(mac_key, lv_cat(Yb, ADb))
/// The draft gives no test vectors for it.
public enum CPace {
    /// Ya and Yb: an X25519 u-coordinate.
    public static let shareLength = 32
    /// Bramble's sid: 16 random bytes chosen per run and known to both sides before it
    /// starts (the draft recommends a fresh sid per session, Sections 4.1 and 10.9).
    public static let sessionIDLength = 16
    /// Ta and Tb: HMAC-SHA512.
    public static let confirmationLength = 64
    /// The ISK: one SHA-512 output.
    public static let iskLength = 64

    /// G_X25519.DSI (draft Section 8.2).
    static let domainSeparator = Array("CPace255".utf8)
    /// H.s_in_bytes for SHA-512: its input block size.
    static let hashBlockSize = 128
    static let scalarLength = 32

    /// Sixteen fresh random bytes for a session ID.
    public static func randomSessionID() -> [UInt8] {
        randomBytes(count: sessionIDLength)
    }

    // MARK: Generator (draft Sections 8.1, 8.2 and Appendix A)

    /// G_X25519.calculate_generator(SHA-512, PRS, CI, sid): the generator string hashed,
    /// its first 32 bytes decoded as a u-coordinate (RFC 7748 decodeUCoordinate, bit 255
    /// masked), mapped onto curve25519 with Elligator 2; the u-coordinate, 32 bytes.
    public static func generator(password: [UInt8], channelIdentifier: [UInt8], sessionID: [UInt8]) -> [UInt8] {
        let string = generatorString(
            password: password, channelIdentifier: channelIdentifier, sessionID: sessionID)
        let hash = Array(SHA512.hash(data: string).prefix(32))  // H.hash(gen_str, 32)
        let fieldElement = Field25519(littleEndianBytes: hash)
        return Elligator2.mapToCurve25519(fieldElement).u.littleEndianBytes
    }

    /// generator_string(DSI, PRS, CI, sid, s_in_bytes) = lv_cat(DSI, PRS, zero_bytes(len_zpad),
    /// CI, sid). The padding fills the hash's first block after DSI and PRS, so that block
    /// holds the password and nothing session-specific.
    static func generatorString(
        domainSeparator: [UInt8] = domainSeparator, password: [UInt8], channelIdentifier: [UInt8],
        sessionID: [UInt8], blockSize: Int = hashBlockSize
    ) -> [UInt8] {
        let paddingLength = max(
            0, blockSize - 1 - prependLength(password).count - prependLength(domainSeparator).count)
        return lengthValueConcatenation(
            domainSeparator, password, [UInt8](repeating: 0, count: paddingLength), channelIdentifier,
            sessionID)
    }

    /// prepend_len: the length as unsigned LEB128 (7 bits a byte, least significant first,
    /// bit 7 set while more follow), then the bytes.
    static func prependLength(_ data: [UInt8]) -> [UInt8] {
        var encoded: [UInt8] = []
        var length = data.count
        repeat {
            let low = UInt8(length & 0x7F)
            length >>= 7
            encoded.append(length == 0 ? low : low | 0x80)
        } while length != 0
        return encoded + data
    }

    /// lv_cat(a0, a1, ...) = prepend_len(a0) || prepend_len(a1) || ...
    static func lengthValueConcatenation(_ parts: [UInt8]...) -> [UInt8] {
        parts.flatMap(prependLength)
    }

    // MARK: Transcripts and keys (draft Sections 6.3, 7.2, 10.4, 10.6; Appendix A.3)

    /// transcript_ir(Ya, ADa, Yb, ADb) = lv_cat(Ya, ADa) || lv_cat(Yb, ADb).
    static func initiatorResponderTranscript(
        initiatorShare: [UInt8], initiatorAssociatedData: [UInt8], responderShare: [UInt8],
        responderAssociatedData: [UInt8]
    ) -> [UInt8] {
        lengthValueConcatenation(initiatorShare, initiatorAssociatedData)
            + lengthValueConcatenation(responderShare, responderAssociatedData)
    }

    /// transcript_oc, for the symmetric setting (no fixed roles). Bramble uses
    /// initiator-responder; this is here for the draft's test vectors.
    static func orderedTranscript(
        _ shareA: [UInt8], _ associatedDataA: [UInt8], _ shareB: [UInt8], _ associatedDataB: [UInt8]
    ) -> [UInt8] {
        orderedConcatenation(
            lengthValueConcatenation(shareA, associatedDataA),
            lengthValueConcatenation(shareB, associatedDataB))
    }

    /// o_cat: b"oc", then the lexicographically larger string, then the other.
    static func orderedConcatenation(_ first: [UInt8], _ second: [UInt8]) -> [UInt8] {
        Array("oc".utf8) + (isLexicographicallyLarger(first, second) ? first + second : second + first)
    }

    /// lexiographically_larger (Appendix A.3.1): the first differing byte decides; when one
    /// string is a prefix of the other, the longer is larger.
    static func isLexicographicallyLarger(_ first: [UInt8], _ second: [UInt8]) -> Bool {
        second.lexicographicallyPrecedes(first)
    }

    /// ISK = H.hash(lv_cat(DSI || b"_ISK", sid, K) || transcript) (draft Section 7.2).
    static func intermediateSessionKey(sessionID: [UInt8], sharedPoint: [UInt8], transcript: [UInt8]) -> [UInt8] {
        let prefix = lengthValueConcatenation(domainSeparator + Array("_ISK".utf8), sessionID, sharedPoint)
        return Array(SHA512.hash(data: prefix + transcript))
    }

    /// sid_output = H.hash(b"CPaceSidOutput" || transcript) (draft Section 10.6), for runs
    /// without a session ID. Bramble always has one; kept for the draft's test vectors.
    static func sessionIDOutput(transcript: [UInt8]) -> [UInt8] {
        Array(SHA512.hash(data: Array("CPaceSidOutput".utf8) + transcript))
    }

    /// mac_key = H.hash(b"CPaceMac" || sid || ISK) (draft Section 10.4).
    /// Both parties' derivation from K: the initiator-responder transcript, the ISK, and
    /// the key-confirmation MAC key.
    static func sessionKeys(sessionID: [UInt8], sharedPoint: [UInt8], initiatorShare: [UInt8], initiatorAssociatedData: [UInt8],
                            responderShare: [UInt8], responderAssociatedData: [UInt8]) -> (isk: [UInt8], key: SymmetricKey) {
        let transcript = initiatorResponderTranscript(initiatorShare: initiatorShare, initiatorAssociatedData: initiatorAssociatedData,
                                                      responderShare: responderShare, responderAssociatedData: responderAssociatedData)
        let isk = intermediateSessionKey(sessionID: sessionID, sharedPoint: sharedPoint, transcript: transcript)
        return (isk, confirmationKey(sessionID: sessionID, isk: isk))
    }

    static func confirmationKey(sessionID: [UInt8], isk: [UInt8]) -> SymmetricKey {
        SymmetricKey(data: Array(SHA512.hash(data: Array("CPaceMac".utf8) + sessionID + isk)))
    }

    /// T = MAC(mac_key, lv_cat(Y, AD)) over the message its sender sent (Section 10.4).
    static func confirmationTag(key: SymmetricKey, share: [UInt8], associatedData: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA512>.authenticationCode(for: lengthValueConcatenation(share, associatedData), using: key))
    }

    /// Checks the initiator's Ta from the ISK and the public transcript alone, so a responder
    /// whose state was persisted can finish the run later or elsewhere. Constant-time.
    ///
    /// Ta MACs only the initiator's message (Ya, ADa), as Section 10.4 defines it; the
    /// responder's message is bound through the ISK, which hashes the whole transcript. The
    /// responder's share and associated data are taken so the persisted transcript is passed
    /// whole; malformed lengths give false.
    public static func verifyInitiatorConfirmation(
        _ ta: [UInt8], isk: [UInt8], sessionID: [UInt8], initiatorShare: [UInt8],
        initiatorAssociatedData: [UInt8], responderShare: [UInt8], responderAssociatedData: [UInt8]
    ) -> Bool {
        guard isk.count == iskLength, sessionID.count == sessionIDLength,
            initiatorShare.count == shareLength, responderShare.count == shareLength
        else { return false }
        let expected = confirmationTag(
            key: confirmationKey(sessionID: sessionID, isk: isk), share: initiatorShare,
            associatedData: initiatorAssociatedData)
        return constantTimeEqual(expected, ta)
    }

    // MARK: Group operations (G_X25519, draft Section 8.2)

    /// G.I, the neutral element's encoding.
    static let neutralElement = [UInt8](repeating: 0, count: shareLength)

    /// G_X25519.scalar_mult_vfy(y, g) = X25519(y, g) through swift-crypto, which clamps the
    /// scalar and masks bit 255 of the u-coordinate as RFC 7748 says. Anything swift-crypto
    /// refuses (a wrong length) gives G.I, like a low-order point does.
    static func scalarMultVerify(scalar: [UInt8], point: [UInt8]) -> [UInt8] {
        do {
            let privateKey = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: scalar)
            let publicKey = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: point)
            let secret = try privateKey.sharedSecretFromKeyAgreement(with: publicKey)
            return secret.withUnsafeBytes { Array($0) }
        } catch {
            return neutralElement
        }
    }

    /// K = scalar_mult_vfy(y, Y) for a peer's share Y, refusing G.I. swift-crypto does not
    /// refuse an all-zero result itself (it matches CryptoKit), so the OR over the bytes
    /// here is the only check.
    static func sharedPoint(scalar: [UInt8], peerShare: [UInt8]) throws(CPaceError) -> [UInt8] {
        guard peerShare.count == shareLength else { throw .invalidShare }
        let point = scalarMultVerify(scalar: scalar, point: peerShare)
        guard !isNeutral(point) else { throw .invalidShare }
        return point
    }

    /// Y = scalar_mult(y, g) for one's own share. The generator is of low order only if
    /// the hash lands on one of a handful of field elements, but a zero share must never go out.
    static func ownShare(scalar: [UInt8], generator: [UInt8]) throws(CPaceError) -> [UInt8] {
        let share = scalarMultVerify(scalar: scalar, point: generator)
        guard !isNeutral(share) else { throw .invalidInput("the generator is a low-order point") }
        return share
    }

    /// Whether all bytes are zero, ORing them all (RFC 7748 Section 6.1's advice).
    static func isNeutral(_ point: [UInt8]) -> Bool {
        var accumulated: UInt8 = 0
        for byte in point { accumulated |= byte }
        return accumulated == 0
    }

    // MARK: Helpers

    /// Compares every byte, without stopping at the first difference; lengths are public.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    /// Checks the inputs both roles share, and returns the scalar to use.
    static func checkedScalar(password: [UInt8], sessionID: [UInt8], scalar: [UInt8]?) throws(CPaceError) -> [UInt8] {
        guard !password.isEmpty else { throw .invalidInput("password must not be empty") }
        guard sessionID.count == sessionIDLength else {
            throw .invalidInput("session ID must be \(sessionIDLength) bytes, got \(sessionID.count)")
        }
        guard let scalar else { return randomBytes(count: scalarLength) }
        guard scalar.count == scalarLength else {
            throw .invalidInput("scalar must be \(scalarLength) bytes, got \(scalar.count)")
        }
        return scalar
    }

    /// G_X25519.sample_scalar(): uniform random bytes (draft Sections 8.2 and 10.7), from
    /// the system's cryptographically secure generator.
    static func randomBytes(count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        return String(decoding: bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0x0F)]] }, as: UTF8.self)
    }
}

extension CPace {
    /// Party A: sends (Ya, ADa) first, then checks the responder's Tb and answers with Ta.
    /// Holds its secret scalar; `description`, `debugDescription` and the mirror show only
    /// the public share. Use one value for one run: scalars must not be reused (draft
    /// Section 10.9).
    public struct Initiator: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
        /// Ya, to send with ADa.
        public let share: [UInt8]
        private let scalar: [UInt8]
        private let sessionID: [UInt8]
        private let associatedData: [UInt8]

        /// - Parameters:
        ///   - password: PRS, e.g. an RFC 8265-prepared password; not empty.
        ///   - channelIdentifier: CI, not sent; both sides must use the same.
        ///   - sessionID: sid, `CPace.sessionIDLength` bytes both sides agreed on.
        ///   - associatedData: ADa, sent in clear and authenticated by the run.
        ///   - scalar: ya, 32 bytes; nil draws fresh random ones (tests pass the draft's).
        public init(
            password: [UInt8], channelIdentifier: [UInt8], sessionID: [UInt8], associatedData: [UInt8],
            scalar: [UInt8]? = nil
        ) throws(CPaceError) {
            let scalar = try CPace.checkedScalar(password: password, sessionID: sessionID, scalar: scalar)
            let generator = CPace.generator(
                password: password, channelIdentifier: channelIdentifier, sessionID: sessionID)
            self.share = try CPace.ownShare(scalar: scalar, generator: generator)
            self.scalar = scalar
            self.sessionID = sessionID
            self.associatedData = associatedData
        }

        /// Verifies the responder's confirmation Tb first (constant-time), then returns the
        /// ISK and the initiator's confirmation Ta to send. A wrong password shows here as
        /// `.confirmationFailed`; a low-order or malformed Yb as `.invalidShare`.
        public func finish(
            responderShare: [UInt8], responderAssociatedData: [UInt8], responderConfirmation: [UInt8]
        ) throws(CPaceError) -> (isk: [UInt8], confirmation: [UInt8]) {
            let sharedPoint = try CPace.sharedPoint(scalar: scalar, peerShare: responderShare)
            let (isk, key) = CPace.sessionKeys(
                sessionID: sessionID, sharedPoint: sharedPoint, initiatorShare: share, initiatorAssociatedData: associatedData,
                responderShare: responderShare, responderAssociatedData: responderAssociatedData)
            let expected = CPace.confirmationTag(
                key: key, share: responderShare, associatedData: responderAssociatedData)
            guard CPace.constantTimeEqual(expected, responderConfirmation) else { throw .confirmationFailed }
            return (isk, CPace.confirmationTag(key: key, share: share, associatedData: associatedData))
        }

        public var description: String { "CPace.Initiator(share: \(CPace.hex(share)))" }
        public var debugDescription: String { description }
        public var customMirror: Mirror { Mirror(self, children: ["share": share], displayStyle: .struct) }
    }

    /// Party B: answers the initiator's (Ya, ADa) with (Yb, ADb, Tb) in one step, and holds
    /// the ISK until Ta arrives. `description`, `debugDescription` and the mirror show only
    /// what goes on the wire, never the ISK.
    public struct Responder: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
        /// Yb, to send with ADb and the confirmation.
        public let share: [UInt8]
        /// Tb, to send with Yb and ADb.
        public let confirmation: [UInt8]
        /// The intermediate session key; trust it only once Ta has verified.
        public let isk: [UInt8]
        private let sessionID: [UInt8]
        private let initiatorShare: [UInt8]
        private let initiatorAssociatedData: [UInt8]
        private let associatedData: [UInt8]

        /// - Parameters:
        ///   - password, channelIdentifier, sessionID: as the initiator's.
        ///   - initiatorShare: Ya as received; `.invalidShare` if not 32 bytes or of low order.
        ///   - initiatorAssociatedData: ADa as received.
        ///   - associatedData: ADb, sent in clear and authenticated by the run.
        ///   - scalar: yb, 32 bytes; nil draws fresh random ones (tests pass the draft's).
        public init(
            password: [UInt8], channelIdentifier: [UInt8], sessionID: [UInt8], initiatorShare: [UInt8],
            initiatorAssociatedData: [UInt8], associatedData: [UInt8], scalar: [UInt8]? = nil
        ) throws(CPaceError) {
            let scalar = try CPace.checkedScalar(password: password, sessionID: sessionID, scalar: scalar)
            let sharedPoint = try CPace.sharedPoint(scalar: scalar, peerShare: initiatorShare)
            let generator = CPace.generator(
                password: password, channelIdentifier: channelIdentifier, sessionID: sessionID)
            let share = try CPace.ownShare(scalar: scalar, generator: generator)
            let (isk, key) = CPace.sessionKeys(
                sessionID: sessionID, sharedPoint: sharedPoint, initiatorShare: initiatorShare, initiatorAssociatedData: initiatorAssociatedData,
                responderShare: share, responderAssociatedData: associatedData)
            self.share = share
            self.confirmation = CPace.confirmationTag(key: key, share: share, associatedData: associatedData)
            self.isk = isk
            self.sessionID = sessionID
            self.initiatorShare = initiatorShare
            self.initiatorAssociatedData = initiatorAssociatedData
            self.associatedData = associatedData
        }

        /// Checks the initiator's Ta against this run (constant-time).
        public func verifyInitiatorConfirmation(_ ta: [UInt8]) -> Bool {
            CPace.verifyInitiatorConfirmation(
                ta, isk: isk, sessionID: sessionID, initiatorShare: initiatorShare,
                initiatorAssociatedData: initiatorAssociatedData, responderShare: share,
                responderAssociatedData: associatedData)
        }

        public var description: String {
            "CPace.Responder(share: \(CPace.hex(share)), confirmation: \(CPace.hex(confirmation)))"
        }
        public var debugDescription: String { description }
        public var customMirror: Mirror {
            Mirror(self, children: ["share": share, "confirmation": confirmation], displayStyle: .struct)
        }
    }
}
