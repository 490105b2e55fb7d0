import Crypto
import Foundation

/// How the composer writes header fields (folded, RFC 2047 where needed), text
/// (quoted-printable), dates and a multipart boundary. All on bytes where line breaks
/// matter: Swift reads "\r\n" as one Character.
extension MessageComposer {
    /// RFC 5322 §2.1.1: a line SHOULD stay within 78 bytes, MUST within 998.
    static let maxHeaderLine = 78

    // MARK: Header fields

    /// `Name: piece piece…`, CRLF-terminated, folded before a piece when the line would
    /// pass 78 bytes. Every piece after the first starts with the space a fold goes before.
    static func field(_ name: String, _ pieces: [String]) -> String {
        var out = "", line = name + ":"
        for (i, piece) in pieces.enumerated() {
            let next = i == 0 ? " " + piece : piece
            if i > 0, line.utf8.count + next.utf8.count > maxHeaderLine {
                out += line + "\r\n"
                line = next
            } else {
                line += next
            }
        }
        return out + line + "\r\n"
    }

    /// Free text (Subject): as it is if it is printable ASCII that folds within 78 bytes,
    /// else RFC 2047 encoded words, which always do. Text holding "=?" is encoded too, or
    /// readers would decode what the user typed as an encoded word.
    static func unstructured(_ name: String, _ value: String) -> String {
        let text = oneLine(value).trimmingCharacters(in: .whitespaces)
        guard !text.isEmpty else { return name + ":\r\n" }
        if needsNoEncoding(text) {
            let plain = field(name, plainPieces(text))
            if fits(plain) { return plain }
        }
        return field(name, encodedWords(text, firstRoom: maxHeaderLine - name.utf8.count - 2))
    }

    /// `Name: "Display" <address>`, or the bare address when there is no name; a name
    /// that is not plain ASCII, or too long to fit, as encoded words.
    static func mailbox(_ name: String, address: String, name display: String?) -> String {
        let address = headerToken(address)
        let text = oneLine(display ?? "").trimmingCharacters(in: .whitespaces)
        guard !text.isEmpty else { return field(name, [address]) }
        if needsNoEncoding(text) {
            let escaped = text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            let plain = field(name, ["\"\(escaped)\"", " <\(address)>"])
            if fits(plain) { return plain }
        }
        return field(name, encodedWords(text, firstRoom: maxHeaderLine - name.utf8.count - 2) + [" <\(address)>"])
    }

    /// `Name: a, b, c`, folded after a comma.
    static func addressList(_ name: String, _ addresses: [String]) -> String {
        let tokens = addresses.map(headerToken)
        return field(name, tokens.enumerated().map { i, a in (i == 0 ? "" : " ") + a + (i == tokens.count - 1 ? "" : ",") })
    }

    /// The original's References and then its ID, one ID per piece. Only well-formed IDs
    /// are kept, and of a very long thread its first (the root) and its latest ones, so
    /// the field stays a reasonable size.
    static func references(_ raw: String, then id: String) -> [String] {
        let maxIDs = 40
        var ids = oneLine(raw).split(whereSeparator: \.isWhitespace).compactMap { usableMessageID(String($0)) }
        if ids.last != id { ids.append(id) }
        if ids.count > maxIDs { ids = [ids[0]] + ids.suffix(maxIDs - 1) }
        return ids.enumerated().map { i, id in i == 0 ? id : " " + id }
    }

    /// `<…>` of printable ASCII and short enough for a header line, or nil.
    static func usableMessageID(_ s: String) -> String? {
        let id = s.trimmingCharacters(in: .whitespaces)
        guard id.utf8.count >= 3, id.utf8.count <= 900, id.utf8.first == 0x3C, id.utf8.last == 0x3E,
              id.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else { return nil }
        return id
    }

    /// Text for a header or a one-line label: line breaks and tabs become a space (two
    /// words on two lines stay two words), every other control character (C0, DEL, C1)
    /// goes. Scalar by scalar, so a CR or LF hidden in a Character with a combining mark
    /// goes too.
    static func oneLine(_ s: String) -> String {
        guard s.unicodeScalars.contains(where: isControl) else { return s }
        var out = String.UnicodeScalarView()
        var previous: Unicode.Scalar = " "
        for scalar in s.unicodeScalars {
            defer { previous = scalar }
            switch scalar {
            case "\n" where previous == "\r": continue
            case "\r", "\n", "\t": out.append(" ")
            default: if !isControl(scalar) { out.append(scalar) }
            }
        }
        return String(out)
    }

