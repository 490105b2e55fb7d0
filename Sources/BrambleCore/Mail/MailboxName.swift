/// IMAP mailbox names in modified UTF-7 (RFC 3501 §5.1.3), as servers without UTF8=ACCEPT
/// send and expect them: printable US-ASCII stands for itself, "&" is "&-", and any other
/// run of characters is "&" + the modified base64 (`,` for `/`, no padding) of its UTF-16BE
/// + "-". "Entwürfe" is "Entw&APw-rfe".
public enum MailboxName {
    /// The longest name `decode` reads, in bytes (Dovecot's own limit is lower).
    public static let maxEncodedBytes = 4_096

    /// `name` in modified UTF-7 (total: every string has exactly one encoding).
    public static func encode(_ name: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(name.utf8.count)
        var pending: [UInt16] = []
        func flush() {
            guard !pending.isEmpty else { return }
            out.append(0x26)  // &
            var bytes: [UInt8] = []
            for unit in pending { bytes += [UInt8(unit >> 8), UInt8(unit & 0xFF)] }
            var i = 0
            while i < bytes.count {
                let chunk = bytes[i..<min(i + 3, bytes.count)]
                let b0 = chunk[chunk.startIndex], b1 = chunk.count > 1 ? chunk[chunk.startIndex + 1] : 0
                let b2 = chunk.count > 2 ? chunk[chunk.startIndex + 2] : 0
                let sextets = [b0 >> 2, (b0 & 0x03) << 4 | b1 >> 4, (b1 & 0x0F) << 2 | b2 >> 6, b2 & 0x3F]
                for s in sextets.prefix(chunk.count + 1) { out.append(alphabet[Int(s)]) }
                i += 3
            }
            out.append(0x2D)  // -
            pending.removeAll()
        }
        for scalar in name.unicodeScalars {
            if isDirect(scalar.value) {
                flush()
                out.append(UInt8(scalar.value))
                if scalar == "&" { out.append(0x2D) }
            } else {
                pending += Array(String(scalar).utf16)
            }
        }
        flush()
        return String(decoding: out, as: UTF8.self)
    }

    /// The name `encoded` stands for; nil unless it is modified UTF-7 in its one canonical
    /// form: only printable US-ASCII bytes, every "&" closed by "-", base64 of whole UTF-16
    /// units with zero padding bits and paired surrogates, no printable US-ASCII encoded and
    /// no two encoded runs side by side. So `encode(decode(x)!) == x` for every x decoded.
    /// Longer than `maxEncodedBytes`: nil.
    public static func decode(_ encoded: String) -> String? {
        let bytes = Array(encoded.utf8)
        guard bytes.count <= maxEncodedBytes else { return nil }
        var scalars = String.UnicodeScalarView()
        var i = 0
        var lastWasEncodedRun = false
        while i < bytes.count {
            let b = bytes[i]
            guard b >= 0x20 && b <= 0x7E else { return nil }
            guard b == 0x26 else {
                scalars.append(Unicode.Scalar(b))
                lastWasEncodedRun = false
                i += 1
                continue
            }
            // "&…-"
            guard let dash = bytes[(i + 1)...].firstIndex(of: 0x2D) else { return nil }
            if dash == i + 1 {
                scalars.append("&")
                lastWasEncodedRun = false
                i += 2
                continue
            }
            guard !lastWasEncodedRun, let units = decodeRun(bytes[(i + 1)..<dash]) else { return nil }
            var iterator = units.makeIterator()
            var utf16 = UTF16()
            decoding: while true {
                switch utf16.decode(&iterator) {
                case .scalarValue(let scalar):
                    guard !isDirect(scalar.value) else { return nil }  // printable ASCII must stand for itself
                    scalars.append(scalar)
                case .emptyInput: break decoding
                case .error: return nil  // an unpaired surrogate
                }
            }
            lastWasEncodedRun = true
            i = dash + 1
        }
        return String(scalars)
    }

    /// Printable US-ASCII: written as itself.
    private static func isDirect(_ value: UInt32) -> Bool { value >= 0x20 && value <= 0x7E }

    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,".utf8)

    private static func sextet(_ b: UInt8) -> UInt32? {
        switch b {
        case 0x41...0x5A: UInt32(b - 0x41)
        case 0x61...0x7A: UInt32(b - 0x61 + 26)
        case 0x30...0x39: UInt32(b - 0x30 + 52)
        case 0x2B: 62
        case 0x2C: 63
        default: nil
        }
    }

    /// The UTF-16 units of one run's modified base64; nil unless whole units with zero pad bits.
    private static func decodeRun(_ run: ArraySlice<UInt8>) -> [UInt16]? {
        var units: [UInt16] = []
        var buffer: UInt32 = 0
        var bits = 0
        for b in run {
            guard let value = sextet(b) else { return nil }
            buffer = (buffer << 6 | value) & 0x3FFFFF
            bits += 6
            if bits >= 16 {
                bits -= 16
                units.append(UInt16(truncatingIfNeeded: buffer >> UInt32(bits)))
            }
        }
        // Fewer than 6 bits left over, all zero: else not the canonical base64 of whole units.
        guard !units.isEmpty, bits < 6, buffer & ((1 << UInt32(bits)) - 1) == 0 else { return nil }
        return units
    }
}
