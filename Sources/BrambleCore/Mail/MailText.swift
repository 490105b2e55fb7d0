import Foundation

/// Turning a message's bytes into the text a device shows: RFC 2047 encoded words in
/// headers, transfer encodings (base64, quoted-printable), charsets, and HTML reduced to
/// text. Tolerant (real mail is often malformed: a bad sequence becomes U+FFFD, an
/// unknown charset is read as Latin-1 or UTF-8) and bounded (every function takes at most
/// what it is given and makes nothing larger than a fixed multiple of it).
public enum MailText {
    // MARK: Headers

    /// A header value with its `=?charset?B|Q?…?=` words decoded; whitespace between two
    /// encoded words dropped (RFC 2047 §6.2); anything malformed left as it was.
    public static func decodeHeader(_ value: String) -> String {
        var out = ""
        var rest = Substring(value)
        var lastWasEncoded = false
        while let start = rest.range(of: "=?") {
            let before = rest[..<start.lowerBound]
            if let (decoded, end) = encodedWord(rest[start.lowerBound...]) {
                if !(lastWasEncoded && before.allSatisfy(\.isWhitespace)) { out += before }
                out += decoded
                lastWasEncoded = true
                rest = rest[end...]
            } else {
                out += before + "=?"
                lastWasEncoded = false
                rest = rest[start.upperBound...]
            }
        }
        return out + rest
    }

