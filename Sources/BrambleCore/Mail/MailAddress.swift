/// A recipient address as a device sends it, before it reaches an SMTP `RCPT TO:<…>` or a
/// To/Cc header. Only the plain form is accepted: `local@domain` (RFC 5322 `addr-spec` with
/// a dot-atom local part and a host name), ASCII only. No display name, no comment, no
/// quoted local part, no address literal: a device has no reason to send them, and each
/// is a way to smuggle a `>`, a space or a line break into a command or a header.
///
/// Checked on bytes: Swift reads "\r\n" as one Character, and an "@" that a combining
/// mark follows is a Character that is not "@", so String-level checks miss both.
public enum MailAddress {
    /// RFC 5321 §4.5.3.1: the longest path is 256 octets with its angle brackets.
    public static let maxLength = 254
    /// RFC 5321 §4.5.3.1.1.
    public static let maxLocalLength = 64
    /// RFC 1035 §2.3.4 (253 written without the root's trailing dot).
    public static let maxDomainLength = 253
    public static let maxLabelLength = 63

    /// `s` without surrounding spaces or tabs, with its domain lower-cased (the local part
    /// is kept: only the receiving host may say whether its case matters); nil if it is
    /// not a plain `local@domain`. A CR or LF is refused anywhere, even at either end:
    /// a line break is never typing noise worth forgiving in an address.
    public static func parse(_ s: String) -> String? {
        var bytes = Array(s.utf8)[...]
        while let b = bytes.first, b == 0x20 || b == 0x09 { bytes.removeFirst() }
        while let b = bytes.last, b == 0x20 || b == 0x09 { bytes.removeLast() }
        guard !bytes.isEmpty, bytes.count <= maxLength, let at = bytes.firstIndex(of: 0x40) else { return nil }
        let local = bytes[..<at], domain = bytes[(at + 1)...]
        // A second "@" is not atext, so `isDotAtom` refuses it in the local part, and
        // `isHostName` in the domain.
        guard local.count <= maxLocalLength, isDotAtom(local), isHostName(domain) else { return nil }
        return String(decoding: local, as: UTF8.self) + "@" + String(decoding: domain.map(lowercased), as: UTF8.self)
    }

    /// One or more runs of atext joined by single dots (RFC 5322 §3.2.3 `dot-atom-text`).
    private static func isDotAtom(_ bytes: ArraySlice<UInt8>) -> Bool {
        guard let first = bytes.first, let last = bytes.last, first != 0x2E, last != 0x2E else { return false }
        var previous: UInt8 = 0
        for b in bytes {
            if b == 0x2E {
                if previous == 0x2E { return false }
            } else if !isAtext(b) {
                return false
            }
            previous = b
        }
        return true
    }

    /// ALPHA / DIGIT / "!#$%&'*+-/=?^_`{|}~" (RFC 5322 §3.2.3).
    private static func isAtext(_ b: UInt8) -> Bool {
        isLetterOrDigit(b) || atextSymbols.contains(b)
    }

    private static let atextSymbols: [UInt8] = Array("!#$%&'*+-/=?^_`{|}~".utf8)

    /// Two or more letter-digit-hyphen labels (RFC 1035 §2.3.1), none starting or ending
    /// with a hyphen. A single label (`bob@localhost`) is refused, as `Email.isPlausible`
    /// refuses it for users: no mail this server sends is for a dotless host.
    private static func isHostName(_ bytes: ArraySlice<UInt8>) -> Bool {
        guard (1...maxDomainLength).contains(bytes.count) else { return false }
        let labels = bytes.split(separator: 0x2E, omittingEmptySubsequences: false)
        guard labels.count >= 2 else { return false }
        return labels.allSatisfy { label in
            guard let first = label.first, let last = label.last, label.count <= maxLabelLength else { return false }
            return first != 0x2D && last != 0x2D && label.allSatisfy { isLetterOrDigit($0) || $0 == 0x2D }
        }
    }

    private static func isLetterOrDigit(_ b: UInt8) -> Bool {
        (0x30...0x39).contains(b) || (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b)
    }

    private static func lowercased(_ b: UInt8) -> UInt8 { (0x41...0x5A).contains(b) ? b + 0x20 : b }
}
