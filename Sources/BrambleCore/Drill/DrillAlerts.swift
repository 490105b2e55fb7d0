import Foundation

/// What a drill looked like in monitoring: the alerts Prometheus had firing, polled about
/// once a second through the drill (`GET /api/v1/alerts`), read against the moments of
/// the fault and the heal. For each alert that fired after the fault: how soon, and how
/// soon after the heal it cleared. A measurement beside the verdict (issue 17's goals:
/// the drill's expected alerts within 15 s of the fault, every alert cleared within 60 s
/// of the heal), never part of `passed`.
public struct DrillAlerts: Equatable, Sendable {
    /// One alert name's life in the drill.
    public struct Fired: Equatable, Sendable {
        public var alert: String
        public var severity: String
        /// From the fault to the first poll that saw it firing.
        public var firedAfterMs: Int64
        /// From the heal to the first poll after which it stayed clear (negative: it cleared
        /// before the heal); nil while it was still firing at the last poll.
        public var clearedAfterHealMs: Int64?
        public init(alert: String, severity: String, firedAfterMs: Int64, clearedAfterHealMs: Int64?) {
            (self.alert, self.severity, self.firedAfterMs, self.clearedAfterHealMs) = (alert, severity, firedAfterMs, clearedAfterHealMs)
        }
    }

    /// One poll: when (Unix ms) and the alert names firing then, with their severity.
    public struct Poll: Equatable, Sendable {
        public var atMs: Int64
        public var firing: [String: String]
        public init(atMs: Int64, firing: [String: String]) {
            self.atMs = atMs
            self.firing = firing
        }
    }

    public static let fireGoalMs: Int64 = 15_000
    public static let clearGoalMs: Int64 = 60_000

    public var fired: [Fired]
    /// Alerts already firing at the last poll before the fault (left from before the
    /// drill; not measured).
    public var alreadyFiring: [String]
    /// The drill's expected alerts that did not fire within `fireGoalMs` of the fault.
    public var missed: [String]
    /// Alerts still firing `clearGoalMs` after the heal (or at the last poll).
    public var uncleared: [String]
    /// Polls read (0: no monitoring evidence at all).
    public var polls: Int

    public init(drill: Drill, polls: [Poll], faultAtMs: Int64, healAtMs: Int64) {
        let polls = polls.sorted { $0.atMs < $1.atMs }
        let before = polls.last { $0.atMs < faultAtMs }
        let old = Set(before.map { Array($0.firing.keys) } ?? [])
        let after = polls.filter { $0.atMs >= faultAtMs }
        var fired: [Fired] = []
        for name in Set(after.flatMap(\.firing.keys)).subtracting(old) {
            guard let first = after.first(where: { $0.firing[name] != nil }) else { continue }
            // Cleared at the first poll from which on it never fired again.
            var clearedAt: Int64?
            if let lastFiring = after.lastIndex(where: { $0.firing[name] != nil }), lastFiring + 1 < after.count {
                clearedAt = after[lastFiring + 1].atMs
            }
            fired.append(Fired(alert: name, severity: first.firing[name] ?? "", firedAfterMs: first.atMs - faultAtMs,
                               clearedAfterHealMs: clearedAt.map { $0 - healAtMs }))
        }
        self.fired = fired.sorted { ($0.firedAfterMs, $0.alert) < ($1.firedAfterMs, $1.alert) }
        self.alreadyFiring = old.sorted()
        self.missed = drill.expectedAlerts.filter { name in
            !fired.contains { $0.alert == name && $0.firedAfterMs <= Self.fireGoalMs } && !old.contains(name)
        }
        self.uncleared = self.fired.filter { ($0.clearedAfterHealMs ?? .max) > Self.clearGoalMs }.map(\.alert)
        self.polls = polls.count
    }

    /// Parses the poll log chaos/drill writes: one line per poll, its Unix time in ms, a
    /// space, then Prometheus's `/api/v1/alerts` answer. Only `firing` alerts count
    /// (`pending` ones have not lasted their `for` yet); an unreadable line is skipped.
    public static func parse(log: Data) -> [Poll] {
        struct Answer: Decodable {
            struct Payload: Decodable { var alerts: [Alert] }
            struct Alert: Decodable { var labels: [String: String]; var state: String }
            var data: Payload
        }
        let decoder = JSONDecoder()
        return log.split(separator: UInt8(ascii: "\n")).compactMap { line in
            guard let space = line.firstIndex(of: UInt8(ascii: " ")),
                  let atMs = Int64(String(decoding: line[line.startIndex..<space], as: UTF8.self)),
                  let answer = try? decoder.decode(Answer.self, from: Data(line[line.index(after: space)...])) else { return nil }
            var firing: [String: String] = [:]
            for alert in answer.data.alerts where alert.state == "firing" {
                guard let name = alert.labels["alertname"] else { continue }
                // One name firing for several instances counts once, at its gravest.
                let severity = alert.labels["severity"] ?? ""
                if firing[name] != "critical" { firing[name] = severity }
            }
            return Poll(atMs: atMs, firing: firing)
        }
    }

    /// `Name 3.1s→12.0s` per alert (fired after the fault → cleared after the heal; `→…`
    /// while still firing), for the drill table.
    public var summary: String {
        fired.isEmpty ? "none" : fired.map { f in
            "\(f.alert) \(Self.seconds(f.firedAfterMs))→" + (f.clearedAfterHealMs.map(Self.seconds) ?? "…")
        }.joined(separator: ", ")
    }

    static func seconds(_ ms: Int64) -> String { String(format: "%.1fs", Double(ms) / 1000) }
}

extension Drill {
    /// The alerts (deploy/monitoring/bramble.rules.yml) an operator should see for the
    /// fault, within 15 s: what the fault looks like in monitoring. A fault the pair
    /// rides out without anything for an operator to do (a slow link, the mail host
    /// restarted in a second, the primary cut off from it for 5 s, which
    /// BrambleMailboxesNotWatched lets pass for a minute) expects none.
    public var expectedAlerts: [String] {
        switch self {
        case .killPrimary: ["BrambleFailover", "BrambleRestarted"]
        case .pausePrimary, .switchover, .isolatePrimary, .partitionPrimaryRelay, .partitionPrimaryDB, .flap: ["BrambleFailover"]
        case .killStandby, .restartRelay: ["BrambleRestarted"]
        case .killDBPrimary: ["BrambleDatabaseFailover"]
        case .slowLink, .restartMail, .partitionPrimaryMail: []
        }
    }
}

extension DrillAlerts {
    /// The verdict line's `alerts` entries.
    struct Entry: Encodable {
        var alert: String
        var severity: String
        var fired_after_ms: Int64
        var cleared_after_heal_ms: Int64?
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(alert, forKey: .alert)
            try c.encode(severity, forKey: .severity)
            try c.encode(fired_after_ms, forKey: .fired_after_ms)
            try c.encode(cleared_after_heal_ms, forKey: .cleared_after_heal_ms)  // null while firing
        }
        enum CodingKeys: String, CodingKey { case alert, severity, fired_after_ms, cleared_after_heal_ms }
    }

    var entries: [Entry] {
        fired.map { Entry(alert: $0.alert, severity: $0.severity, fired_after_ms: $0.firedAfterMs, cleared_after_heal_ms: $0.clearedAfterHealMs) }
    }
}
