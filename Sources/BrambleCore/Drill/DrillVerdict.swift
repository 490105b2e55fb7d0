import Foundation

/// The failover drills (chaos/drill) and what each one's fault must leave behind.
public enum Drill: String, CaseIterable, Sendable {
    case killPrimary = "kill-primary"
    case pausePrimary = "pause-primary"
    case killStandby = "kill-standby"
    case switchover
    case restartRelay = "restart-relay"
    case killDBPrimary = "kill-db-primary"
    case isolatePrimary = "isolate-primary"
    case partitionPrimaryRelay = "partition-primary-relay"
    case partitionPrimaryDB = "partition-primary-db"
    case slowLink = "slow-link"
    case flap
    /// Dovecot and Postfix restarted together.
    case restartMail = "restart-mail"
    /// The primary cut off from the mail host (its route blackholed), then healed.
    case partitionPrimaryMail = "partition-primary-mail"

    /// The fewest new relay registrations the fault causes: a drill that injected nothing
    /// must not pass. A failover registers the new primary; a relay restart makes the
    /// primary register again; flap's three switchovers register three times.
    public var minRegistrations: Int {
        switch self {
        case .killPrimary, .pausePrimary, .switchover, .isolatePrimary, .partitionPrimaryRelay, .restartRelay: 1
        case .flap: 3
        case .killStandby, .killDBPrimary, .partitionPrimaryDB, .slowLink, .restartMail, .partitionPrimaryMail: 0
        }
    }

    /// Whether the fault moves the database leader (Patroni promotes the other member).
    public var movesDatabaseLeader: Bool {
        switch self {
        case .killDBPrimary: true
        case .killPrimary, .pausePrimary, .killStandby, .switchover, .restartRelay, .isolatePrimary,
             .partitionPrimaryRelay, .partitionPrimaryDB, .slowLink, .flap, .restartMail, .partitionPrimaryMail: false
        }
    }

    /// Whether the fault is to the mail path, whose trace is the mail stream's (the mail
    /// host's daemons restarted; mail held back while the primary was cut off from it).
    public var isMailFault: Bool { self == .restartMail || self == .partitionPrimaryMail }

    /// Issue 5's goal for the device-visible outage, where it sets one. A measurement to
    /// read beside the verdict, never part of `passed`: a loaded machine must not fail a drill.
    public var outageGoalMs: Int? {
        switch self {
        case .killPrimary, .pausePrimary, .partitionPrimaryRelay, .isolatePrimary: 1500
        case .switchover: 300
        case .killStandby: 100
        case .restartRelay, .killDBPrimary, .partitionPrimaryDB, .slowLink, .flap, .restartMail, .partitionPrimaryMail: nil
        }
    }
}

/// One drill's verdict, judged from evidence outside the nodes: the stream's audit
/// (`bramble-bench stream`: the push API's answers, the devices' logs, the relay's audit
/// log, the pair's event log) and the database leader before and after the fault
/// (Patroni). It passes only when the stream passed (nothing lost, shown twice or stale,
/// one primary, every epoch promoted by one node), something was accepted, no item was a
/// phantom (shown although its push was answered "not accepted"), every mail the devices
/// sent that was acknowledged to them is in its recipient's INBOX and its sender's Sent
/// once, and the fault left its trace.
public struct DrillVerdict: Equatable, Sendable {
    /// The stream's last line (`bramble-bench stream`); every field optional, as a stream
    /// that failed early prints fewer.
    public struct Stream: Decodable, Equatable, Sendable {
        public var accepted: Int?
        public var shown: Int?
        public var lost: Int?
        public var duplicates: Int?
        public var stale_deliveries: Int?
        public var max_serving_primaries: Int?
        public var outage_ms: Int?
        public var not_accepted: Int?
        public var registrations: Int?
        public var shared_epochs: Int?
        public var phantoms: Int?
        /// The mail stream beside the pushes (when the cluster has a mail host): mails
        /// Postfix accepted (250), shown, never shown, shown more than once, and the
        /// longest time no mail was shown.
        public var mail_accepted: Int?
        public var mail_shown: Int?
        public var mail_lost: Int?
        public var mail_duplicates: Int?
        public var mail_outage_ms: Int?
        /// The devices' own mail (when the cluster has a mail host): sends acknowledged to
        /// the devices (their logs' `request` lines), found by Message-ID in the recipient's
        /// INBOX and the sender's Sent, missing from either, and extra copies in either.
        public var sent_acked: Int?
        public var sent_delivered: Int?
        public var sent_lost: Int?
        public var sent_duplicates: Int?
        /// Instant messages (when the cluster has an IM host): the messages the IM server
        /// accepted from the drill's XMPP client for the devices' users, shown (by message
        /// id, in the devices' logs), never shown, and shown more than once.
        public var im_sent: Int?
        public var im_shown: Int?
        public var im_lost: Int?
        public var im_duplicates: Int?
        public var passed: Bool?
        public var error: String?

