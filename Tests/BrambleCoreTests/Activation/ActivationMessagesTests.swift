import Crypto
import Testing

@testable import BrambleCore

/// The four activation messages (`ActivationRequest`, `…Response`, `…Confirm`, `…Result`),
/// the CPace channel identifier and the master key derived from a run.
@Suite struct ActivationMessagesTests {
    let sid = Array(repeating: UInt8(0x51), count: Activation.sessionIDLength)
    let pin = PIN(0x2A00_F00D)
    let email = "ann@example.com"
    let shareA = Array(repeating: UInt8(0xA1), count: 32)
    let shareB = Array(repeating: UInt8(0xB2), count: 32)
    let domainKey = Array(Curve25519.Signing.PrivateKey().publicKey.rawRepresentation)
    let tb = Array(repeating: UInt8(0x7B), count: 64)
    let ta = Array(repeating: UInt8(0x7A), count: 64)

    var request: ActivationRequest { ActivationRequest(sessionID: sid, pin: pin, email: email, share: shareA) }
    var response: ActivationResponse {
        ActivationResponse(sessionID: sid, srpID: "S1.bramble-a_b", domainKey: domainKey, share: shareB, confirmation: tb)
    }
    var confirm: ActivationConfirm { ActivationConfirm(sessionID: sid, confirmation: ta) }

    /// A request's fields written by hand, so each can be left out or made wrong.
    func rawRequest(version: UInt64? = ActivationRequest.version, sessionID: [UInt8]? = nil, pin: UInt64? = 0x2A00_F00D,
                    email: String? = "ann@example.com", share: [UInt8]? = nil) -> [UInt8] {
        var w = PayloadWriter()
        if let version { w.uint(1, version) }
        if let sessionID = sessionID ?? Optional(sid) { w.bytes(2, sessionID) }
        if let pin { w.uint(3, pin) }
        if let email { w.bytes(4, Array(email.utf8)) }
        if let share = share ?? Optional(shareA) { w.bytes(5, share) }
        return w.bytes
    }

    func rawResponse(sessionID: [UInt8]? = nil, srpID: String? = "bramble", domainKey: [UInt8]? = nil,
                     share: [UInt8]? = nil, confirmation: [UInt8]? = nil) -> [UInt8] {
        var w = PayloadWriter()
        if let sessionID = sessionID ?? Optional(sid) { w.bytes(1, sessionID) }
        if let srpID { w.bytes(2, Array(srpID.utf8)) }
        if let domainKey = domainKey ?? Optional(self.domainKey) { w.bytes(3, domainKey) }
        if let share = share ?? Optional(shareB) { w.bytes(4, share) }
        if let confirmation = confirmation ?? Optional(tb) { w.bytes(5, confirmation) }
        return w.bytes
    }

    func rawConfirm(sessionID: [UInt8]? = nil, confirmation: [UInt8]? = nil) -> [UInt8] {
        var w = PayloadWriter()
        if let sessionID = sessionID ?? Optional(sid) { w.bytes(1, sessionID) }
        if let confirmation = confirmation ?? Optional(ta) { w.bytes(2, confirmation) }
        return w.bytes
    }

    func rawResult(sessionID: [UInt8]? = nil, accepted: Bool? = false, reason: [UInt8]? = nil) -> [UInt8] {
        var w = PayloadWriter()
        if let sessionID = sessionID ?? Optional(sid) { w.bytes(1, sessionID) }
        if let accepted { w.bool(2, accepted) }
        if let reason { w.bytes(3, reason) }
        return w.bytes
    }

    /// `bytes` with an unknown field appended, padding it to exactly `total` bytes.
    func padded(_ bytes: [UInt8], to total: Int) -> [UInt8] {
        var w = PayloadWriter()
        w.bytes(99, Array(repeating: 0, count: total - bytes.count - 5))
        return bytes + w.bytes
    }

    func bytes(_ count: Int, _ value: UInt8 = 1) -> [UInt8] { Array(repeating: value, count: count) }

    // MARK: Round trips

    @Test func eachMessageRoundTrips() throws {
        #expect(try ActivationRequest.decode(request.encoded()) == request)
        #expect(try ActivationResponse.decode(response.encoded()) == response)
        #expect(try ActivationConfirm.decode(confirm.encoded()) == confirm)
        let accepted = ActivationResult(sessionID: sid, accepted: true)
        #expect(try ActivationResult.decode(accepted.encoded()) == accepted)
        let refused = ActivationResult(sessionID: sid, accepted: false, reason: "the key confirmation failed: check the activation password")
        #expect(try ActivationResult.decode(refused.encoded()) == refused)
    }