    /// A header value with no space or control in it (an address, a Message-ID).
    static func headerToken(_ s: String) -> String {
        var out = String.UnicodeScalarView()
        out.append(contentsOf: s.unicodeScalars.lazy.filter { !isControl($0) && !$0.properties.isWhitespace })
        return String(out)
    }

    private static func isControl(_ c: Unicode.Scalar) -> Bool { c.value < 0x20 || (0x7F...0x9F).contains(c.value) }

    /// Printable ASCII without "=?": fit for a header as it is.
    private static func needsNoEncoding(_ text: String) -> Bool {
        text.utf8.allSatisfy { (0x20...0x7E).contains($0) } && !text.contains("=?")
    }

    /// Whether every line of a folded field is within 78 bytes.
    private static func fits(_ folded: String) -> Bool {
        folded.utf8.split(separator: 0x0A).allSatisfy { $0.count <= maxHeaderLine + 1 }  // + its CR
    }

    /// ASCII text cut before each space that a non-space follows: where a fold may go
    /// without leaving a line of only spaces.
    private static func plainPieces(_ text: String) -> [String] {
        let bytes = Array(text.utf8)
        var pieces: [String] = []
        var start = 0
        for i in bytes.indices where i > start && bytes[i] == 0x20 && i + 1 < bytes.count && bytes[i + 1] != 0x20 {
            pieces.append(String(decoding: bytes[start..<i], as: UTF8.self))
            start = i
        }
        pieces.append(String(decoding: bytes[start...], as: UTF8.self))
        return pieces
    }

    // MARK: RFC 2047

    /// `text` as UTF-8 encoded words, each at most 75 bytes (RFC 2047 §2) and the first
    /// at most `firstRoom`; every one after the first starts with the space a fold goes
    /// before (readers drop the space between two encoded words). Q or B, whichever is
    /// shorter: Q keeps mostly-Latin text readable, B is smaller for other scripts.
    static func encodedWords(_ text: String, firstRoom: Int) -> [String] {
        let q = encodedWords(text, firstRoom: firstRoom, base64: false)
        let b = encodedWords(text, firstRoom: firstRoom, base64: true)
        let words = q.reduce(0) { $0 + $1.utf8.count } <= b.reduce(0) { $0 + $1.utf8.count } ? q : b
        return words.enumerated().map { i, w in i == 0 ? w : " " + w }
    }

    /// Words are cut between scalars, never inside one's UTF-8 (§5: a word holds whole
    /// characters of its charset).
    private static func encodedWords(_ text: String, firstRoom: Int, base64: Bool) -> [String] {
        let overhead = "=?UTF-8?Q??=".utf8.count
        var words: [String] = []
        var bytes: [UInt8] = []
        var qLength = 0
        var room = min(75, max(firstRoom, overhead + 12))
        func length(_ count: Int, _ q: Int) -> Int { base64 ? (count + 2) / 3 * 4 : q }
        func flush() {
            let payload = base64 ? Data(bytes).base64EncodedString() : String(decoding: bytes.flatMap(qEncoded), as: UTF8.self)
            words.append("=?UTF-8?\(base64 ? "B" : "Q")?\(payload)?=")
            (bytes, qLength, room) = ([], 0, 75)
        }
        for scalar in text.unicodeScalars {
            let utf8 = Array(String(scalar).utf8)
            let q = utf8.reduce(0) { $0 + qEncoded($1).count }
            if !bytes.isEmpty, overhead + length(bytes.count + utf8.count, qLength + q) > room { flush() }
            bytes += utf8
            qLength += q
        }
        if !bytes.isEmpty { flush() }
        return words
    }

    /// One byte in a Q-encoded word, using only the characters RFC 2047 §5(3) allows in
    /// a phrase (so the same word is good in a display name and a subject).
    private static func qEncoded(_ b: UInt8) -> [UInt8] {
        switch b {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, 0x21, 0x2A, 0x2B, 0x2D, 0x2F: [b]
        case 0x20: [0x5F]
        default: [0x3D, hexDigits[Int(b >> 4)], hexDigits[Int(b & 0xF)]]
        }
    }

