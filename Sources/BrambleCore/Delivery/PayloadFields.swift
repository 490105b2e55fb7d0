/// The encoding of every payload since mail (mail items, More chunks, device requests,
/// and the IM and policy payloads to come): a flat list of tagged fields,
/// `u8 tag ‖ u32 length ‖ value`, big-endian; integers are 8 bytes, strings UTF-8,
/// records (an attachment) nested fields. A tag may repeat (a list).
///
/// Why not a schema compiler (swift-protobuf): its decoder bounds only the whole message
/// and the nesting depth, while every field here has its own limit, checked before it
/// is copied; there is no code generator to install or keep in step; and the format is
/// small enough to fuzz whole. What it keeps of protobuf is what lets payloads grow: a
/// decoder skips tags it does not know, so a newer server can add fields an older device
/// ignores. (`PushItem` and `AckList` keep their original fixed layouts, which devices
/// in the field already speak.)
public struct PayloadWriter: Sendable {
    public private(set) var bytes: [UInt8] = []
    public init() {}

    public mutating func bytes(_ tag: UInt8, _ value: some Collection<UInt8>) {
        bytes.append(tag)
        withUnsafeBytes(of: UInt32(value.count).bigEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: value)
    }

    /// A string cut to `max` bytes at a character boundary (the reader's limit for the tag).
    public mutating func string(_ tag: UInt8, _ value: String, max: Int) {
        bytes(tag, Array(MailText.prefix(value, maxBytes: max).utf8))
    }

    public mutating func uint(_ tag: UInt8, _ value: UInt64) {
        withUnsafeBytes(of: value.bigEndian) { bytes(tag, $0) }
    }

    public mutating func bool(_ tag: UInt8, _ value: Bool) { bytes(tag, [value ? 1 : 0]) }

    public mutating func record(_ tag: UInt8, _ fields: PayloadWriter) { bytes(tag, fields.bytes) }
}

/// The fields of one payload, read with the bound of each. Malformed framing, a field
/// over its bound, a wrong width or invalid UTF-8 is a `PayloadError`; unknown tags are
/// skipped.
public struct PayloadFields: Sendable {
    /// At most this many fields in one payload (or record).
    public static let maxFields = 1024
    private var fields: [(tag: UInt8, value: ArraySlice<UInt8>)] = []

    public init(_ bytes: some Collection<UInt8>) throws(PayloadError) {
        try self.init(slice: ArraySlice(bytes))
    }

    private init(slice bytes: ArraySlice<UInt8>) throws(PayloadError) {
        var i = bytes.startIndex
        while i < bytes.endIndex {
            guard bytes.endIndex - i >= 5 else { throw PayloadError("field header truncated") }
            guard fields.count < Self.maxFields else { throw PayloadError("more than \(Self.maxFields) fields") }
            let tag = bytes[i]
            let length = bytes[(i + 1)..<(i + 5)].reduce(0) { $0 << 8 | Int($1) }
            i += 5
            guard length <= bytes.endIndex - i else { throw PayloadError("field \(tag) truncated") }
            fields.append((tag, bytes[i..<(i + length)]))
            i += length
        }
    }

    private func all(_ tag: UInt8) -> [ArraySlice<UInt8>] { fields.compactMap { $0.tag == tag ? $0.value : nil } }

    /// The last value of `tag`; nil when absent.
    public func bytes(_ tag: UInt8, max: Int, _ name: String) throws(PayloadError) -> ArraySlice<UInt8>? {
        guard let value = all(tag).last else { return nil }
        guard value.count <= max else { throw PayloadError("\(name) longer than \(max) bytes") }
        return value
    }

    public func string(_ tag: UInt8, max: Int, _ name: String) throws(PayloadError) -> String? {
        guard let value = try bytes(tag, max: max, name) else { return nil }
        return try Self.text(value, name)
    }

    public func requiredString(_ tag: UInt8, max: Int, _ name: String) throws(PayloadError) -> String {
        guard let s = try string(tag, max: max, name) else { throw PayloadError("\(name) missing") }
        return s
    }

    /// Every value of a repeated string field, at most `maxCount` of them.
    public func strings(_ tag: UInt8, max: Int, maxCount: Int, _ name: String) throws(PayloadError) -> [String] {
        let values = all(tag)
        guard values.count <= maxCount else { throw PayloadError("more than \(maxCount) \(name)") }
        var out: [String] = []
        for value in values {
            guard value.count <= max else { throw PayloadError("\(name) longer than \(max) bytes") }
            out.append(try Self.text(value, name))
        }
        return out
    }

    public func uint(_ tag: UInt8, _ name: String) throws(PayloadError) -> UInt64? {
        guard let value = all(tag).last else { return nil }
        guard value.count == 8 else { throw PayloadError("\(name) is not 8 bytes") }
        return value.reduce(0) { $0 << 8 | UInt64($1) }
    }

    public func requiredUInt(_ tag: UInt8, _ name: String) throws(PayloadError) -> UInt64 {
        guard let n = try uint(tag, name) else { throw PayloadError("\(name) missing") }
        return n
    }

    public func bool(_ tag: UInt8, _ name: String) throws(PayloadError) -> Bool {
        guard let value = all(tag).last else { return false }
        guard value.count == 1, value.first! <= 1 else { throw PayloadError("\(name) is not a boolean") }
        return value.first! == 1
    }

    /// Every nested record of a repeated field, at most `maxCount` of them.
    public func records(_ tag: UInt8, maxCount: Int, _ name: String) throws(PayloadError) -> [PayloadFields] {
        let values = all(tag)
        guard values.count <= maxCount else { throw PayloadError("more than \(maxCount) \(name)") }
        var out: [PayloadFields] = []
        for value in values { out.append(try PayloadFields(slice: value)) }
        return out
    }

    private static func text(_ value: ArraySlice<UInt8>, _ name: String) throws(PayloadError) -> String {
        guard let s = String(validating: value, as: UTF8.self) else { throw PayloadError("\(name) is not UTF-8") }
        return s
    }
}
