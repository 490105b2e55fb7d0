import Crypto
import Testing

@testable import BrambleCore

@Suite struct EnvelopeTests {
    let key = SymmetricKey(size: .bits256)
    let envelope = Envelope()
    let payload = Array(String(repeating: "Quarterly figures attached. ", count: 80).utf8)

    func sealed(_ payload: [UInt8], flags: DataFrame.Flags = []) -> DataFrame {
        var frame = DataFrame(pin: PIN(0x2A00_F00D), service: .push, ref: 7, flags: flags, body: [])
        frame.body = envelope.seal(payload, key: key, header: frame)
        return frame
    }

    @Test func aSealedPayloadOpensToTheSameBytes() throws {
        #expect(try envelope.open(sealed(payload), key: key) == payload)
        #expect(try envelope.open(sealed([]), key: key) == [])
    }

    @Test func compressionHappensBeforeEncryption() {
        // Ciphertext does not compress; text does. A body far smaller than the text shows
        // the order: compress, then encrypt.
        #expect(sealed(payload).body.count < payload.count / 4)
    }

    @Test func aFlippedCiphertextBitIsRejected() {
        var frame = sealed(payload)
        for index in [0, 12, frame.body.count / 2, frame.body.count - 1] {
            var tampered = frame
            tampered.body[index] ^= 0x01
            #expect(throws: EnvelopeError.authenticationFailed) { try envelope.open(tampered, key: key) }
        }
        frame.body.removeLast()
        #expect(throws: EnvelopeError.authenticationFailed) { try envelope.open(frame, key: key) }
    }

    @Test func aChangedHeaderIsRejected() {
        let frame = sealed(payload)
        var otherPIN = frame; otherPIN.pin = PIN(1)
        var otherRef = frame; otherRef.ref = 8
        var otherService = frame; otherService.service = .ack
        var reflected = frame; reflected.flags.insert(.fromDevice)
        for tampered in [otherPIN, otherRef, otherService, reflected] {
            #expect(throws: EnvelopeError.authenticationFailed) { try envelope.open(tampered, key: key) }
        }
    }

    @Test func theResendFlagDoesNotInvalidateTheBody() throws {
        var frame = sealed(payload)
        frame.flags.insert(.resend)
        #expect(try envelope.open(frame, key: key) == payload)
    }

    @Test func anotherDevicesKeyCannotOpenIt() {
        #expect(throws: EnvelopeError.authenticationFailed) {
            try envelope.open(sealed(payload), key: SymmetricKey(size: .bits256))
        }
    }

    @Test func aBodyShorterThanNonceAndTagIsTruncated() {
        var frame = sealed(payload)
        frame.body = Array(frame.body.prefix(Envelope.minimumSealedLength - 1))
        #expect(throws: EnvelopeError.truncated) { try envelope.open(frame, key: key) }
    }

    @Test func aPayloadAboveTheBoundIsRefusedBeforeInflating() {
        #expect(throws: EnvelopeError.payloadTooLarge(payload.count)) {
            try envelope.open(sealed(payload), key: key, maxPayload: 100)
        }
    }

    @Test func oneEnvelopeServesManyItemsInTurn() throws {
        for n in 0..<50 {
            let p = Array("item \(n) ".utf8) + payload.prefix(n * 10)
            #expect(try envelope.open(sealed(p), key: key) == p)
        }
    }
}

@Suite struct SRPProofTests {
    let key = SymmetricKey(size: .bits256)
    let nonce = Array(repeating: UInt8(3), count: 32)

    @Test func theRightKeyProvesTheRegistration() {
        let proof = SRPProof.compute(key: key, nonce: nonce, srpID: "bramble", epoch: 4)
        #expect(SRPProof.verify(proof, key: key, nonce: nonce, srpID: "bramble", epoch: 4))
    }

    @Test func aProofDoesNotTransferToAnotherKeyNonceIDOrEpoch() {
        let proof = SRPProof.compute(key: key, nonce: nonce, srpID: "bramble", epoch: 4)
        #expect(!SRPProof.verify(proof, key: SymmetricKey(size: .bits256), nonce: nonce, srpID: "bramble", epoch: 4))
        #expect(!SRPProof.verify(proof, key: key, nonce: Array(repeating: 4, count: 32), srpID: "bramble", epoch: 4))
        #expect(!SRPProof.verify(proof, key: key, nonce: nonce, srpID: "brambl", epoch: 4))
        #expect(!SRPProof.verify(proof, key: key, nonce: nonce, srpID: "bramble", epoch: 5))
    }
}