        public init(accepted: Int? = nil, shown: Int? = nil, lost: Int? = nil, duplicates: Int? = nil,
                    stale_deliveries: Int? = nil, max_serving_primaries: Int? = nil, outage_ms: Int? = nil,
                    not_accepted: Int? = nil, registrations: Int? = nil, shared_epochs: Int? = nil,
                    phantoms: Int? = nil, passed: Bool? = nil, error: String? = nil) {
            self.accepted = accepted
            self.shown = shown
            self.lost = lost
            self.duplicates = duplicates
            self.stale_deliveries = stale_deliveries
            self.max_serving_primaries = max_serving_primaries
            self.outage_ms = outage_ms
            self.not_accepted = not_accepted
            self.registrations = registrations
            self.shared_epochs = shared_epochs
            self.phantoms = phantoms
            self.passed = passed
            self.error = error
        }

        /// The last non-empty line of a stream's output, which is its JSON verdict; a
        /// stream that printed none gives a `Stream` that says so in `error`.
        public static func parse(output: Data) -> Stream {
            let lines = output.split(separator: UInt8(ascii: "\n")).filter { !$0.allSatisfy { $0 == UInt8(ascii: " ") } }
            guard let last = lines.last else {
                return Stream(accepted: 0, shown: 0, lost: 0, duplicates: 0, error: "no verdict from the stream: it printed nothing")
            }
            do {
                return try JSONDecoder().decode(Stream.self, from: Data(last))
            } catch {
                return Stream(accepted: 0, shown: 0, lost: 0, duplicates: 0,
                              error: "no verdict from the stream: its last line is not a JSON verdict (\(String(decoding: last.prefix(120), as: UTF8.self)))")
            }
        }
    }

    public var drill: Drill
    public var stream: Stream
    /// The database leader (Patroni member name) before the fault and after the stream.
    public var databaseLeaderBefore: String
    public var databaseLeaderAfter: String
    /// The mail host's Dovecot master PID before the fault and after the stream.
    public var mailPIDBefore: String
    public var mailPIDAfter: String
    /// What monitoring showed (nil: the cluster has no Prometheus); a measurement, not
    /// part of `passed`.
    public var alerts: DrillAlerts?

    public init(drill: Drill, stream: Stream, databaseLeaderBefore: String, databaseLeaderAfter: String,
                mailPIDBefore: String = "", mailPIDAfter: String = "", alerts: DrillAlerts? = nil) {
        self.alerts = alerts
        self.drill = drill
        self.stream = stream
        self.databaseLeaderBefore = databaseLeaderBefore
        self.databaseLeaderAfter = databaseLeaderAfter
        self.mailPIDBefore = mailPIDBefore
        self.mailPIDAfter = mailPIDAfter
    }

    /// A partition of the primary from the mail host holds mail back at least this long.
    public static let mailPartitionMinOutageMs = 1_000

    /// The fault happened: the registrations it causes, the leader moving if it must; for
    /// restart-mail new mail daemons, for partition-primary-mail mail held back.
    public var faultLeftATrace: Bool {
        guard (stream.registrations ?? 0) >= drill.minRegistrations,
              !drill.movesDatabaseLeader || databaseLeaderAfter != databaseLeaderBefore else { return false }
        switch drill {
        case .restartMail: return !mailPIDBefore.isEmpty && !mailPIDAfter.isEmpty && mailPIDBefore != mailPIDAfter
        case .partitionPrimaryMail: return (stream.mail_outage_ms ?? 0) >= Self.mailPartitionMinOutageMs
        default: return true
        }
    }

    public var passed: Bool {
        stream.passed == true && (stream.accepted ?? 0) > 0 && (stream.phantoms ?? 0) == 0 && faultLeftATrace
            && (stream.mail_lost ?? 0) == 0 && (stream.mail_duplicates ?? 0) == 0
            && (!drill.isMailFault || (stream.mail_accepted ?? 0) > 0)
            && (stream.sent_lost ?? 0) == 0 && (stream.sent_duplicates ?? 0) == 0 && devicesSentMail
            && (stream.im_lost ?? 0) == 0 && (stream.im_duplicates ?? 0) == 0 && imSent
    }

