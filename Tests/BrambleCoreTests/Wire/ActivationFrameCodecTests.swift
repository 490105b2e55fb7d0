import NIOCore
import Testing

@testable import BrambleCore

/// `Frame.activation` on the wire: `u8 phase ‖ u32 pin ‖ u8 srp_id length ‖ srp_id ‖
/// u16 email length ‖ email ‖ body`; an SRP ID on every phase but the request, an address
/// only on the request, a body of 1…2048 bytes.
@Suite struct ActivationFrameCodecTests {
    static let samples: [ActivationFrame] = [
        ActivationFrame(phase: .request, pin: PIN(0x2A00_F00D), email: "ann@example.com", body: Array(repeating: 1, count: 150)),
        ActivationFrame(phase: .request, pin: PIN(.max), email: "jörg@bücher.example", body: [7]),
        ActivationFrame(phase: .response, pin: PIN(0x2A00_F00D), srpID: "S1.pair-a_b", body: Array(repeating: 2, count: 200)),
        ActivationFrame(phase: .confirm, pin: PIN(0), srpID: "bramble", body: Array(repeating: 3, count: 90)),
        ActivationFrame(phase: .result, pin: PIN(1), srpID: "bramble", body: Array(repeating: 4, count: Activation.maxMessageLength)),
    ]

    @Test("each phase survives encode then decode", arguments: samples)
    func roundTrip(_ activation: ActivationFrame) throws {
        var buffer = Frame.activation(activation).encoded()
        #expect(try Frame.decode(from: &buffer) == .activation(activation))
        #expect(buffer.readableBytes == 0)
    }

    @Test func theLayoutIsPhasePINSRPIDAddressBody() {
        let bytes = Array(buffer: Frame.activation(ActivationFrame(phase: .response, pin: PIN(0x0102_0304), srpID: "ab", body: [9, 8])).encoded())
        #expect(bytes == [0, 0, 0, 14, Frame.version, 13, 2, 1, 2, 3, 4, 2, 0x61, 0x62, 0, 0, 9, 8])
        let request = Array(buffer: Frame.activation(ActivationFrame(phase: .request, pin: PIN(5), email: "a@b", body: [1])).encoded())
        #expect(request == [0, 0, 0, 14, Frame.version, 13, 1, 0, 0, 0, 5, 0, 0, 3, 0x61, 0x40, 0x62, 1])
    }

    @Test func aPartialActivationFrameAsksForMore() throws {
        for activation in Self.samples {
            let whole = Frame.activation(activation).encoded()
            for cut in [0, 3, 4, 6, 11, whole.readableBytes - 1] {
                var partial = whole.getSlice(at: 0, length: cut)!
                #expect(try Frame.decode(from: &partial) == nil)
            }
        }
    }

    // MARK: Refusals

    @Test func aRequestWithoutAnAddressIsRefused() {
        var buffer = raw(phase: 1, pin: 5, srpID: [], email: [], body: [1])
        #expect(throws: WireError(.invalidField("email"))) { try Frame.decode(from: &buffer) }
        var encoded = Frame.activation(ActivationFrame(phase: .request, pin: PIN(5), email: "", body: [1])).encoded()
        #expect(throws: WireError(.invalidField("email"))) { try Frame.decode(from: &encoded) }
    }

    @Test func aRequestNamingAnSRPIDIsRefused() {
        var buffer = raw(phase: 1, pin: 5, srpID: Array("bramble".utf8), email: Array("a@b".utf8), body: [1])
        #expect(throws: WireError(.invalidField("srp_id"))) { try Frame.decode(from: &buffer) }
    }

    @Test func aRequestsAddressOverItsBoundIsRefused() throws {
        let atBound = Array(repeating: UInt8(0x61), count: Activation.maxEmailLength - 2) + Array("@b".utf8)
        var ok = raw(phase: 1, pin: 5, srpID: [], email: atBound, body: [1])
        guard case .activation(let a)? = try Frame.decode(from: &ok) else { Issue.record("no activation frame"); return }
        #expect(a.email.utf8.count == Activation.maxEmailLength)
        var over = raw(phase: 1, pin: 5, srpID: [], email: [0x61] + atBound, body: [1])
        #expect(throws: WireError(.invalidField("email"))) { try Frame.decode(from: &over) }
    }

    @Test func aRequestsAddressThatIsNotUTF8IsRefused() {
        var buffer = raw(phase: 1, pin: 5, srpID: [], email: [0x61, 0x40, 0xC3], body: [1])
        #expect(throws: WireError(.invalidField("email"))) { try Frame.decode(from: &buffer) }
    }

