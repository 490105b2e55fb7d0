#if BRAMBLE_FUZZ
import BrambleCore
import NIOCore

/// `frames`: the length-prefixed frame decoder, as a relay or node reads a peer's bytes
/// (before any authentication), and each frame type's field parser.
enum FramesTarget {
    static let target = FuzzTarget(
        name: "frames",
        covers: "Frame.decode: the stream (whole and in two reads), then the input as the fields of each frame type",
        run: run, seeds: seeds)

    /// A small bound, so the length check is reached; the fields part uses the default.
    static let maxLength = 4096

    static func run(_ bytes: [UInt8]) {
        // 1. A stream of frames; the same bytes in two reads must decode the same.
        let (whole, split) = wholeAndSplit(bytes) { (b: inout ByteBuffer) throws(WireError) in
            try Frame.decode(from: &b, maxLength: maxLength)
        }
        require(whole == split, "two reads decoded differently from one: \(whole) vs \(split)")
        for (frame, raw) in zip(whole.messages, whole.raw) { checkRoundTrip(frame, raw: raw) }

        // 2. The input as the fields of each frame type behind a valid header, so every field
        //    parser sees every input, not only the few that guess a length, version and type.
        guard 2 + bytes.count <= Frame.defaultMaxLength else { return }
        var framed = ByteBuffer()
        framed.reserveCapacity(6 + bytes.count)
        framed.writeInteger(UInt32(2 + bytes.count))
        framed.writeInteger(Frame.version)
        framed.writeInteger(UInt8(0))
        framed.writeBytes(bytes)
        for type in Frame.FrameType.allCases {
            framed.setInteger(type.rawValue, at: framed.readerIndex + 5)
            var reading = framed  // shares the bytes: decoding moves only its reader index
            do {
                guard let frame = try Frame.decode(from: &reading) else {
                    require(false, "a whole \(type) frame was taken for an incomplete one")
                    return
                }
                require(frame.type == type, "a \(type) header decoded as \(frame.type)")
                checkRoundTrip(frame, raw: Array(framed.readableBytesView))
            } catch {
                // With a valid header only the fields can be wrong.
                switch error.code {
                case .truncated, .trailingBytes, .invalidField: break
                case .badLength, .unsupportedVersion, .unknownFrameType:
                    require(false, "a valid \(type) header refused: \(error)")
                }
            }
        }
    }

    /// Whatever decodes encodes back to the bytes it came from (an error frame's unknown
    /// code becomes `other`), and those decode to the same frame.
    static func checkRoundTrip(_ frame: Frame, raw: [UInt8]) {
        var encoded = frame.encoded()
        let bytes = Array(encoded.readableBytesView)
        require((try? Frame.decode(from: &encoded)) == frame, "re-encoding changed the \(frame.type) frame")
        require(encoded.readableBytes == 0, "a re-encoded \(frame.type) frame left bytes over")
        if case .error(let code, _) = frame, raw.count >= 8, UInt16(raw[6]) << 8 | UInt16(raw[7]) != code.rawValue { return }
        require(bytes == raw, "the \(frame.type) frame re-encoded to other bytes")
    }

    static func seeds() -> [(name: String, bytes: [UInt8])] {
        let proof = [UInt8](repeating: 0xA5, count: Frame.proofLength)
        let key = [UInt8](repeating: 0x5A, count: DeviceKeyUpdate.keyLength)
        let sealed = [UInt8](repeating: 0x11, count: Envelope.minimumSealedLength + 8)
        let frames: [(String, Frame)] = [
            ("device-hello", .deviceHello(pin: PIN(0x2A00_F00D), srpID: "bramble", proof: proof)),
            ("device-welcome", .deviceWelcome),
            ("challenge", .challenge(nonce: [UInt8](repeating: 0xC3, count: Frame.nonceLength))),
            ("register", .register(srpID: "S1234567", epoch: 42, proof: proof)),
            ("registered", .registered(srpID: "S1234567", epoch: 42)),
            ("data", .data(DataFrame(pin: PIN(0x2A00_F00D), service: .mail, ref: 7, flags: [.fromDevice, .resend], body: sealed))),
            ("presence", .presence(pin: PIN(0x2A00_F00D), online: true)),
            ("error", .error(code: .lockedOut, message: "SRP ID locked out: 6 connects in 60 s")),
            ("ping", .ping(0x0102_0304_0506_0708)),
            ("pong", .pong(1)),
            ("epoch-refused", .epochRefused(reason: .displaced, heldEpoch: 43)),
            ("device-keys", .deviceKeys(DeviceKeyUpdate(phase: .sync, entries: [
                .init(pin: PIN(1), key: key), .init(pin: PIN(0x2A00_F00D), key: key), .revoked(PIN(0xFFFF_FFFF)),
            ]))),
            ("activation-request", .activation(ActivationFrame(phase: .request, pin: PIN(0x5B0C_0001), email: "demo4@example.test",
                                                               body: [UInt8](repeating: 0x5A, count: 96)))),
            ("activation-result", .activation(ActivationFrame(phase: .result, pin: PIN(0x5B0C_0001), srpID: "bramble",
                                                              body: [UInt8](repeating: 0x01, count: 24)))),
            ("data-command", .data(DataFrame(pin: PIN(0x2A00_F00D), service: .command, ref: 8, flags: [], body: sealed))),
        ]
        var seeds: [(name: String, bytes: [UInt8])] = frames.map { ("frame-\($0.0).bin", Array($0.1.encoded().readableBytesView)) }
        // A device's session as the relay reads it, and a node's.
        var device = ByteBuffer()
        for f: Frame in [.deviceHello(pin: PIN(7), srpID: "bramble", proof: proof), .ping(1), .data(DataFrame(pin: PIN(7), service: .ack, ref: 9, flags: [.fromDevice], body: sealed))] {
            f.encode(into: &device)
        }
        seeds.append(("stream-device.bin", Array(device.readableBytesView)))
        var node = ByteBuffer()
        for f: Frame in [.register(srpID: "bramble", epoch: 3, proof: proof), .deviceKeys(DeviceKeyUpdate(phase: .syncEnd, entries: [])), .pong(5)] {
            f.encode(into: &node)
        }
        seeds.append(("stream-node.bin", Array(node.readableBytesView)))
        // Fields only (part 2 puts each type's header in front).
        for (name, frame) in frames where ["device-hello", "register", "device-keys", "error", "data", "activation-request"].contains(name) {
            seeds.append(("fields-\(name).bin", Array(frame.encoded().readableBytesView.dropFirst(6))))
        }
        return seeds
    }
}

#endif