    /// The IM stream ran and the IM server accepted something: a stream that counted its
    /// messages (`im_sent` present) proves nothing with none.
    public var imSent: Bool { stream.im_sent.map { $0 > 0 } ?? true }

    /// The devices' mail stream ran and something was acknowledged: a stream that counted
    /// its sends (`sent_acked` present) proves nothing with none. A stream without the
    /// fields (no mail host, or from before them) is judged as before.
    public var devicesSentMail: Bool { stream.sent_acked.map { $0 > 0 } ?? true }

    /// Why it did not pass, when the evidence says more than the counts: the stream's own
    /// error, a fault without a trace, phantoms. Nil when there is nothing to add.
    public var error: String? {
        var reasons: [String] = []
        if let error = stream.error { reasons.append(error) }
        if !faultLeftATrace {
            reasons.append("the fault left no trace (registrations \(stream.registrations.map(String.init) ?? "unknown"), "
                + "database leader \(databaseLeaderBefore) -> \(databaseLeaderAfter)"
                + (drill.isMailFault ? ", mail daemon \(mailPIDBefore) -> \(mailPIDAfter), mail outage \(stream.mail_outage_ms.map(String.init) ?? "unknown") ms" : "")
                + ")")
        }
        if drill.isMailFault, (stream.mail_accepted ?? 0) == 0 {
            reasons.append("no mail was accepted: the drill needs the cluster's mail host")
        }
        if !devicesSentMail {
            reasons.append("no device's send was acknowledged: the devices' mail proves nothing")
        }
        if !imSent {
            reasons.append("the IM server accepted no message: the instant messages prove nothing")
        }
        if let phantoms = stream.phantoms, phantoms > 0 {
            reasons.append("\(phantoms) phantom\(phantoms == 1 ? "" : "s"): shown although the push was answered not accepted")
        }
        return reasons.isEmpty ? nil : reasons.joined(separator: "; ")
    }
}

extension DrillVerdict {
    /// The verdict line chaos/drill prints, its fields in chaos/README's order: every field
    /// named there, `null` where the stream did not say; `phantoms` only when the stream
    /// counted them, the mail fields only when the stream carried mail, the alert fields
    /// only when the cluster has monitoring, and `error` only when there is one.
    public var jsonLine: String {
        var fields: [(String, any Encodable)] = [
            ("drill", drill.rawValue), ("accepted", stream.accepted), ("shown", stream.shown), ("lost", stream.lost),
            ("duplicates", stream.duplicates), ("stale_deliveries", stream.stale_deliveries),
            ("max_serving_primaries", stream.max_serving_primaries), ("outage_ms", stream.outage_ms),
            ("not_accepted", stream.not_accepted), ("registrations", stream.registrations), ("shared_epochs", stream.shared_epochs),
        ]
        if let phantoms = stream.phantoms { fields.append(("phantoms", phantoms)) }
        if stream.mail_accepted != nil {
            fields += [("mail_accepted", stream.mail_accepted), ("mail_shown", stream.mail_shown), ("mail_lost", stream.mail_lost),
                       ("mail_duplicates", stream.mail_duplicates), ("mail_outage_ms", stream.mail_outage_ms)]
        }
        if stream.sent_acked != nil || stream.sent_lost != nil {
            fields += [("sent_acked", stream.sent_acked), ("sent_delivered", stream.sent_delivered), ("sent_lost", stream.sent_lost),
                       ("sent_duplicates", stream.sent_duplicates)]
        }
        if stream.im_sent != nil || stream.im_lost != nil {
            fields += [("im_sent", stream.im_sent), ("im_shown", stream.im_shown), ("im_lost", stream.im_lost), ("im_duplicates", stream.im_duplicates)]
        }
        if let alerts {
            fields += [("alerts", alerts.entries), ("alerts_expected", drill.expectedAlerts), ("alerts_missed", alerts.missed),
                       ("alerts_uncleared", alerts.uncleared), ("alerts_already_firing", alerts.alreadyFiring)]
        }
        fields.append(("passed", passed))
        if let error { fields.append(("error", error)) }
        // Each value through JSONEncoder (strings escaped, nil as null); only the order is ours.
        let encoder = JSONEncoder()
        let members = fields.map { key, value in
            "\"\(key)\":" + String(decoding: (try? encoder.encode(value)) ?? Data("null".utf8), as: UTF8.self)
        }
        return "{" + members.joined(separator: ",") + "}"
    }
}