    @Test(arguments: [2, 3, 4] as [UInt8])
    func aNonRequestWithAnEmptySRPIDIsRefused(_ phase: UInt8) {
        var buffer = raw(phase: phase, pin: 5, srpID: [], email: [], body: [1])
        #expect(throws: WireError(.invalidField("srp_id"))) { try Frame.decode(from: &buffer) }
        var invalid = raw(phase: phase, pin: 5, srpID: Array("a b".utf8), email: [], body: [1])
        #expect(throws: WireError(.invalidField("srp_id"))) { try Frame.decode(from: &invalid) }
    }

    @Test(arguments: [2, 3, 4] as [UInt8])
    func aNonRequestWithAnAddressIsRefused(_ phase: UInt8) {
        var buffer = raw(phase: phase, pin: 5, srpID: Array("bramble".utf8), email: Array("a@b".utf8), body: [1])
        #expect(throws: WireError(.invalidField("email"))) { try Frame.decode(from: &buffer) }
    }

    @Test(arguments: [1, 2, 3, 4] as [UInt8])
    func anEmptyBodyIsRefused(_ phase: UInt8) {
        var buffer = raw(phase: phase, pin: 5, srpID: phase == 1 ? [] : Array("bramble".utf8), email: phase == 1 ? Array("a@b".utf8) : [], body: [])
        #expect(throws: WireError(.invalidField("body"))) { try Frame.decode(from: &buffer) }
    }

    @Test(arguments: [1, 2, 3, 4] as [UInt8])
    func aBodyOver2048BytesIsRefused(_ phase: UInt8) throws {
        let srpID = phase == 1 ? [] : Array("bramble".utf8), email = phase == 1 ? Array("a@b".utf8) : []
        var over = raw(phase: phase, pin: 5, srpID: srpID, email: email, body: Array(repeating: 1, count: Activation.maxMessageLength + 1))
        #expect(throws: WireError(.invalidField("body"))) { try Frame.decode(from: &over) }
        var atBound = raw(phase: phase, pin: 5, srpID: srpID, email: email, body: Array(repeating: 1, count: Activation.maxMessageLength))
        #expect(try Frame.decode(from: &atBound) != nil)
    }

    @Test(arguments: [0, 5, 13, 255] as [UInt8])
    func anUnknownPhaseIsRefused(_ phase: UInt8) {
        var buffer = raw(phase: phase, pin: 5, srpID: Array("bramble".utf8), email: [], body: [1])
        #expect(throws: WireError(.invalidField("phase"))) { try Frame.decode(from: &buffer) }
    }

    @Test func aFrameCutShortIsRefusedAsTruncated() {
        var noPhase = rawFrame([])
        #expect(throws: WireError(.truncated(field: "phase"))) { try Frame.decode(from: &noPhase) }
        var shortPIN = rawFrame([2, 0, 0, 1])
        #expect(throws: WireError(.truncated(field: "pin"))) { try Frame.decode(from: &shortPIN) }
        var shortSRPID = rawFrame([2, 0, 0, 0, 1, 7, 0x61])
        #expect(throws: WireError(.truncated(field: "srp_id"))) { try Frame.decode(from: &shortSRPID) }
        var noEmailLength = rawFrame([2, 0, 0, 0, 1, 1, 0x61, 0])
        #expect(throws: WireError(.truncated(field: "email.length"))) { try Frame.decode(from: &noEmailLength) }
        var shortEmail = rawFrame([1, 0, 0, 0, 1, 0, 0, 9, 0x61, 0x40])
        #expect(throws: WireError(.truncated(field: "email"))) { try Frame.decode(from: &shortEmail) }
    }

    // MARK: Helpers

    /// An activation frame's fields written by hand, behind a valid header.
    func raw(phase: UInt8, pin: UInt32, srpID: [UInt8], email: [UInt8], body: [UInt8]) -> ByteBuffer {
        var fields: [UInt8] = [phase]
        withUnsafeBytes(of: pin.bigEndian) { fields += $0 }
        fields += [UInt8(srpID.count)] + srpID
        fields += [UInt8(email.count >> 8), UInt8(email.count & 0xFF)] + email
        return rawFrame(fields + body)
    }

    func rawFrame(_ body: [UInt8]) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(body.count + 2))
        buffer.writeInteger(Frame.version)
        buffer.writeInteger(Frame.FrameType.activation.rawValue)
        buffer.writeBytes(body)
        return buffer
    }
}

extension ActivationFrame: CustomTestStringConvertible {
    public var testDescription: String { "\(phase)" }
}
