/// A Nagios/Icinga plugin's four states: the exit code the monitor reads, and the word
/// the status line starts with (Nagios Plugin API; monitoring-plugins' guidelines).
public enum NagiosState: Int32, Sendable, CaseIterable, Comparable {
    case ok = 0
    case warning = 1
    case critical = 2
    case unknown = 3

    public var word: String {
        switch self {
        case .ok: "OK"
        case .warning: "WARNING"
        case .critical: "CRITICAL"
        case .unknown: "UNKNOWN"
        }
    }

    /// How bad, for `worst`: CRITICAL, then WARNING, then UNKNOWN, then OK, as
    /// monitoring-plugins' `max_state` ranks them (a known problem outranks not knowing).
    var severity: Int {
        switch self {
        case .ok: 0
        case .unknown: 1
        case .warning: 2
        case .critical: 3
        }
    }

    public static func < (a: NagiosState, b: NagiosState) -> Bool { a.severity < b.severity }

    public static func worst(_ states: some Sequence<NagiosState>) -> NagiosState { states.max() ?? .ok }
}

/// What a check found: its state, one line for the status, more lines for the long
/// output, and performance data. Pure: `rendered` is the whole of what the plugin prints.
public struct NagiosResult: Sendable, Equatable {
    public var state: NagiosState
    /// The status line's text after "SERVICE STATE - ".
    public var summary: String
    /// Long output, one line each (Nagios 3 and Icinga show them under the status line).
    public var details: [String]
    public var perfdata: [PerfDatum]

    public init(state: NagiosState, summary: String, details: [String] = [], perfdata: [PerfDatum] = []) {
        (self.state, self.summary, self.details, self.perfdata) = (state, summary, details, perfdata)
    }

    /// A check that could not find out: bad arguments, a time-out, an answer it cannot read.
    public static func unknown(_ why: String, details: [String] = []) -> NagiosResult {
        NagiosResult(state: .unknown, summary: why, details: details)
    }

    /// At most this many characters of the summary, of each detail line, and this many
    /// detail lines: Nagios keeps 8 KB of a plugin's output, and an answer from a node
    /// (a detail, an error text) must not make the line unreadable.
    public static let maxSummary = 1_000
    public static let maxDetail = 300
    public static let maxDetails = 40

    /// `SERVICE STATE - summary | perfdata`, then the detail lines. Text from outside
    /// (node names, details, errors) cannot break the format: a `|` would start the
    /// performance data and a line end a new line, so both are replaced.
    public func rendered(service: String) -> String {
        var first = "\(Self.clean(service, max: 100)) \(state.word) - \(Self.clean(summary, max: Self.maxSummary))"
        if !perfdata.isEmpty { first += " | " + perfdata.map(\.rendered).joined(separator: " ") }
        var lines = [first]
        lines += details.prefix(Self.maxDetails).map { Self.clean($0, max: Self.maxDetail) }
        if details.count > Self.maxDetails { lines.append("… and \(details.count - Self.maxDetails) more") }
        return lines.joined(separator: "\n")
    }

    /// One line of printable text: control characters become spaces, `|` becomes `/`,
    /// and it is cut to `max` characters.
    static func clean(_ text: String, max: Int) -> String {
        var scalars = String.UnicodeScalarView()
        for s in text.unicodeScalars {
            if s.value < 0x20 || (0x7F...0x9F).contains(s.value) || s == "\u{2028}" || s == "\u{2029}" {
                scalars.append(" ")
            } else if s == "|" {
                scalars.append("/")
            } else {
                scalars.append(s)
            }
        }
        let line = String(scalars)
        return line.count > max ? String(line.prefix(max - 1)) + "…" : line
    }
}
