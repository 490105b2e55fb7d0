import Foundation

/// The table `chaos/drill all` and `short` end with: one row per drill verdict line, with
/// issue 5's outage goal where it sets one, marked `met` or `MISSED`. The goal is a
/// measurement to read, not part of `passed`.
public struct DrillTable: Equatable, Sendable {
    /// What the table shows of a verdict line (chaos/drill's last line per drill).
    public struct Row: Decodable, Equatable, Sendable {
        public var drill: String
        public var accepted: Int?
        public var lost: Int?
        public var duplicates: Int?
        public var stale_deliveries: Int?
        public var max_serving_primaries: Int?
        public var shared_epochs: Int?
        public var phantoms: Int?
        public var outage_ms: Int?
        public var mail_accepted: Int?
        public var mail_lost: Int?
        public var mail_duplicates: Int?
        public var mail_outage_ms: Int?
        public var sent_acked: Int?
        public var sent_delivered: Int?
        public var sent_lost: Int?
        public var sent_duplicates: Int?
        public var im_sent: Int?
        public var im_lost: Int?
        public var im_duplicates: Int?
        /// What monitoring showed (a cluster with Prometheus): each alert fired, and the
        /// drill's expected alerts that did not fire within 15 s.
        public var alerts: [Alert]?
        public var alerts_missed: [String]?
        public var passed: Bool

        public struct Alert: Codable, Equatable, Sendable {
            public var alert: String
            public var fired_after_ms: Int64
            public var cleared_after_heal_ms: Int64?
            public init(alert: String, fired_after_ms: Int64, cleared_after_heal_ms: Int64?) {
                (self.alert, self.fired_after_ms, self.cleared_after_heal_ms) = (alert, fired_after_ms, cleared_after_heal_ms)
            }
        }

        public init(drill: String, accepted: Int? = nil, lost: Int? = nil, duplicates: Int? = nil, stale_deliveries: Int? = nil,
                    max_serving_primaries: Int? = nil, shared_epochs: Int? = nil, phantoms: Int? = nil,
                    outage_ms: Int? = nil, mail_accepted: Int? = nil, mail_lost: Int? = nil, mail_duplicates: Int? = nil,
                    mail_outage_ms: Int? = nil, sent_acked: Int? = nil, sent_delivered: Int? = nil, sent_lost: Int? = nil,
                    sent_duplicates: Int? = nil, im_sent: Int? = nil, im_lost: Int? = nil, im_duplicates: Int? = nil,
                    alerts: [Alert]? = nil, alerts_missed: [String]? = nil, passed: Bool) {
            (self.alerts, self.alerts_missed) = (alerts, alerts_missed)
            self.drill = drill
            self.accepted = accepted
            self.lost = lost
            self.duplicates = duplicates
            self.stale_deliveries = stale_deliveries
            self.max_serving_primaries = max_serving_primaries
            self.shared_epochs = shared_epochs
            self.phantoms = phantoms
            self.outage_ms = outage_ms
            (self.mail_accepted, self.mail_lost, self.mail_duplicates, self.mail_outage_ms) = (mail_accepted, mail_lost, mail_duplicates, mail_outage_ms)
            (self.sent_acked, self.sent_delivered, self.sent_lost, self.sent_duplicates) = (sent_acked, sent_delivered, sent_lost, sent_duplicates)
            (self.im_sent, self.im_lost, self.im_duplicates) = (im_sent, im_lost, im_duplicates)
            self.passed = passed
        }
    }

    public var rows: [Row]
    /// Lines that were not a verdict (a drill that stopped before printing one).
    public var skippedLines: Int

    /// The verdict lines of a results file, one JSON object per line; blank lines and
    /// lines that are not a verdict are skipped (and counted).
    public init(jsonLines data: Data) {
        let decoder = JSONDecoder()
        var rows: [Row] = []
        var skipped = 0
        for raw in data.split(separator: UInt8(ascii: "\n")) where !raw.allSatisfy({ $0 == UInt8(ascii: " ") }) {
            if let row = try? decoder.decode(Row.self, from: Data(raw)) { rows.append(row) } else { skipped += 1 }
        }
        self.rows = rows
        self.skippedLines = skipped
    }

    public init(rows: [Row]) {
        self.rows = rows
        self.skippedLines = 0
    }