    @Test func theExtremePINsRoundTrip() throws {
        for value: UInt32 in [0, 1, .max] {
            var r = request
            r.pin = PIN(value)
            #expect(try ActivationRequest.decode(r.encoded()).pin == PIN(value))
        }
    }

    @Test func unknownFieldsAreSkipped() throws {
        var w = PayloadWriter()
        w.bytes(42, Array("a newer field".utf8))
        #expect(try ActivationRequest.decode(request.encoded() + w.bytes) == request)
        #expect(try ActivationConfirm.decode(w.bytes + confirm.encoded()) == confirm)
    }

    @Test func aMessageOfExactlyTheMaximumLengthIsRead() throws {
        #expect(try ActivationRequest.decode(padded(request.encoded(), to: Activation.maxMessageLength)) == request)
        #expect(try ActivationResponse.decode(padded(response.encoded(), to: Activation.maxMessageLength)) == response)
        #expect(try ActivationConfirm.decode(padded(confirm.encoded(), to: Activation.maxMessageLength)) == confirm)
        let result = ActivationResult(sessionID: sid, accepted: true)
        #expect(try ActivationResult.decode(padded(result.encoded(), to: Activation.maxMessageLength)) == result)
    }

    // MARK: Refusals

    @Test func aMessageOverTheMaximumLengthIsRefused() {
        let over = Activation.maxMessageLength + 1
        #expect(throws: PayloadError.self) { try ActivationRequest.decode(padded(request.encoded(), to: over)) }
        #expect(throws: PayloadError.self) { try ActivationResponse.decode(padded(response.encoded(), to: over)) }
        #expect(throws: PayloadError.self) { try ActivationConfirm.decode(padded(confirm.encoded(), to: over)) }
        #expect(throws: PayloadError.self) { try ActivationResult.decode(padded(ActivationResult(sessionID: sid, accepted: true).encoded(), to: over)) }
    }

    @Test(arguments: [0, 15, 17, 32])
    func aSessionIDOfAnotherLengthThan16IsRefused(_ length: Int) {
        let wrong = bytes(length, 0x51)
        #expect(throws: PayloadError.self) { try ActivationRequest.decode(rawRequest(sessionID: wrong)) }
        #expect(throws: PayloadError.self) { try ActivationResponse.decode(rawResponse(sessionID: wrong)) }
        #expect(throws: PayloadError.self) { try ActivationConfirm.decode(rawConfirm(sessionID: wrong)) }
        #expect(throws: PayloadError.self) { try ActivationResult.decode(rawResult(sessionID: wrong)) }
    }

    @Test(arguments: [0, 31, 33, 64])
    func aShareOfAnotherLengthThan32IsRefused(_ length: Int) {
        #expect(throws: PayloadError.self) { try ActivationRequest.decode(rawRequest(share: bytes(length))) }
        #expect(throws: PayloadError.self) { try ActivationResponse.decode(rawResponse(share: bytes(length))) }
    }

    @Test(arguments: [0, 32, 63, 65])
    func aConfirmationOfAnotherLengthThan64IsRefused(_ length: Int) {
        #expect(throws: PayloadError.self) { try ActivationResponse.decode(rawResponse(confirmation: bytes(length))) }
        #expect(throws: PayloadError.self) { try ActivationConfirm.decode(rawConfirm(confirmation: bytes(length))) }
    }

    @Test(arguments: [0, 31, 33, 64])
    func aDomainKeyOfAnotherLengthThan32IsRefused(_ length: Int) {
        #expect(throws: PayloadError.self) { try ActivationResponse.decode(rawResponse(domainKey: bytes(length))) }
    }

    @Test func theHandWrittenEncodingsDecode() throws {
        // The helpers above write what the encoders write, so the refusals are about the one field.
        #expect(try ActivationRequest.decode(rawRequest()) == request)
        #expect(try ActivationResponse.decode(rawResponse()).srpID == "bramble")
        #expect(try ActivationConfirm.decode(rawConfirm()) == confirm)
        #expect(try ActivationResult.decode(rawResult()) == ActivationResult(sessionID: sid, accepted: false))
    }

