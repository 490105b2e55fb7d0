import NIOCore

/// Why an opened payload could not be parsed.
public struct PayloadError: Error, Equatable, Sendable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { "malformed payload: \(reason)" }
}

/// What a pushed item carries to the device (service `push`), inside the envelope.
public struct PushItem: Equatable, Sendable {
    public static let maxPushIDLength = 64
    public static let maxSubjectLength = 1024
    public static let maxBodyLength = 64 * 1024

    public var pushID: String
    public var subject: String
    public var body: String

    public init(pushID: String, subject: String, body: String) {
        self.pushID = pushID
        self.subject = subject
        self.body = body
    }

    /// `u8 pushID.len ‖ pushID ‖ u16 subject.len ‖ subject ‖ u32 body.len ‖ body` (UTF-8).
    public func encoded() -> [UInt8] {
        var b = ByteBufferAllocator().buffer(capacity: 16 + pushID.utf8.count + subject.utf8.count + body.utf8.count)
        let id = Array(pushID.utf8.prefix(Self.maxPushIDLength))
        b.writeInteger(UInt8(id.count)); b.writeBytes(id)
        let subj = Array(subject.utf8.prefix(Self.maxSubjectLength))
        b.writeInteger(UInt16(subj.count)); b.writeBytes(subj)
        let text = Array(body.utf8.prefix(Self.maxBodyLength))
        b.writeInteger(UInt32(text.count)); b.writeBytes(text)
        return b.readBytes(length: b.readableBytes)!
    }

    public static func decode(_ bytes: [UInt8]) throws(PayloadError) -> PushItem {
        var b = ByteBufferAllocator().buffer(bytes: bytes)
        let id = try b.readString(lengthType: UInt8.self, max: maxPushIDLength, "push_id")
        let subject = try b.readString(lengthType: UInt16.self, max: maxSubjectLength, "subject")
        let body = try b.readString(lengthType: UInt32.self, max: maxBodyLength, "body")
        guard b.readableBytes == 0 else { throw PayloadError("trailing bytes") }
        return PushItem(pushID: id, subject: subject, body: body)
    }
}

/// Acknowledgements a device sends (service `ack`): the sequence numbers it has shown.
public struct AckList: Equatable, Sendable {
    public static let maxCount = 512
    public var refs: [UInt64]

    public init(refs: [UInt64]) { self.refs = refs }

    public func encoded() -> [UInt8] {
        var b = ByteBufferAllocator().buffer(capacity: 2 + 8 * refs.count)
        let refs = self.refs.prefix(Self.maxCount)
        b.writeInteger(UInt16(refs.count))
        for r in refs { b.writeInteger(r) }
        return b.readBytes(length: b.readableBytes)!
    }

    public static func decode(_ bytes: [UInt8]) throws(PayloadError) -> AckList {
        var b = ByteBufferAllocator().buffer(bytes: bytes)
        guard let count = b.readInteger(as: UInt16.self), count >= 1, Int(count) <= maxCount else {
            throw PayloadError("ack count out of range")
        }
        guard b.readableBytes == Int(count) * 8 else { throw PayloadError("ack list length mismatch") }
        var refs: [UInt64] = []
        refs.reserveCapacity(Int(count))
        for _ in 0..<count { refs.append(b.readInteger(as: UInt64.self)!) }
        return AckList(refs: refs)
    }
}

extension ByteBuffer {
    fileprivate mutating func readString<L: FixedWidthInteger>(
        lengthType: L.Type, max: Int, _ field: String
    ) throws(PayloadError) -> String {
        guard let n = readInteger(as: L.self) else { throw PayloadError("\(field) truncated") }
        guard Int(n) <= max else { throw PayloadError("\(field) longer than \(max) bytes") }
        guard let bytes = readBytes(length: Int(n)) else { throw PayloadError("\(field) truncated") }
        guard let s = String(validating: bytes, as: UTF8.self) else { throw PayloadError("\(field) is not UTF-8") }
        return s
    }
}
