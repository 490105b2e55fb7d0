/// A message as SMTP's DATA carries it (RFC 5321 §4.5.2): every line ends in CRLF, a line
/// that begins with "." gets another in front, and ".\r\n" ends it. Done on bytes: Swift
/// counts "\r\n" as one Character, so splitting a String at "\n" misses every CRLF line
/// and a "\r\n.\r\n" in the text would end the message early and turn the rest into
/// commands (SMTP smuggling).
public enum SMTPData {
    /// The line that ends the data, written after `body(_:)`.
    public static let end: [UInt8] = [0x2E, 0x0D, 0x0A]

    /// `message`'s bytes with each line ending (CRLF, or a bare LF or CR) as CRLF, dot-
    /// stuffed, and the terminating ".\r\n" after a last line that lacked its ending.
    public static func encode(_ message: String) -> [UInt8] { body(message.utf8) + end }

    /// The data without its terminating ".\r\n" (`end`), so the two can be written
    /// separately: every line ending as CRLF, dot-stuffed, the last line ended. The
    /// message is bytes (8-bit parts need not be UTF-8); an empty one is one empty line.
    public static func body(_ message: some Sequence<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(message.underestimatedCount + message.underestimatedCount / 40 + 8)
        var atLineStart = true
        var afterCR = false
        for byte in message {
            if afterCR {
                afterCR = false
                if byte == 0x0A { continue }  // the LF of a CRLF, written already
            }
            switch byte {
            case 0x0D, 0x0A:
                out += [0x0D, 0x0A]
                atLineStart = true
                afterCR = byte == 0x0D
            default:
                if atLineStart, byte == 0x2E { out.append(0x2E) }
                out.append(byte)
                atLineStart = false
            }
        }
        if !atLineStart || out.isEmpty { out += [0x0D, 0x0A] }
        return out
    }
}