    @Test func aMissingFieldIsRefused() {
        // A request without its version, session id, PIN, address or share.
        #expect(throws: PayloadError("version missing")) { try ActivationRequest.decode(rawRequest(version: nil)) }
        #expect(throws: PayloadError("session_id missing")) { try ActivationRequest.decode(rawRequest().dropping(tag: 2)) }
        #expect(throws: PayloadError("pin missing")) { try ActivationRequest.decode(rawRequest(pin: nil)) }
        #expect(throws: PayloadError("email missing")) { try ActivationRequest.decode(rawRequest(email: nil)) }
        #expect(throws: PayloadError("share missing")) { try ActivationRequest.decode(rawRequest().dropping(tag: 5)) }
        // A response without each of its five fields.
        #expect(throws: PayloadError("srp_id missing")) { try ActivationResponse.decode(rawResponse(srpID: nil)) }
        for tag: UInt8 in [1, 3, 4, 5] {
            #expect(throws: PayloadError.self) { try ActivationResponse.decode(rawResponse().dropping(tag: tag)) }
        }
        // A confirmation or result without its session id; a confirmation without Ta.
        #expect(throws: PayloadError("session_id missing")) { try ActivationConfirm.decode(rawConfirm().dropping(tag: 1)) }
        #expect(throws: PayloadError("confirmation missing")) { try ActivationConfirm.decode(rawConfirm().dropping(tag: 2)) }
        #expect(throws: PayloadError("session_id missing")) { try ActivationResult.decode(rawResult().dropping(tag: 1)) }
        // Nothing at all.
        #expect(throws: PayloadError.self) { try ActivationRequest.decode([]) }
        #expect(throws: PayloadError.self) { try ActivationResponse.decode([]) }
        #expect(throws: PayloadError.self) { try ActivationConfirm.decode([]) }
        #expect(throws: PayloadError.self) { try ActivationResult.decode([]) }
    }

    @Test func aResultWithoutItsAcceptedFlagIsARefusal() throws {
        #expect(try ActivationResult.decode(rawResult(accepted: nil)).accepted == false)
    }

