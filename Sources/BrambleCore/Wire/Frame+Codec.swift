import NIOCore

extension Frame {
    public static let version: UInt8 = 1
    /// Default bound on one frame (after the length prefix): a 64 KB attachment packet
    /// plus headroom. Larger frames are refused before any allocation.
    public static let defaultMaxLength = 256 * 1024
    public static let nonceLength = 32
    public static let proofLength = 32
    public static let maxErrorMessageLength = 512

    /// Appends the frame, length-prefixed, to `buffer`.
    public func encode(into buffer: inout ByteBuffer) {
        let lengthIndex = buffer.writerIndex
        buffer.writeInteger(UInt32(0))
        buffer.writeInteger(Frame.version)
        buffer.writeInteger(type.rawValue)
        switch self {
        case .deviceHello(let pin, let srpID, let proof):
            buffer.writeInteger(pin.value)
            buffer.writeShortString(srpID)
            buffer.writeBytes(proof)
        case .deviceWelcome:
            break
        case .challenge(let nonce):
            buffer.writeBytes(nonce)
        case .register(let srpID, let epoch, let proof):
            buffer.writeShortString(srpID)
            buffer.writeInteger(epoch)
            buffer.writeBytes(proof)
        case .registered(let srpID, let epoch):
            buffer.writeShortString(srpID)
            buffer.writeInteger(epoch)
        case .data(let d):
            buffer.writeInteger(d.pin.value)
            buffer.writeInteger(d.service.rawValue)
            buffer.writeInteger(d.ref)
            buffer.writeInteger(d.flags.rawValue)
            buffer.writeBytes(d.body)
        case .presence(let pin, let online):
            buffer.writeInteger(pin.value)
            buffer.writeInteger(UInt8(online ? 1 : 0))
        case .error(let code, let message):
            buffer.writeInteger(code.rawValue)
            buffer.writeLongString(String(message.utf8.prefix(Frame.maxErrorMessageLength)) ?? "")
        case .ping(let n), .pong(let n):
            buffer.writeInteger(n)
        case .epochRefused(let reason, let heldEpoch):
            buffer.writeInteger(reason.rawValue)
            buffer.writeInteger(heldEpoch)
        case .deviceKeys(let update):
            buffer.writeInteger(update.phase.rawValue)
            buffer.writeInteger(UInt16(update.entries.count))
            for entry in update.entries {
                buffer.writeInteger(entry.pin.value)
                buffer.writeInteger(UInt8(entry.key.count))
                buffer.writeBytes(entry.key)
            }
        case .activation(let a):
            buffer.writeInteger(a.phase.rawValue)
            buffer.writeInteger(a.pin.value)
            buffer.writeShortString(a.srpID)
            buffer.writeLongString(a.email)
            buffer.writeBytes(a.body)
        }
        let length = buffer.writerIndex - lengthIndex - 4
        buffer.setInteger(UInt32(length), at: lengthIndex)
    }

