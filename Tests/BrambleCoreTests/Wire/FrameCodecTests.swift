import NIOCore
import Testing

@testable import BrambleCore

@Suite struct FrameCodecTests {
    static let samples: [Frame] = [
        .deviceHello(pin: PIN(0x2A00_F00D), srpID: "bramble", proof: Array(repeating: 3, count: Frame.proofLength)),
        .deviceWelcome,
        .challenge(nonce: Array(repeating: 7, count: Frame.nonceLength)),
        .register(srpID: "S1.pair-a_b", epoch: 42, proof: Array(repeating: 9, count: Frame.proofLength)),
        .registered(srpID: "bramble", epoch: .max),
        .data(DataFrame(pin: PIN(1), service: .push, ref: 99, flags: [.resend], body: Array(repeating: 1, count: 40))),
        .presence(pin: PIN(5), online: true),
        .error(code: .lockedOut, message: "locked out for 12 s"),
        .ping(1), .pong(.max),
        .epochRefused(reason: .stale, heldEpoch: 7),
        .epochRefused(reason: .displaced, heldEpoch: .max),
        .deviceKeys(DeviceKeyUpdate(phase: .sync, entries: [.init(pin: PIN(9), key: Array(repeating: 4, count: 32)), .revoked(PIN(10))])),
        .deviceKeys(DeviceKeyUpdate(phase: .syncEnd, entries: [])),
    ]

    @Test("every frame type survives encode then decode", arguments: samples)
    func roundTrip(_ frame: Frame) throws {
        var buffer = frame.encoded()
        let decoded = try Frame.decode(from: &buffer)
        #expect(decoded == frame)
        #expect(buffer.readableBytes == 0)
    }

    @Test func aPartialFrameAsksForMoreAndConsumesNothing() throws {
        for frame in Self.samples {
            let whole = frame.encoded()
            for cut in 0..<whole.readableBytes {
                var partial = whole.getSlice(at: 0, length: cut)!
                #expect(try Frame.decode(from: &partial) == nil)
                #expect(partial.readableBytes == cut)
            }
        }
    }

    @Test func twoFramesInOneBufferDecodeInOrder() throws {
        var buffer = Frame.ping(1).encoded()
        Frame.pong(2).encode(into: &buffer)
        #expect(try Frame.decode(from: &buffer) == .ping(1))
        #expect(try Frame.decode(from: &buffer) == .pong(2))
        #expect(try Frame.decode(from: &buffer) == nil)
    }