    @Test(arguments: [UInt64(0), 2, .max])
    func aRequestOfAnotherVersionIsRefused(_ version: UInt64) {
        #expect(throws: PayloadError("activation request version \(version) is not 1")) {
            try ActivationRequest.decode(rawRequest(version: version))
        }
    }

    @Test(arguments: [
        "ann @example.com", "ann@example.com ", " ann@example.com", "ann\u{0}@example.com", "ann@exam\rple.com",
        "ann@example.com\n", "ann\t@example.com", "ann\u{7F}@example.com", "ann\u{85}@example.com", "ann\u{9F}@example.com",
        "annexample.com", "ann@b@example.com", "@@", "a@", "", String(repeating: "a", count: 250) + "@x.yz",
    ])
    func anAddressWithASpaceAControlCharacterOrNotOneAtSignIsRefused(_ email: String) {
        #expect(throws: PayloadError.self) { try ActivationRequest.decode(rawRequest(email: email)) }
    }

    @Test(arguments: ["a@b.c", "ann@example.com", "Ann.Example+tag@Example.COM", "jörg@bücher.example"])
    func aPlainAddressIsAccepted(_ email: String) throws {
        #expect(try ActivationRequest.decode(rawRequest(email: email)).email == email)
    }

    @Test func anAddressThatIsNotUTF8IsRefused() {
        var w = PayloadWriter()
        w.uint(1, 1); w.bytes(2, sid); w.uint(3, 1); w.bytes(4, [0x61, 0x40, 0xFF, 0x62]); w.bytes(5, shareA)
        #expect(throws: PayloadError("email is not UTF-8")) { try ActivationRequest.decode(w.bytes) }
    }

    @Test func aPINAboveUInt32MaxIsRefused() throws {
        #expect(throws: PayloadError("pin out of range")) { try ActivationRequest.decode(rawRequest(pin: UInt64(UInt32.max) + 1)) }
        #expect(throws: PayloadError("pin out of range")) { try ActivationRequest.decode(rawRequest(pin: .max)) }
        #expect(try ActivationRequest.decode(rawRequest(pin: UInt64(UInt32.max))).pin == PIN(.max))
    }

    @Test(arguments: ["", "a b", "bramble/1", String(repeating: "s", count: SRPIdentifier.maxLength + 1)])
    func aResponseFromAnInvalidSRPIDIsRefused(_ srpID: String) {
        #expect(throws: PayloadError.self) { try ActivationResponse.decode(rawResponse(srpID: srpID)) }
    }

    @Test func aResultsAcceptedFlagIsOneByteOfZeroOrOne() {
        var w = PayloadWriter()
        w.bytes(1, sid); w.bytes(2, [2])
        #expect(throws: PayloadError.self) { try ActivationResult.decode(w.bytes) }
    }

    @Test func aResultsReasonOverItsBoundIsRefused() throws {
        #expect(throws: PayloadError.self) { try ActivationResult.decode(rawResult(reason: bytes(Activation.maxReasonLength + 1, 0x61))) }
        let atBound = try ActivationResult.decode(rawResult(reason: bytes(Activation.maxReasonLength, 0x61)))
        #expect(atBound.reason.utf8.count == Activation.maxReasonLength)
    }

    @Test func theEncoderCutsAnOverlongReasonToWhatTheDecoderAccepts() throws {
        let long = ActivationResult(sessionID: sid, accepted: false, reason: String(repeating: "ü", count: 200))
        let decoded = try ActivationResult.decode(long.encoded())
        #expect(decoded.reason.utf8.count <= Activation.maxReasonLength)
        #expect(long.reason.hasPrefix(decoded.reason))
    }

    @Test func aResultsReasonLosesItsControlCharacters() throws {
        let reason = Array("wrong\r\npassword\u{0}\u{7}\u{1B}[31m\u{7F}!".utf8)
        let decoded = try ActivationResult.decode(rawResult(reason: reason))
        #expect(decoded.reason == "wrongpassword[31m!")
        #expect(!decoded.reason.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F })
        // Text that is not a control character stays.
        #expect(try ActivationResult.decode(rawResult(reason: Array("Passwort läuft ab — 48 h".utf8))).reason == "Passwort läuft ab — 48 h")
    }

    @Test func aResultsReasonLosesC1ControlCharactersToo() throws {
        // The address check and the password rules count U+0080…U+009F as control
        // characters; the reason filter keeps them (NEL, U+0085, is a line break).
        let decoded = try ActivationResult.decode(rawResult(reason: Array("line\u{85}break\u{9B}31m".utf8)))
        #expect(decoded.reason == "linebreak31m")
    }

    // MARK: Channel identifier and master key

    @Test func theChannelIdentifierBindsTheAddressAndThePIN() {
        let ci = Activation.channelIdentifier(email: email, pin: pin)
        #expect(ci == Activation.channelIdentifier(email: email, pin: pin))
        #expect(ci != Activation.channelIdentifier(email: "bob@example.com", pin: pin))
        #expect(ci != Activation.channelIdentifier(email: "Ann@example.com", pin: pin))
        #expect(ci != Activation.channelIdentifier(email: email, pin: PIN(0x2A00_F00E)))
        #expect(ci.starts(with: Array("bramble-activation-v1".utf8)))
        // Length-prefixed: an address and a PIN cannot be shifted into one another.
        #expect(Activation.channelIdentifier(email: "a@b", pin: PIN(0x0102_0304))
                != Activation.channelIdentifier(email: "a@b\u{0}", pin: PIN(0x0203_0400)))
    }

    @Test func theMasterKeyIsDeterministicForOneTranscript() {
        let isk = bytes(64, 0x15)
        let key = Activation.masterKey(isk: isk, request: request, response: response)
        #expect(key == Activation.masterKey(isk: isk, request: request, response: response))
        #expect(key.bitCount == 256)
    }

    @Test func theMasterKeyChangesWithAnyPartOfTheTranscript() {
        let isk = bytes(64, 0x15)
        let key = Activation.masterKey(isk: isk, request: request, response: response)
        var otherISK = isk; otherISK[63] ^= 1
        var otherSID = request; otherSID.sessionID[0] ^= 1
        var otherShareA = request; otherShareA.share[31] ^= 1
        var otherPIN = request; otherPIN.pin = PIN(1)
        var otherEmail = request; otherEmail.email = "bob@example.com"
        var otherShareB = response; otherShareB.share[0] ^= 1
        var otherSRPID = response; otherSRPID.srpID = "other"
        var otherDomainKey = response; otherDomainKey.domainKey[5] ^= 1
        #expect(key != Activation.masterKey(isk: otherISK, request: request, response: response), "ISK")
        #expect(key != Activation.masterKey(isk: isk, request: otherSID, response: response), "session id")
        for (name, changed) in [("Ya", otherShareA), ("ADa: PIN", otherPIN), ("ADa: address", otherEmail)] {
            #expect(key != Activation.masterKey(isk: isk, request: changed, response: response), "\(name)")
        }
        for (name, changed) in [("Yb", otherShareB), ("ADb: SRP ID", otherSRPID), ("ADb: domain key", otherDomainKey)] {
            #expect(key != Activation.masterKey(isk: isk, request: request, response: changed), "\(name)")
        }
    }

    @Test func theConfirmationsTbAndTaDoNotEnterTheMasterKey() {
        // Only the ISK and the transcript do; Tb and Ta are checked, not derived from.
        let isk = bytes(64, 0x15)
        var otherTb = response; otherTb.confirmation[0] ^= 1
        #expect(Activation.masterKey(isk: isk, request: request, response: response)
                == Activation.masterKey(isk: isk, request: request, response: otherTb))
    }

    // MARK: A whole run, without a network

    struct Run {
        var request: ActivationRequest
        var response: ActivationResponse
        var deviceMaster: SymmetricKey
        var serverMaster: SymmetricKey
        var confirmed: Bool
    }

    /// The device's and the BES's side of a run, as `DeviceActivation` and the node do it,
    /// each message encoded and decoded on the way.
    func run(devicePassword: String, serverPassword: String, deviceEmail: String = "ann@example.com",
             serverEmail: String = "ann@example.com") throws -> Run {
        let pin = PIN(0x2A00_F00D)
        let sid = CPace.randomSessionID()
        // The device.
        let deviceSecret = ActivationPassword.secret(password: devicePassword, email: deviceEmail)
        var request = ActivationRequest(sessionID: sid, pin: pin, email: deviceEmail, share: [])
        let initiator = try CPace.Initiator(password: deviceSecret, channelIdentifier: Activation.channelIdentifier(email: deviceEmail, pin: pin),
                                            sessionID: sid, associatedData: request.associatedData)
        request.share = initiator.share
        // The BES reads etp.dat.
        let received = try ActivationRequest.decode(request.encoded())
        let serverSecret = ActivationPassword.secret(password: serverPassword, email: serverEmail)
        let domain = Curve25519.Signing.PrivateKey()
        var response = ActivationResponse(sessionID: received.sessionID, srpID: "bramble", domainKey: Array(domain.publicKey.rawRepresentation),
                                          share: [], confirmation: [])
        let responder = try CPace.Responder(password: serverSecret, channelIdentifier: Activation.channelIdentifier(email: serverEmail, pin: received.pin),
                                            sessionID: received.sessionID, initiatorShare: received.share,
                                            initiatorAssociatedData: received.associatedData, associatedData: response.associatedData)
        (response.share, response.confirmation) = (responder.share, responder.confirmation)
        // The device checks Tb and answers Ta.
        let answered = try ActivationResponse.decode(response.encoded())
        let (isk, ta) = try initiator.finish(responderShare: answered.share, responderAssociatedData: answered.associatedData,
                                             responderConfirmation: answered.confirmation)
        let confirm = try ActivationConfirm.decode(ActivationConfirm(sessionID: sid, confirmation: ta).encoded())
        return Run(request: request, response: answered,
                   deviceMaster: Activation.masterKey(isk: isk, request: request, response: answered),
                   serverMaster: Activation.masterKey(isk: responder.isk, request: received, response: response),
                   confirmed: responder.verifyInitiatorConfirmation(confirm.confirmation))
    }

    @Test func bothSidesOfARunDeriveTheSameMasterKey() throws {
        let run = try run(devicePassword: "correct horse battery", serverPassword: "correct horse battery")
        #expect(run.confirmed, "the BES accepts the device's key confirmation")
        #expect(run.deviceMaster == run.serverMaster)
        // And another run with the same password gives another key (fresh session id and scalars).
        let again = try self.run(devicePassword: "correct horse battery", serverPassword: "correct horse battery")
        #expect(again.deviceMaster == again.serverMaster)
        #expect(again.deviceMaster != run.deviceMaster)
    }

    @Test func aWrongPasswordMakesTheDevicesFinishThrow() {
        #expect(throws: CPaceError.confirmationFailed) {
            try run(devicePassword: "correct horse battery", serverPassword: "correct horse batterY")
        }
    }

    @Test func anotherAddressWithTheSamePasswordMakesTheDevicesFinishThrow() {
        #expect(throws: CPaceError.confirmationFailed) {
            try run(devicePassword: "correct horse battery", serverPassword: "correct horse battery", serverEmail: "bob@example.com")
        }
    }
}

fileprivate extension Array where Element == UInt8 {
    /// The tagged fields without those of `tag` (the framing is assumed valid).
    func dropping(tag: UInt8) -> [UInt8] {
        var out: [UInt8] = [], i = 0
        while count - i >= 5 {
            let length = self[(i + 1)..<(i + 5)].reduce(0) { $0 << 8 | Int($1) }
            if self[i] != tag { out += self[i..<(i + 5 + length)] }
            i += 5 + length
        }
        return out
    }
}
