import ArgumentParser
import BrambleCore
import Foundation

/// The failover drills' judgement (chaos/drill keeps only the orchestration): one
/// drill's verdict, the table after a set, and the wait for the relay's lockout window.
/// The logic lives in BrambleCore (`DrillVerdict`, `DrillTable`, `RelayLockoutWindow`).
struct DrillVerdictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drill-verdict",
        abstract: "Judge one failover drill from its stream's output; print the verdict as one JSON line.",
        discussion: """
            Reads the output of `bramble-bench stream` (its last line is the stream's JSON \
            verdict) and the database leader before the fault and after the stream, and prints \
            drill, accepted, shown, lost, duplicates, stale_deliveries, max_serving_primaries, \
            outage_ms, not_accepted, registrations, shared_epochs, phantoms (when the stream \
            counted them), mail_accepted, mail_shown, mail_lost, mail_duplicates and \
            mail_outage_ms (when the stream carried mail), sent_acked, sent_delivered, sent_lost \
            and sent_duplicates (the devices' own mail, when the stream had them send it), \
            im_sent, im_shown, im_lost and im_duplicates (instant messages, when the cluster \
            has an IM host), alerts ([{alert, severity, fired_after_ms, cleared_after_heal_ms}] \
            from --alerts-log), alerts_expected, alerts_missed (expected, not fired within 15 s \
            of the fault), alerts_uncleared (firing 60 s after the heal or at the last poll) and \
            alerts_already_firing (when the cluster has monitoring; a measurement, not part of \
            passed), passed, and error when there is one. \
            It passes only when the stream passed, something was accepted, nothing shown was a \
            phantom (a push answered "not accepted" that arrived anyway), no mail was lost or \
            shown twice, every device mail acknowledged (at least one) is in its recipient's \
            INBOX and its sender's Sent once, and the fault left its trace: as many new relay registrations as the \
            drill causes (kill-primary 1, flap 3, …), for kill-db-primary a new database \
            leader, for restart-mail a new Dovecot, for partition-primary-mail mail held back \
            for at least a second. Exits 0 only when it passed. See chaos/README.md.
            """)

    @Option(help: "The drill (chaos/drill --list).") var drill: String
    @Option(help: "The stream's output: a file whose last line is its JSON verdict.") var stream: String
    @Option(help: "The database leader (Patroni member) before the fault.") var dbLeaderBefore: String = ""
    @Option(help: "The database leader after the stream.") var dbLeaderAfter: String = ""
    @Option(help: "The mail host's Dovecot master PID before the fault (restart-mail's trace).") var mailPidBefore: String = ""
    @Option(help: "The mail host's Dovecot master PID after the stream.") var mailPidAfter: String = ""
    @Option(help: "The drill's poll log of Prometheus's alerts (a line per poll: Unix ms, a space, the /api/v1/alerts answer); with --fault-at and --heal-at.")
    var alertsLog: String?
    @Option(help: "When the fault was injected (Unix ms).") var faultAt: Int64?
    @Option(help: "When the fault was healed (Unix ms).") var healAt: Int64?

    func run() throws {
        guard let drill = Drill(rawValue: drill) else {
            throw ValidationError("no drill '\(self.drill)'; the drills: \(Drill.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        // A stream that was killed may have left no file: that is a verdict (no evidence), not a usage error.
        let output = FileManager.default.contents(atPath: stream) ?? Data()
        var alerts: DrillAlerts?
        if let alertsLog {
            guard let faultAt, let healAt, healAt >= faultAt else { throw ValidationError("--alerts-log needs --fault-at and --heal-at (Unix ms, heal after fault)") }
            let polls = DrillAlerts.parse(log: FileManager.default.contents(atPath: alertsLog) ?? Data())
            alerts = DrillAlerts(drill: drill, polls: polls, faultAtMs: faultAt, healAtMs: healAt)
        }
        let verdict = DrillVerdict(drill: drill, stream: .parse(output: output),
                                   databaseLeaderBefore: dbLeaderBefore, databaseLeaderAfter: dbLeaderAfter,
                                   mailPIDBefore: mailPidBefore, mailPIDAfter: mailPidAfter, alerts: alerts)
        print(verdict.jsonLine)
        if !verdict.passed { throw ExitCode(1) }
    }
}

struct DrillTableCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drill-table",
        abstract: "Print the table of a set of drill verdicts (one JSON line each in FILE).",
        discussion: """
            One row per verdict: accepted, lost, dup(licates), stale, prim(aries at most), \
            shared (epochs), phantoms, outage_ms, and issue 5's outage goal where it sets one, \
            marked met or MISSED (a measurement, not part of passed); the mail stream's mails, \
            m_lost, m_dup and m_outage and the devices' mail's sent, s_deliv, s_lost and s_dup \
            when the verdicts have them; then passed, and with monitoring the alerts that \
            fired (Name 3.1→12.0: seconds after the fault → seconds after the heal it cleared, \
            … while firing) and the expected ones missed. Lines that \
            are not a verdict are skipped and counted on standard error.
            """)

    @Argument(help: "A file of drill verdicts, one JSON object per line.") var file: String

    func run() throws {
        guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read \(file)") }
        let table = DrillTable(jsonLines: data)
        print(table.text, terminator: "")
        if table.skippedLines > 0 {
            FileHandle.standardError.write(Data("drill-table: \(table.skippedLines) line(s) of \(file) were not a verdict\n".utf8))
        }
    }
}

