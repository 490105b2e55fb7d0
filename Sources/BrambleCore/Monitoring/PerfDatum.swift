/// One performance datum of a plugin's output, `'label'=value[UOM];[warn];[crit];[min];[max]`
/// (Nagios Plugin API, "Performance data").
public struct PerfDatum: Sendable, Equatable {
    public enum Unit: String, Sendable {
        case none = ""
        case seconds = "s"
        case bytes = "B"
    }

    /// A threshold in Nagios' range syntax, which alerts when the value is *outside* the
    /// range: `n:` is [n, ∞) (alert below n, as for a health score), `n` is [0, n]
    /// (alert above n, as for a queue or an age).
    public enum Threshold: Sendable, Equatable {
        case below(Double)
        case above(Double)

        var rendered: String {
            switch self {
            case .below(let n): PerfDatum.number(n) + ":"
            case .above(let n): PerfDatum.number(n)
            }
        }
    }

    public var label: String
    public var value: Double
    public var unit: Unit
    public var warning: Threshold?
    public var critical: Threshold?
    public var min: Double?
    public var max: Double?

    public init(_ label: String, _ value: Double, unit: Unit = .none, warning: Threshold? = nil, critical: Threshold? = nil,
                min: Double? = nil, max: Double? = nil) {
        (self.label, self.value, self.unit, self.warning, self.critical, self.min, self.max) = (label, value, unit, warning, critical, min, max)
    }

    public init(_ label: String, _ value: Int, unit: Unit = .none, warning: Threshold? = nil, critical: Threshold? = nil,
                min: Double? = nil, max: Double? = nil) {
        self.init(label, Double(value), unit: unit, warning: warning, critical: critical, min: min, max: max)
    }

    /// `label=value[UOM];warn;crit;min;max`, trailing empty fields left off.
    public var rendered: String {
        var fields = [warning?.rendered ?? "", critical?.rendered ?? "", min.map(Self.number) ?? "", max.map(Self.number) ?? ""]
        while fields.last == "" { fields.removeLast() }
        return ([Self.quoted(label) + "=" + Self.number(value) + unit.rawValue] + fields).joined(separator: ";")
    }

    /// Labels come partly from nodes (their names): at most this many characters.
    static let maxLabel = 64

    /// A label as the format allows it: no `=` (it ends the label, so it becomes `_`), no
    /// control characters, at most `maxLabel` characters; a `'` doubled, and the whole
    /// quoted when it holds a space or a quote.
    static func quoted(_ label: String) -> String {
        var scalars = String.UnicodeScalarView()
        for s in label.unicodeScalars.prefix(maxLabel) {
            if s.value < 0x20 || (0x7F...0x9F).contains(s.value) || s == "=" || s == "|" {
                scalars.append("_")
            } else {
                scalars.append(s)
            }
        }
        let text = scalars.isEmpty ? "_" : String(scalars)
        guard text.contains(where: { $0 == " " || $0 == "'" }) else { return text }
        return "'" + text.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "''") + "'"
    }

    /// An integer as one ("12"), else at most three decimals ("0.012"), never exponent
    /// notation, which some perfdata readers refuse.
    public static func number(_ n: Double) -> String {
        // "U" is the API's "value undetermined": for what is not a number, or too large to
        // write without an exponent here.
        guard n.isFinite, abs(n) < 9e18 else { return "U" }
        let thousandths = (n * 1000).rounded()
        guard abs(thousandths) < 9e15 else { return String(Int64(n.rounded())) }
        let whole = Int64(thousandths) / 1000
        let fraction = abs(Int64(thousandths) % 1000)
        let sign = thousandths < 0 && whole == 0 ? "-" : ""
        guard fraction != 0 else { return sign + String(whole) }
        var digits = String(fraction)
        digits = String(repeating: "0", count: 3 - digits.count) + digits
        while digits.hasSuffix("0") { digits.removeLast() }
        return sign + String(whole) + "." + digits
    }
}