    /// Whether a row met its drill's goal: nil when the drill has none (or is unknown, or
    /// measured no outage).
    public static func goalMet(_ row: Row) -> Bool? {
        guard let goal = Drill(rawValue: row.drill)?.outageGoalMs, let outage = row.outage_ms else { return nil }
        return outage <= goal
    }

    /// The table, a header and one line per row, each ending in a newline; the mail
    /// stream's columns (mails accepted, lost, duplicates, outage) when a row has them, and
    /// the devices' mail's (sends acknowledged, delivered, lost, duplicates) likewise, and
    /// the instant messages' (sent, lost, duplicates); after `passed`, when the drills ran
    /// with monitoring, the alerts that fired (`Name 3.1s→12.0s`: seconds after the fault
    /// it fired → seconds after the heal it cleared, `…` still firing) and those expected
    /// that did not fire within 15 s (`missed: Name`).
    public var text: String {
        let hasMail = rows.contains { $0.mail_accepted != nil }
        let hasSent = rows.contains { $0.sent_acked != nil }
        let hasIM = rows.contains { $0.im_sent != nil }
        let hasAlerts = rows.contains { $0.alerts != nil }
        var out = Self.pad("drill", 26, left: true) + Self.pad("accepted", 9) + Self.pad("lost", 6) + Self.pad("dup", 5)
            + Self.pad("stale", 7) + Self.pad("prim", 6) + Self.pad("shared", 8) + Self.pad("phantoms", 9)
            + Self.pad("outage_ms", 11) + Self.pad("goal", 8)
            + (hasMail ? Self.pad("mails", 7) + Self.pad("m_lost", 8) + Self.pad("m_dup", 7) + Self.pad("m_outage", 10) : "")
            + (hasSent ? Self.pad("sent", 6) + Self.pad("s_deliv", 9) + Self.pad("s_lost", 8) + Self.pad("s_dup", 7) : "")
            + (hasIM ? Self.pad("im", 6) + Self.pad("i_lost", 8) + Self.pad("i_dup", 7) : "") + "  passed"
            + (hasAlerts ? "  alerts (fired s after the fault→cleared s after the heal)" : "") + "\n"
        for row in rows {
            let goal = Drill(rawValue: row.drill)?.outageGoalMs
            let mark = Self.goalMet(row).map { $0 ? " met" : " MISSED" } ?? ""
            out += Self.pad(row.drill, 26, left: true) + Self.pad(row.accepted, 9) + Self.pad(row.lost, 6)
                + Self.pad(row.duplicates, 5) + Self.pad(row.stale_deliveries, 7) + Self.pad(row.max_serving_primaries, 6)
                + Self.pad(row.shared_epochs, 8) + Self.pad(row.phantoms, 9) + Self.pad(row.outage_ms, 11)
                + Self.pad(goal.map { "≤\($0)" } ?? "-", 8)
                + (hasMail ? Self.pad(row.mail_accepted, 7) + Self.pad(row.mail_lost, 8) + Self.pad(row.mail_duplicates, 7)
                    + Self.pad(row.mail_outage_ms, 10) : "")
                + (hasSent ? Self.pad(row.sent_acked, 6) + Self.pad(row.sent_delivered, 9) + Self.pad(row.sent_lost, 8)
                    + Self.pad(row.sent_duplicates, 7) : "")
                + (hasIM ? Self.pad(row.im_sent, 6) + Self.pad(row.im_lost, 8) + Self.pad(row.im_duplicates, 7) : "")
                + "  " + (row.passed ? "True" : "False") + mark
                + (hasAlerts ? "  " + Self.alertsColumn(row) : "") + "\n"
        }
        return out
    }

    static func alertsColumn(_ row: Row) -> String {
        guard let alerts = row.alerts else { return "-" }
        let seconds = { (ms: Int64) in String(format: "%.1f", Double(ms) / 1000) }
        var parts = alerts.map { "\($0.alert) \(seconds($0.fired_after_ms))→\($0.cleared_after_heal_ms.map(seconds) ?? "…")" }
        if parts.isEmpty { parts = ["none"] }
        if let missed = row.alerts_missed, !missed.isEmpty { parts.append("missed: " + missed.joined(separator: ", ")) }
        return parts.joined(separator: ", ")
    }

    private static func pad(_ value: Int?, _ width: Int) -> String { pad(value.map(String.init) ?? "-", width) }

    private static func pad(_ text: String, _ width: Int, left: Bool = false) -> String {
        let fill = String(repeating: " ", count: max(0, width - text.count))
        return left ? text + fill : fill + text
    }
}