    @Test func anOversizedLengthIsRefusedBeforeTheBodyArrives() {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(Frame.defaultMaxLength + 1))
        #expect(throws: WireError(.badLength(Frame.defaultMaxLength + 1))) { try Frame.decode(from: &buffer) }
    }

    @Test func aLengthTooShortForVersionAndTypeIsRefused() {
        for length in [0, 1] {
            var buffer = ByteBuffer()
            buffer.writeInteger(UInt32(length))
            buffer.writeRepeatingByte(1, count: length)
            #expect(throws: WireError(.badLength(length))) { try Frame.decode(from: &buffer) }
        }
    }

    @Test func anUnknownVersionIsRefused() {
        var buffer = Frame.ping(1).encoded()
        buffer.setInteger(UInt8(9), at: 4)
        #expect(throws: WireError(.unsupportedVersion(9))) { try Frame.decode(from: &buffer) }
    }

    @Test func anUnknownTypeIsRefused() {
        var buffer = Frame.ping(1).encoded()
        buffer.setInteger(UInt8(200), at: 5)
        #expect(throws: WireError(.unknownFrameType(200))) { try Frame.decode(from: &buffer) }
    }

    @Test func bytesAfterTheLastFieldAreRefused() {
        var buffer = rawFrame(type: .ping, body: Array(repeating: 0, count: 9))
        #expect(throws: WireError(.trailingBytes(1))) { try Frame.decode(from: &buffer) }
    }

    @Test func aFieldCutShortIsRefusedAsTruncated() {
        var buffer = rawFrame(type: .ping, body: [0, 0, 0])
        #expect(throws: WireError(.truncated(field: "nonce"))) { try Frame.decode(from: &buffer) }
        var register = rawFrame(type: .register, body: [3] + Array("abc".utf8) + [0, 0, 0, 0, 0, 0, 0, 1] + [1, 2])
        #expect(throws: WireError(.truncated(field: "proof"))) { try Frame.decode(from: &register) }
    }

    @Test func anSRPIDOutsideItsAlphabetIsRefused() {
        var buffer = rawFrame(type: .deviceHello, body: [0, 0, 0, 1, 3] + Array("a b".utf8))
        #expect(throws: WireError(.invalidField("srp_id"))) { try Frame.decode(from: &buffer) }
        var empty = rawFrame(type: .deviceHello, body: [0, 0, 0, 1, 0])
        #expect(throws: WireError(.invalidField("srp_id"))) { try Frame.decode(from: &empty) }
    }

    @Test func deviceKeysOfAWrongLengthOrTooManyAreRefused() {
        var short = rawFrame(type: .deviceKeys, body: [0, 0, 1, 0, 0, 0, 9, 16] + Array(repeating: 1, count: 16))
        #expect(throws: WireError(.invalidField("key.length"))) { try Frame.decode(from: &short) }
        let over = DeviceKeyUpdate.maxEntries + 1
        var many = rawFrame(type: .deviceKeys, body: [0, UInt8(over >> 8), UInt8(over & 0xFF)])
        #expect(throws: WireError(.invalidField("count"))) { try Frame.decode(from: &many) }
        var phase = rawFrame(type: .deviceKeys, body: [3, 0, 0])
        #expect(throws: WireError(.invalidField("phase"))) { try Frame.decode(from: &phase) }
        #expect(!"\(DeviceKeyUpdate(phase: .update, entries: [.init(pin: PIN(1), key: Array(repeating: 0xAB, count: 32))]))".contains("171"),
                "a key never shows in a description")
    }

    @Test func anOverlongErrorMessageIsRefused() {
        let n = Frame.maxErrorMessageLength + 1
        var buffer = rawFrame(type: .error, body: [0, 1, UInt8(n >> 8), UInt8(n & 0xFF)] + Array(repeating: 65, count: n))
        #expect(throws: WireError(.invalidField("message"))) { try Frame.decode(from: &buffer) }
    }

    @Test func aDataFrameTooShortToHoldASealedBodyIsRefused() {
        var buffer = rawFrame(type: .data, body: [0, 0, 0, 1, 1] + Array(repeating: 0, count: 9) + [1, 2, 3])
        #expect(throws: WireError(.truncated(field: "body"))) { try Frame.decode(from: &buffer) }
    }

    @Test func anEpochRefusalIsAReasonByteThenTheHeldEpoch() {
        // The contract the node's Router reads: type 11, u8 reason, u64 held epoch.
        let bytes = Array(buffer: Frame.epochRefused(reason: .displaced, heldEpoch: 0x0102_0304_0506_0708).encoded())
        #expect(bytes == [0, 0, 0, 11, Frame.version, 11, 2, 1, 2, 3, 4, 5, 6, 7, 8])
        #expect(Array(buffer: Frame.epochRefused(reason: .stale, heldEpoch: 1).encoded())[6] == 1)
    }

    @Test func anUnknownEpochRefusalReasonIsRefused() {
        for reason: UInt8 in [0, 3, 255] {
            var buffer = rawFrame(type: .epochRefused, body: [reason] + Array(repeating: 0, count: 8))
            #expect(throws: WireError(.invalidField("reason"))) { try Frame.decode(from: &buffer) }
        }
    }

    @Test func anEpochRefusalCutShortIsRefusedAsTruncated() {
        var noReason = rawFrame(type: .epochRefused, body: [])
        #expect(throws: WireError(.truncated(field: "reason"))) { try Frame.decode(from: &noReason) }
        var shortEpoch = rawFrame(type: .epochRefused, body: [1, 0, 0, 0, 0, 0, 0, 9])
        #expect(throws: WireError(.truncated(field: "held_epoch"))) { try Frame.decode(from: &shortEpoch) }
        var trailing = rawFrame(type: .epochRefused, body: [1] + Array(repeating: 0, count: 9))
        #expect(throws: WireError(.trailingBytes(1))) { try Frame.decode(from: &trailing) }
    }

    @Test func anUnknownServiceIsRefused() {
        var buffer = rawFrame(type: .data, body: [0, 0, 0, 1, 77] + Array(repeating: 0, count: 9) + Array(repeating: 0, count: 40))
        #expect(throws: WireError(.invalidField("service"))) { try Frame.decode(from: &buffer) }
    }

    @Test func randomBytesNeverCrashTheDecoderAndOnlyThrowWireError() {
        var rng = SplitMix64(seed: 0xB4A3B1E)
        for _ in 0..<20_000 {
            let count = Int(rng.next() % 64)
            var bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if count >= 6, rng.next() % 2 == 0 {
                // Make the length and version plausible so the body parsers are reached.
                let length = UInt32(count - 4)
                bytes[0] = 0; bytes[1] = 0; bytes[2] = UInt8(length >> 8); bytes[3] = UInt8(length & 0xFF)
                bytes[4] = Frame.version
                bytes[5] = UInt8(1 + rng.next() % UInt64(Frame.FrameType.allCases.count))
            }
            var buffer = ByteBuffer(bytes: bytes)
            do {
                while let _ = try Frame.decode(from: &buffer) {}
            } catch {
                // Typed throws: the only possible error is a WireError.
                _ = error.code
            }
        }
    }

    private func rawFrame(type: Frame.FrameType, body: [UInt8]) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(body.count + 2))
        buffer.writeInteger(Frame.version)
        buffer.writeInteger(type.rawValue)
        buffer.writeBytes(body)
        return buffer
    }
}

/// A small deterministic generator, so a failing random case can be replayed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension Frame: CustomTestStringConvertible {
    public var testDescription: String { "\(type)" }
}
