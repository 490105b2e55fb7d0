/// A device PIN: 32 bits, written as 8 upper-case hex digits (BES style, e.g. `2A00F00D`).
public struct PIN: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let value: UInt32

    public init(_ value: UInt32) { self.value = value }

    /// Parses 1–8 hex digits; nil for anything else.
    public init?(_ text: some StringProtocol) {
        guard (1...8).contains(text.count), let v = UInt32(text, radix: 16) else { return nil }
        self.value = v
    }

    public var description: String {
        let hex = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: 8 - hex.count) + hex
    }

    public static func < (a: PIN, b: PIN) -> Bool { a.value < b.value }
}

/// Identifies one BES (one HA pair) to the relay; it is also the name of the shared key
/// the pair authenticates with.
public enum SRPIdentifier {
    public static let maxLength = 64

    /// Letters, digits, dot, dash and underscore; 1–64 characters.
    public static func isValid(_ id: String) -> Bool {
        guard (1...maxLength).contains(id.utf8.count) else { return false }
        return id.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                || c == 0x2E || c == 0x2D || c == 0x5F
        }
    }
}
