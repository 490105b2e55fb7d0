import Foundation

/// `bramble check mailbox EMAIL`: whether the Messaging Agent on the primary watches the
/// user's INBOX and its last check of it worked recently, from the user's record in the
/// admin API (the watch the Agent records: the last check that reached the mailbox, the
/// last error). The Agent checks every watched mailbox each sweep (`mail-sweep-ms`, 30 s),
/// so a last good check older than a few sweeps means it is not being watched. Pure.
public enum MailboxCheck {
    /// The Agent's record of the mailbox (`bramble user show`).
    public struct Watch: Sendable, Equatable {
        /// The last check that reached the mailbox.
        public var checkedAt: Date?
        public var lastMailAt: Date?
        /// Why the last check failed (nil: it worked), and when.
        public var lastError: String?
        public var errorAt: Date?
        public init(checkedAt: Date?, lastMailAt: Date?, lastError: String?, errorAt: Date?) {
            (self.checkedAt, self.lastMailAt, self.lastError, self.errorAt) = (checkedAt, lastMailAt, lastError, errorAt)
        }
    }

    public enum Observation: Sendable, Equatable {
        case noSuchUser
        /// The user, with how many devices, and the watch (nil: never checked).
        case user(devices: Int, watch: Watch?)
        /// No node could say (none answered, the token was refused, …).
        case unavailable(String)
    }

    public struct Limits: Sendable, Equatable {
        /// WARNING (CRITICAL) when the last good check is older than this many seconds.
        public var ageWarning: Double
        public var ageCritical: Double
        public init(ageWarning: Double = 120, ageCritical: Double = 300) { (self.ageWarning, self.ageCritical) = (ageWarning, ageCritical) }
    }

    /// `now` is the answering node's clock (its `Date` header), so the monitor's own
    /// clock does not matter.
    public static func verdict(email: String, _ observation: Observation, now: Date, limits: Limits = .init()) -> NagiosResult {
        switch observation {
        case .unavailable(let reason):
            return .unknown("cannot read \(email) from the admin API: \(reason)")
        case .noSuchUser:
            return NagiosResult(state: .critical, summary: "no user \(email)")
        case .user(let devices, nil):
            return devices == 0
                ? NagiosResult(state: .warning, summary: "\(email) not watched: the user has no device (the Messaging Agent watches the mailboxes of users with an active device)")
                : NagiosResult(state: .warning, summary: "\(email) not checked yet (a new user's mailbox is checked within seconds; is a mail server configured?)")
        case .user(let devices, let watch?):
            let age = watch.checkedAt.map { max(0, now.timeIntervalSince($0)) }
            var statements: [(NagiosState, String)] = []
            var details: [String] = []
            if let error = watch.lastError {
                statements.append((.critical, "\(email) failing: \(error)"))
                if let at = watch.errorAt { details.append("last failed check \(ago(now.timeIntervalSince(at)))") }
            }
            if devices == 0 { statements.append((.warning, "\(email) no longer watched: the user has no device")) }
            if let age {
                let state: NagiosState = age > limits.ageCritical ? .critical : age > limits.ageWarning ? .warning : .ok
                let checked = "last good check \(ago(age))"
                if statements.isEmpty { statements.append((state, "\(email) watched: \(checked)")) } else { statements.append((state, checked)) }
            } else {
                statements.append((.warning, "never checked successfully"))
            }
            if let mail = watch.lastMailAt { details.append("last mail \(ago(now.timeIntervalSince(mail)))") }
            let perfdata = age.map {
                [PerfDatum("last_check_age", $0.rounded(), unit: .seconds, warning: .above(limits.ageWarning), critical: .above(limits.ageCritical), min: 0)]
            } ?? []
            return NagiosResult(state: NagiosState.worst(statements.map(\.0)), summary: statements.map(\.1).joined(separator: "; "),
                                details: details, perfdata: perfdata)
        }
    }

    /// "12 s ago", "4 min ago", "3 h ago", "2 d ago".
    static func ago(_ seconds: Double) -> String {
        let s = Int(max(0, seconds).rounded())
        return switch s {
        case ..<120: "\(s) s ago"
        case ..<7_200: "\(s / 60) min ago"
        case ..<172_800: "\(s / 3_600) h ago"
        default: "\(s / 86_400) d ago"
        }
    }
}