    /// One encoded word at the front of `s`: its text and where it ends.
    private static func encodedWord(_ s: Substring) -> (String, Substring.Index)? {
        let parts = s.dropFirst(2).split(separator: "?", maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count == 4, parts[3].hasPrefix("="), parts[0].count <= 40, parts[2].count <= 1_000 else { return nil }
        let charset = parts[0].split(separator: "*").first.map(String.init) ?? ""  // RFC 2231 language suffix
        let bytes: [UInt8]
        switch parts[1].uppercased() {
        case "B": bytes = base64(Array(parts[2].utf8))
        case "Q": bytes = quotedPrintable(Array(parts[2].utf8), underscoreIsSpace: true)
        default: return nil
        }
        let end = s.index(parts[3].startIndex, offsetBy: 1)
        return (decode(bytes, charset: charset), end)
    }

    // MARK: Transfer encodings

    /// base64, ignoring whitespace and junk, stopping at padding; a truncated tail (a
    /// partial fetch) is decoded as far as whole groups go.
    public static func base64(_ input: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(input.count * 3 / 4)
        var group: UInt32 = 0, count = 0
        for byte in input {
            let v: UInt32
            switch byte {
            case 0x41...0x5A: v = UInt32(byte - 0x41)
            case 0x61...0x7A: v = UInt32(byte - 0x61 + 26)
            case 0x30...0x39: v = UInt32(byte - 0x30 + 52)
            case 0x2B: v = 62
            case 0x2F: v = 63
            case 0x3D: return out + tail(group, count)
            default: continue
            }
            group = group << 6 | v
            count += 1
            if count == 4 {
                out += [UInt8(group >> 16 & 0xFF), UInt8(group >> 8 & 0xFF), UInt8(group & 0xFF)]
                group = 0
                count = 0
            }
        }
        return out + tail(group, count)
    }

    private static func tail(_ group: UInt32, _ count: Int) -> [UInt8] {
        switch count {
        case 2: [UInt8(group >> 4 & 0xFF)]
        case 3: [UInt8(group >> 10 & 0xFF), UInt8(group >> 2 & 0xFF)]
        default: []
        }
    }

    /// quoted-printable (soft line breaks removed, `=XX` decoded, a malformed `=` kept).
    public static func quotedPrintable(_ input: [UInt8], underscoreIsSpace: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(input.count)
        var i = 0
        func hex(_ b: UInt8) -> UInt8? {
            switch b {
            case 0x30...0x39: b - 0x30
            case 0x41...0x46: b - 0x41 + 10
            case 0x61...0x66: b - 0x61 + 10
            default: nil
            }
        }
        while i < input.count {
            let b = input[i]
            if b == 0x3D {
                if i + 1 < input.count, input[i + 1] == 0x0A { i += 2; continue }
                if i + 2 < input.count, input[i + 1] == 0x0D, input[i + 2] == 0x0A { i += 3; continue }
                if i + 2 < input.count, let h = hex(input[i + 1]), let l = hex(input[i + 2]) { out.append(h << 4 | l); i += 3; continue }
                out.append(b)
            } else if b == 0x5F && underscoreIsSpace {
                out.append(0x20)
            } else {
                out.append(b)
            }
            i += 1
        }
        return out
    }

    /// The body's bytes under `encoding` (a Content-Transfer-Encoding, any case).
    public static func decodeTransfer(_ bytes: [UInt8], encoding: String?) -> [UInt8] {
        switch encoding?.lowercased() {
        case "base64": base64(bytes)
        case "quoted-printable": quotedPrintable(bytes)
        default: bytes
        }
    }

    // MARK: Charsets

    /// `bytes` as text in `charset` (an IANA name, any case): UTF-8 and US-ASCII,
    /// ISO-8859-1/-2, Windows-1250…1254, UTF-16; anything unknown as UTF-8 if it is valid,
    /// else Latin-1 (which never fails). Invalid UTF-8 becomes U+FFFD.
    public static func decode(_ bytes: [UInt8], charset: String?) -> String {
        let name = (charset ?? "utf-8").lowercased().trimmingCharacters(in: .whitespaces.union(CharacterSet(charactersIn: "\"")))
        let encoding: String.Encoding? = switch name {
        case "utf-8", "utf8", "us-ascii", "ascii", "": .utf8
        case "iso-8859-1", "latin1", "iso8859-1", "iso_8859-1": .isoLatin1
        case "iso-8859-2", "latin2": .isoLatin2
        case "windows-1250", "cp1250": .windowsCP1250
        case "windows-1251", "cp1251": .windowsCP1251
        case "windows-1252", "cp1252": .windowsCP1252
        case "windows-1253", "cp1253": .windowsCP1253
        case "windows-1254", "cp1254": .windowsCP1254
        case "utf-16", "utf16": .utf16
        case "utf-16be": .utf16BigEndian
        case "utf-16le": .utf16LittleEndian
        default: nil
        }
        if encoding == .utf8 || encoding == nil {
            if let valid = String(validating: bytes, as: UTF8.self) { return valid }
            if encoding == .utf8 { return String(decoding: bytes, as: UTF8.self) }
            return String(bytes: bytes, encoding: .isoLatin1) ?? String(decoding: bytes, as: UTF8.self)
        }
        return String(bytes: bytes, encoding: encoding!) ?? String(decoding: bytes, as: UTF8.self)
    }

    // MARK: HTML

    /// Readable text from HTML: tags dropped (block tags become line breaks), `script`
    /// and `style` contents dropped, common entities decoded, runs of blank space folded.
    public static func plainText(fromHTML html: String) -> String {
        var out = ""
        out.reserveCapacity(html.utf8.count)
        var i = html.startIndex
        var skipUntil: String?
        while i < html.endIndex {
            let c = html[i]
            if c == "<" {
                guard let close = html[i...].firstIndex(of: ">") else { break }
                let tag = html[html.index(after: i)..<close].lowercased()
                let name = String(tag.drop { $0 == "/" }.prefix { $0.isLetter || $0.isNumber })
                if let skip = skipUntil {
                    if tag.hasPrefix("/") && name == skip { skipUntil = nil }
                } else if (name == "script" || name == "style") && !tag.hasPrefix("/") && !tag.hasSuffix("/") {
                    skipUntil = name
                } else if ["br", "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote"].contains(name) {
                    out += "\n"
                }
                i = html.index(after: close)
                continue
            }
            if skipUntil == nil {
                if c == "&", let semi = html[i...].prefix(10).firstIndex(of: ";") {
                    let entity = String(html[html.index(after: i)..<semi])
                    if let decoded = Self.entity(entity) {
                        out.append(decoded)
                        i = html.index(after: semi)
                        continue
                    }
                }
                out.append(c)
            }
            i = html.index(after: i)
        }
        return foldBlankSpace(out)
    }

    private static func entity(_ name: String) -> Character? {
        switch name {
        case "amp": "&"
        case "lt": "<"
        case "gt": ">"
        case "quot": "\""
        case "apos", "#39": "'"
        case "nbsp": " "
        default:
            if name.hasPrefix("#x") || name.hasPrefix("#X"), let v = UInt32(name.dropFirst(2), radix: 16), let s = Unicode.Scalar(v) { Character(s) }
            else if name.hasPrefix("#"), let v = UInt32(name.dropFirst()), let s = Unicode.Scalar(v) { Character(s) }
            else { nil }
        }
    }

    /// Spaces and tabs folded to one; three or more line breaks to two; ends trimmed.
    static func foldBlankSpace(_ s: String) -> String {
        var out = ""
        var spaces = 0, breaks = 0
        for c in s {
            if c == "\n" || c == "\r\n" || c == "\r" {
                breaks += 1
                spaces = 0
                continue
            }
            if c == " " || c == "\t" { spaces += 1; continue }
            if breaks > 0, !out.isEmpty { out += breaks >= 2 ? "\n\n" : "\n" } else if breaks == 0, spaces > 0, !out.isEmpty { out += " " }
            breaks = 0
            spaces = 0
            out.append(c)
        }
        return out
    }

    /// `s` with every control character (C0, DEL, C1: NUL and ESC among them) replaced
    /// by U+FFFD, scalar by scalar: fit for a database's text, a log line or a terminal.
    public static func printable(_ s: String) -> String {
        guard s.unicodeScalars.contains(where: isControl) else { return s }
        var scalars = String.UnicodeScalarView()
        scalars.append(contentsOf: s.unicodeScalars.lazy.map { isControl($0) ? "\u{FFFD}" : $0 })
        return String(scalars)
    }

    private static func isControl(_ c: Unicode.Scalar) -> Bool { c.value < 0x20 || (0x7F...0x9F).contains(c.value) }

    /// The first `maxBytes` of `text`'s UTF-8 without cutting a character in two.
    public static func prefix(_ text: String, maxBytes: Int) -> String {
        var used = 0
        var end = text.startIndex
        for (index, c) in zip(text.indices, text) {
            let n = c.utf8.count
            if used + n > maxBytes { return String(text[..<index]) }
            used += n
            end = text.index(after: index)
        }
        return String(text[..<end])
    }

    /// The chunk of `text` that starts `offset` UTF-8 bytes in (a boundary an earlier
    /// chunk ended at) and holds at most `maxBytes`, never cutting a character; `end` is
    /// where the next one starts, `moreAvailable` whether there is one.
    public static func chunk(_ text: String, offset: Int, maxBytes: Int) -> (body: String, end: Int, moreAvailable: Bool) {
        let total = text.utf8.count
        guard offset < total else { return ("", total, false) }
        let rest = String(decoding: text.utf8.dropFirst(offset), as: UTF8.self)
        var body = prefix(rest, maxBytes: maxBytes)
        if body.isEmpty {
            // One character longer than a chunk (a base letter under hundreds of combining
            // marks): cut it between its scalars, so each chunk still moves on.
            var scalars = String.UnicodeScalarView()
            var used = 0
            for scalar in rest.unicodeScalars {
                used += String(scalar).utf8.count
                guard used <= maxBytes else { break }
                scalars.append(scalar)
            }
            body = String(scalars)
        }
        let end = offset + body.utf8.count
        return (body, end, end < total)
    }
}