struct RelayWindowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay-window",
        abstract: "Wait until the relay's lockout window leaves room for a drill's registrations.",
        discussion: """
            The relay locks an SRP ID out after more than 5 registrations a minute (BES), by \
            design; drills run back to back would trip it and measure the lockout instead of \
            the failover. Reads the relay's audit log (bramble-relay --audit-log) every second \
            and returns once its registrations of the last 61 s (since its last start) leave \
            room for --need more and one to spare. Give --need N, or --drill NAME for the \
            registrations that drill causes. Exits 1 if there is still no room after --timeout \
            seconds.
            """)

    @Option(help: "The relay's audit log.") var auditLog: String
    @Option(help: "Registrations the coming drill needs.") var need: Int?
    @Option(help: "The coming drill: need as many registrations as its fault causes.") var drill: String?
    @Option(help: "The relay's --lockout-max-connects.") var maxConnects: Int = 5
    @Option(help: "Seconds to wait at most.") var timeout: Int = 70

    func run() async throws {
        let need: Int
        switch (self.need, drill.map { ($0, Drill(rawValue: $0)) }) {
        case (let n?, nil): need = n
        case (nil, (_, let d?)?): need = d.minRegistrations
        case (nil, (let name, nil)?): throw ValidationError("no drill '\(name)'; the drills: \(Drill.allCases.map(\.rawValue).joined(separator: ", "))")
        default: throw ValidationError("give --need N or --drill NAME (one of them)")
        }
        guard need >= 0, maxConnects >= 1, (0...600).contains(timeout) else {
            throw ValidationError("--need must be ≥ 0, --max-connects ≥ 1, --timeout 0…600 s")
        }
        let deadline = ContinuousClock.now + .seconds(timeout)
        var said = false
        while true {
            guard let data = FileManager.default.contents(atPath: auditLog) else { throw ValidationError("cannot read the relay audit log \(auditLog)") }
            let window = RelayLockoutWindow(records: RelayAuditSummary.Record.parse(jsonLines: data),
                                            nowMs: Int64(Date().timeIntervalSince1970 * 1000), maxConnects: maxConnects)
            if window.hasRoom(for: need) { return }
            if ContinuousClock.now >= deadline {
                FileHandle.standardError.write(Data("relay-window: still \(window.recentRegistrations) registrations in the relay's last minute after \(timeout) s; no room for \(need) more\n".utf8))
                throw ExitCode(1)
            }
            if !said {
                FileHandle.standardError.write(Data("relay-window: \(window.recentRegistrations) registrations in the relay's last minute; waiting for room for \(need) more\n".utf8))
                said = true
            }
            try await Task.sleep(for: .seconds(1))
        }
    }
}