    public func encoded(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 64)
        encode(into: &buffer)
        return buffer
    }

    /// Decodes one frame from the front of `buffer`.
    ///
    /// Returns nil (consuming nothing) when the buffer does not yet hold a whole frame.
    /// Throws `WireError` on malformed input; the length prefix is checked against
    /// `maxLength` before the body is waited for, so a hostile peer cannot make the
    /// caller buffer more than `maxLength` bytes.
    public static func decode(
        from buffer: inout ByteBuffer, maxLength: Int = Frame.defaultMaxLength
    ) throws(WireError) -> Frame? {
        guard let length32 = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        let length = Int(length32)
        guard length >= 2, length <= maxLength else { throw WireError(.badLength(length)) }
        guard buffer.readableBytes >= 4 + length else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        var body = buffer.readSlice(length: length)!
        return try decodeBody(&body)
    }

    /// Decodes a frame body (version, type and fields; no length prefix), requiring it
    /// to be consumed exactly.
    static func decodeBody(_ body: inout ByteBuffer) throws(WireError) -> Frame {
        let version: UInt8 = try body.read("version")
        guard version == Frame.version else { throw WireError(.unsupportedVersion(version)) }
        let rawType: UInt8 = try body.read("type")
        guard let type = FrameType(rawValue: rawType) else { throw WireError(.unknownFrameType(rawType)) }
        let frame: Frame
        switch type {
        case .deviceHello:
            let pin = PIN(try body.read("pin") as UInt32)
            let srpID = try body.readSRPID()
            frame = .deviceHello(pin: pin, srpID: srpID, proof: try body.readFixedBytes(Frame.proofLength, "proof"))
        case .deviceWelcome:
            frame = .deviceWelcome
        case .challenge:
            frame = .challenge(nonce: try body.readFixedBytes(Frame.nonceLength, "nonce"))
        case .register:
            let srpID = try body.readSRPID()
            let epoch: UInt64 = try body.read("epoch")
            frame = .register(srpID: srpID, epoch: epoch, proof: try body.readFixedBytes(Frame.proofLength, "proof"))
        case .registered:
            let srpID = try body.readSRPID()
            frame = .registered(srpID: srpID, epoch: try body.read("epoch"))
        case .data:
            let pin = PIN(try body.read("pin") as UInt32)
            let rawService: UInt8 = try body.read("service")
            guard let service = DataFrame.Service(rawValue: rawService) else {
                throw WireError(.invalidField("service"))
            }
            let ref: UInt64 = try body.read("ref")
            let flags = DataFrame.Flags(rawValue: try body.read("flags"))
            let sealed = body.readBytes(length: body.readableBytes) ?? []
            guard sealed.count >= Envelope.minimumSealedLength else { throw WireError(.truncated(field: "body")) }
            frame = .data(DataFrame(pin: pin, service: service, ref: ref, flags: flags, body: sealed))
        case .presence:
            let pin = PIN(try body.read("pin") as UInt32)
            let online: UInt8 = try body.read("online")
            guard online <= 1 else { throw WireError(.invalidField("online")) }
            frame = .presence(pin: pin, online: online == 1)
        case .error:
            let rawCode: UInt16 = try body.read("code")
            let message = try body.readLongString("message", max: Frame.maxErrorMessageLength)
            frame = .error(code: ErrorCode(rawValue: rawCode) ?? .other, message: message)
        case .ping:
            frame = .ping(try body.read("nonce"))
        case .pong:
            frame = .pong(try body.read("nonce"))
        case .epochRefused:
            let rawReason: UInt8 = try body.read("reason")
            guard let reason = EpochRefusal(rawValue: rawReason) else { throw WireError(.invalidField("reason")) }
            frame = .epochRefused(reason: reason, heldEpoch: try body.read("held_epoch"))
        case .deviceKeys:
            let rawPhase: UInt8 = try body.read("phase")
            guard let phase = DeviceKeyUpdate.Phase(rawValue: rawPhase) else { throw WireError(.invalidField("phase")) }
            let count: UInt16 = try body.read("count")
            guard Int(count) <= DeviceKeyUpdate.maxEntries else { throw WireError(.invalidField("count")) }
            var entries: [DeviceKeyUpdate.Entry] = []
            entries.reserveCapacity(Int(count))
            for _ in 0..<count {
                let pin = PIN(try body.read("pin") as UInt32)
                let length: UInt8 = try body.read("key.length")
                guard length == 0 || Int(length) == DeviceKeyUpdate.keyLength else { throw WireError(.invalidField("key.length")) }
                entries.append(.init(pin: pin, key: try body.readFixedBytes(Int(length), "key")))
            }
            frame = .deviceKeys(DeviceKeyUpdate(phase: phase, entries: entries))
        case .activation:
            let rawPhase: UInt8 = try body.read("phase")
            guard let phase = ActivationFrame.Phase(rawValue: rawPhase) else { throw WireError(.invalidField("phase")) }
            let pin = PIN(try body.read("pin") as UInt32)
            // A request names no SRP ID yet, and only a request names an address.
            let srpID = phase == .request ? try body.readEmptyField("srp_id") : try body.readSRPID()
            let email = phase == .request ? try body.readLongString("email", max: Activation.maxEmailLength) : try body.readEmptyLongField("email")
            guard phase != .request || !email.isEmpty else { throw WireError(.invalidField("email")) }
            let message = body.readBytes(length: body.readableBytes) ?? []
            guard !message.isEmpty, message.count <= Activation.maxMessageLength else { throw WireError(.invalidField("body")) }
            frame = .activation(ActivationFrame(phase: phase, pin: pin, email: email, srpID: srpID, body: message))
        }
        guard body.readableBytes == 0 else { throw WireError(.trailingBytes(body.readableBytes)) }
        return frame
    }
}

extension ByteBuffer {
    fileprivate mutating func read<T: FixedWidthInteger>(_ field: String) throws(WireError) -> T {
        guard let v = readInteger(as: T.self) else { throw WireError(.truncated(field: field)) }
        return v
    }

    fileprivate mutating func readFixedBytes(_ n: Int, _ field: String) throws(WireError) -> [UInt8] {
        guard let bytes = readBytes(length: n) else { throw WireError(.truncated(field: field)) }
        return bytes
    }

    fileprivate mutating func readSRPID() throws(WireError) -> String {
        let length: UInt8 = try read("srp_id.length")
        guard let bytes = readBytes(length: Int(length)) else { throw WireError(.truncated(field: "srp_id")) }
        guard let id = String(validating: bytes, as: UTF8.self), SRPIdentifier.isValid(id) else {
            throw WireError(.invalidField("srp_id"))
        }
        return id
    }

    fileprivate mutating func readEmptyField(_ field: String) throws(WireError) -> String {
        let length: UInt8 = try read("\(field).length")
        guard length == 0 else { throw WireError(.invalidField(field)) }
        return ""
    }

    fileprivate mutating func readEmptyLongField(_ field: String) throws(WireError) -> String {
        let length: UInt16 = try read("\(field).length")
        guard length == 0 else { throw WireError(.invalidField(field)) }
        return ""
    }

    fileprivate mutating func readLongString(_ field: String, max: Int) throws(WireError) -> String {
        let length: UInt16 = try read("\(field).length")
        guard Int(length) <= max else { throw WireError(.invalidField(field)) }
        guard let bytes = readBytes(length: Int(length)) else { throw WireError(.truncated(field: field)) }
        guard let s = String(validating: bytes, as: UTF8.self) else { throw WireError(.invalidField(field)) }
        return s
    }

    fileprivate mutating func writeShortString(_ s: String) {
        let bytes = Array(s.utf8.prefix(Int(UInt8.max)))
        writeInteger(UInt8(bytes.count))
        writeBytes(bytes)
    }

    fileprivate mutating func writeLongString(_ s: String) {
        let bytes = Array(s.utf8.prefix(Int(UInt16.max)))
        writeInteger(UInt16(bytes.count))
        writeBytes(bytes)
    }
}
