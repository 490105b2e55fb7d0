import NIOCore

/// One SMTP reply (RFC 5321 §4.2): a three-digit code and its lines (`250-…` then `250 …`).
public struct SMTPReply: Equatable, Sendable {
    public var code: Int
    public var lines: [String]
    public init(code: Int, lines: [String]) { (self.code, self.lines) = (code, lines) }

    /// 2xx.
    public var isPositive: Bool { (200..<300).contains(code) }
    /// 354 (send the data).
    public var isIntermediate: Bool { (300..<400).contains(code) }
    /// 5xx: the server will not take it, whatever we do.
    public var isPermanentFailure: Bool { (500..<600).contains(code) }
    public var text: String { lines.joined(separator: " ") }
}

/// Reads SMTP replies from a server's bytes; pure and bounded, typed in its errors.
public enum SMTPReplyDecoder {
    public static let maxLineLength = 2_048
    public static let maxLines = 128

    public struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        public let reason: String
        public var description: String { "SMTP reply: \(reason)" }
    }

    /// The next whole reply at the front of `buffer`, consumed; nil when incomplete.
    public static func decode(from buffer: inout ByteBuffer) throws(Failure) -> SMTPReply? {
        let view = buffer.readableBytesView
        var offset = 0
        var code: Int?
        var lines: [String] = []
        while true {
            guard let newline = view[(view.startIndex + offset)...].firstIndex(of: 0x0A) else {
                guard view.count - offset <= maxLineLength else { throw Failure(reason: "a line longer than \(maxLineLength) bytes") }
                return nil
            }
            var line = Array(view[(view.startIndex + offset)..<newline])
            offset = newline - view.startIndex + 1
            if line.last == 0x0D { line.removeLast() }
            guard line.count <= maxLineLength else { throw Failure(reason: "a line longer than \(maxLineLength) bytes") }
            guard line.count >= 3, line[0...2].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                  let value = Int(String(decoding: line[0...2], as: UTF8.self)), (200...599).contains(value) else {
                throw Failure(reason: "a line without a reply code")
            }
            guard code == nil || code == value else { throw Failure(reason: "lines of one reply with different codes") }
            code = value
            let separator: UInt8 = line.count > 3 ? line[3] : 0x20
            guard separator == 0x20 || separator == 0x2D else { throw Failure(reason: "a reply code not followed by a space or a hyphen") }
            lines.append(line.count > 4 ? String(decoding: line[4...], as: UTF8.self) : "")
            guard lines.count <= maxLines else { throw Failure(reason: "more than \(maxLines) lines") }
            if separator == 0x20 {
                buffer.moveReaderIndex(forwardBy: offset)
                return SMTPReply(code: value, lines: lines)
            }
        }
    }
}
