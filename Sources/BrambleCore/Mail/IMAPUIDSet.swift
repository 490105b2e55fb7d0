/// A set of UIDs as IMAP writes it (RFC 9051 `sequence-set` without "*"): "1:3,7,9:12".
/// Read from a server's VANISHED and COPYUID, and checked before one goes into a command.
public enum IMAPUIDSet {
    /// Its ranges in the order written (a range written "9:7" is 7…9); nil unless it is
    /// such a set: numbers 1…2^32-1, ":" and ",", no "*", no spaces.
    public static func ranges(_ text: String) -> [ClosedRange<UInt64>]? {
        guard !text.isEmpty, text.utf8.count <= 1 << 20 else { return nil }
        var ranges: [ClosedRange<UInt64>] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let ends = item.split(separator: ":", omittingEmptySubsequences: false)
            guard (1...2).contains(ends.count) else { return nil }
            var numbers: [UInt64] = []
            for end in ends {
                guard !end.isEmpty, end.utf8.count <= 10, end.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                      let n = UInt64(end), n >= 1, n <= UInt64(UInt32.max) else { return nil }
                numbers.append(n)
            }
            ranges.append(min(numbers[0], numbers[numbers.count - 1])...max(numbers[0], numbers[numbers.count - 1]))
        }
        return ranges
    }

    /// Every UID of `text`, in the order written; nil if it is not a set or holds more
    /// than `maxCount` UIDs (counted before any is expanded).
    public static func expand(_ text: String, maxCount: Int) -> [UInt64]? {
        guard let ranges = ranges(text) else { return nil }
        var total: UInt64 = 0
        for r in ranges {
            total += r.upperBound - r.lowerBound + 1
            guard total <= UInt64(max(maxCount, 0)) else { return nil }
        }
        return ranges.flatMap { Array($0) }
    }

    /// `uids` as a set, runs of consecutive UIDs as ranges: [3, 1, 2, 7] → "1:3,7"; nil if empty.
    public static func string(_ uids: [UInt64]) -> String? {
        let sorted = Set(uids).sorted()
        guard var start = sorted.first else { return nil }
        var parts: [String] = []
        var last = start
        for uid in sorted.dropFirst() {
            if uid == last + 1 { last = uid; continue }
            parts.append(start == last ? "\(start)" : "\(start):\(last)")
            (start, last) = (uid, uid)
        }
        parts.append(start == last ? "\(start)" : "\(start):\(last)")
        return parts.joined(separator: ",")
    }
}