    private static let hexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)

    // MARK: Text

    /// `text` (UTF-8, any line endings) as quoted-printable (RFC 2045 §6.7) with CRLF
    /// lines of at most 76 bytes: "=" and every byte outside printable ASCII encoded, a
    /// space or tab that ends a line too, soft breaks in long lines. NULs are dropped: no
    /// reader wants one, and some stores cannot hold one.
    static func quotedPrintable(_ text: [UInt8]) -> [UInt8] {
        let text = text.contains(0) ? text.filter { $0 != 0 } : text
        var out: [UInt8] = []
        out.reserveCapacity(text.count + text.count / 8 + 16)
        for line in lines(text) {
            var column = 0
            for i in line.indices {
                let b = line[i]
                let literal = ((0x21...0x7E).contains(b) && b != 0x3D) || ((b == 0x20 || b == 0x09) && i != line.endIndex - 1)
                let width = literal ? 1 : 3
                if column + width > 75 {  // and the "=" of the soft break makes 76
                    out += [0x3D, 0x0D, 0x0A]
                    column = 0
                }
                if literal { out.append(b) } else { out += [0x3D, hexDigits[Int(b >> 4)], hexDigits[Int(b & 0xF)]] }
                column += width
            }
            out += [0x0D, 0x0A]
        }
        return out
    }

    /// The lines of `bytes`, each ending at CRLF, a lone CR or a lone LF; a last line
    /// break ends the last line rather than starting an empty one.
    static func lines(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        var out: [ArraySlice<UInt8>] = []
        var start = 0, i = 0
        while i < bytes.count {
            let b = bytes[i]
            guard b == 0x0D || b == 0x0A else { i += 1; continue }
            out.append(bytes[start..<i])
            i += b == 0x0D && i + 1 < bytes.count && bytes[i + 1] == 0x0A ? 2 : 1
            start = i
        }
        if start < bytes.count { out.append(bytes[start...]) }
        return out
    }

    /// `bytes` with every bare CR or LF made CRLF: what SMTP carries, and all a part
    /// copied from the original may need.
    static func crlf(_ bytes: [UInt8]) -> [UInt8] {
        var clean = true
        for i in bytes.indices where bytes[i] == 0x0D || bytes[i] == 0x0A {
            let pairedCR = bytes[i] == 0x0D && i + 1 < bytes.count && bytes[i + 1] == 0x0A
            let pairedLF = bytes[i] == 0x0A && i > 0 && bytes[i - 1] == 0x0D
            if !pairedCR && !pairedLF { clean = false; break }
        }
        if clean { return bytes }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + bytes.count / 16)
        for line in lines(bytes) { out += line + [0x0D, 0x0A] }
        if let last = bytes.last, last != 0x0D && last != 0x0A { out.removeLast(2) }  // it had no final line break
        return out
    }

    // MARK: Date and boundary

    /// `Thu, 5 Dec 2026 10:00:00 +0000` (RFC 5322 §3.3).
    static func rfc5322Date(_ date: Date) -> String {
        let c = Calendar(identifier: .gregorian).dateComponents(in: TimeZone(secondsFromGMT: 0)!, from: date)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func pad(_ n: Int, _ width: Int) -> String { String(repeating: "0", count: max(0, width - String(n).count)) + String(n) }
        return "\(days[c.weekday! - 1]), \(c.day!) \(months[c.month! - 1]) \(pad(c.year!, 4)) "
            + "\(pad(c.hour!, 2)):\(pad(c.minute!, 2)):\(pad(c.second!, 2)) +0000"
    }

    /// A multipart boundary found in none of `parts` (RFC 2046 §5.1.1). "=_" cannot occur
    /// in quoted-printable or base64, and the rest is a hash of the parts themselves, so
    /// the original's sender cannot plant it in an attachment; each candidate is still
    /// checked against every byte. Deterministic: the same forward gets the same boundary.
    static func boundary(avoiding parts: [[UInt8]], seed: String) -> String {
        var hash = SHA256()
        hash.update(data: Array(seed.utf8))
        for part in parts {
            withUnsafeBytes(of: UInt64(part.count).bigEndian) { hash.update(bufferPointer: $0) }
            hash.update(data: part)
        }
        let digest = Array(hash.finalize())
        for attempt in UInt64(0)... {
            var next = SHA256()
            next.update(data: digest)
            withUnsafeBytes(of: attempt.bigEndian) { next.update(bufferPointer: $0) }
            let hex = next.finalize().prefix(12).flatMap { [hexDigits[Int($0 >> 4)], hexDigits[Int($0 & 0xF)]] }
            let candidate = Array("=_bramble_".utf8) + hex
            if !parts.contains(where: { occurs(candidate, in: $0) }) { return String(decoding: candidate, as: UTF8.self) }
        }
        fatalError("unreachable: UInt64 attempts exhausted")
    }

    /// Whether `needle` occurs in `haystack`.
    static func occurs(_ needle: [UInt8], in haystack: [UInt8]) -> Bool {
        guard let first = needle.first, haystack.count >= needle.count else { return false }
        var i = 0
        while i <= haystack.count - needle.count {
            if haystack[i] == first && haystack[i..<(i + needle.count)].elementsEqual(needle) { return true }
            i += 1
        }
        return false
    }
}
