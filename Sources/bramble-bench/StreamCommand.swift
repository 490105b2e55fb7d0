import ArgumentParser
import AsyncHTTPClient
import BrambleAPI
import BrambleCore
import BrambleNet
import Foundation
import NIOConcurrencyHelpers
import NIOSSL

/// A steady stream of pushes to a running cluster's devices, judged by evidence outside
/// the nodes: the ids the push API accepted, the devices' logs of what they showed, the
/// relay's audit log, and the pair's event log in the configuration database. The
/// failover drills (chaos/drill) and the deploy smoke test run it; the last line printed
/// is one JSON object (the verdict's fields plus `passed`).
struct StreamCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stream",
        abstract: "Push steadily to a cluster's devices for a while, then audit what they showed.",
        discussion: """
            Reads the cluster from its status file (nodes' push URLs, admin token, devices and \
            their logs). Each push goes to the next device in turn and to either node, as an \
            application with both URLs would: a node that fails a push is skipped for 0.5 s. \
            After the stream it waits up to --settle seconds for every accepted push to be \
            shown, then prints accepted, shown, lost, duplicates, phantoms (pushes answered "not \
            accepted" that a device showed anyway), outage_ms, not_accepted, outcome_unknown and passed; with \
            --relay-audit also max_serving_primaries, stale_deliveries and registrations; and \
            from the pair's event log (GET /admin/pair/events) promotions, shared_epochs \
            (epochs more than one node promoted at) and epochs_out_of_order. With a mail host, \
            also the mail stream by SMTP (mail_*) and the devices' own mail: every \
            1/--device-mail-rate s a device asks to mail the next device's user, and after the \
            stream sent_acked (sends acknowledged to the devices, by their logs), \
            sent_delivered (found by Message-ID in the recipient's INBOX and the sender's Sent, \
            read over IMAP as each user), sent_lost and sent_duplicates. With an IM host, the \
            demo devices log in to IM and an XMPP client of the stream's own (im-sender) sends \
            their users --im-rate messages a second: im_sent (routed by the IM host), im_shown, \
            im_lost and im_duplicates, by message id in the devices' logs. Exits 0 only \
            when nothing accepted was lost or shown twice, at most one primary served at a \
            time, nothing came from a fenced epoch, every epoch had one node, and every \
            device mail acknowledged is in both folders once.
            """)

    @Option(help: "The cluster's status.json (deploy/cluster writes it; BRAMBLE_STATUS).") var status: String?
    @Option(help: "Seconds to push for.") var duration: Double = 10
    @Option(help: "Pushes per second.") var rate: Double = 50
    @Option(help: "Seconds to wait, after the stream, for accepted pushes to be shown.") var settle: Double = 20
    @Option(help: "The relay's audit log (bramble-relay --audit-log): adds max_serving_primaries and stale_deliveries over the stream's window.") var relayAudit: String?
    @Option(help: "Mails per second sent by SMTP to the devices' users beside the pushes, when the status file has a mail host (0: none).") var mailRate: Double = 4
    @Option(help: "Instant messages per second an XMPP client of the drill's own (im-sender) sends the demo devices' users, once the devices have logged in to IM, when the status file has an IM host (0: none).") var imRate: Double = 2
    @Option(help: "Mails per second the demo devices send each other (a `send` request in turn, each to the next device's user), when the status file has a mail host (0: none).") var deviceMailRate: Double = 1

    struct Status: Decodable {
        struct Node: Decodable { var name: String; var push_url: String }
        struct Device: Decodable {
            var pin: String
            var log: String
            var email: String?
            /// The argv prefix that drives the running device: `[bin, "control", "--state", STATE]`.
            var control: [String]?
            var statePath: String? {
                guard let control, let i = control.firstIndex(of: "--state"), i + 1 < control.count else { return nil }
                return control[i + 1]
            }
        }
        struct Mail: Decodable {
            struct User: Decodable { var email: String; var password: String }
            var smtp: String
            var imap: String?
            /// The demo mailboxes' passwords.
            var users: [User]?
        }
        /// The private CA the nodes' HTTPS certificates chain to.
        struct TLS: Decodable {
            var ca: String
            /// False for a cluster started with BRAMBLE_DEPLOY_TLS=no (its mail host speaks plain SMTP).
            var enabled: Bool?
        }
        var tls: TLS?
        var nodes: [Node]
        var admin_token: String
        var devices: [Device]
        var mail: Mail?
        struct IM: Decodable {
            struct User: Decodable { var jid: String; var password: String }
            var xmpp: String
            var domain: String
            var users: [User]
        }
        var im: IM?
    }

    func run() async throws {
        BrambleLogging.bootstrap(level: "error")
        guard (0.5...3600).contains(duration), (1...2000).contains(rate), (0...600).contains(settle), (0...100).contains(mailRate),
              (0...100).contains(deviceMailRate), (0...100).contains(imRate) else {
            throw ValidationError("--duration must be 0.5…3600 s, --rate 1…2000 per second, --settle 0…600 s, --mail-rate, --device-mail-rate and --im-rate 0…100 per second")
        }
        let path = status ?? ProcessInfo.processInfo.environment["BRAMBLE_STATUS"] ?? ".run/status.json"
        guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read the status file \(path)") }
        let cluster = try JSONDecoder().decode(Status.self, from: data)
        guard !cluster.nodes.isEmpty, !cluster.devices.isEmpty else { throw ValidationError("\(path) lists no nodes or no devices") }
        var httpConfig = HTTPClient.Configuration(timeout: .init(connect: .milliseconds(500)))
        httpConfig.tlsConfiguration = try cluster.tls.map { try TLSFiles(ca: $0.ca).clientConfiguration() }
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfig)
        defer { _ = http.shutdown() }
        let targets = PushTargets(nodes: cluster.nodes.map { .init(name: $0.name, url: String($0.push_url.dropLast("/push".count))) },
                                  token: cluster.admin_token, http: http, skipFor: .milliseconds(500), timeout: .seconds(3))

        /// Each accepted push's id and when it was accepted (Unix ms).
        let accepted = NIOLockedValueBox<[String: Double]>([:])
        /// The subjects of pushes answered as certainly not accepted, and how many ended
        /// with their outcome unknown.
        let refused = NIOLockedValueBox<Set<String>>([])
        let unknown = NIOLockedValueBox(0)
        let interval = Duration.seconds(1 / rate)
        let run = String(UInt32.random(in: .min ... .max), radix: 16)
        let total = Int(duration * rate)
        let start = ContinuousClock.now
        let startUnixMs = Int64(Date().timeIntervalSince1970 * 1000)
        // Beside the pushes, a stream of mail through the mail host (when there is one).
        let mailTargets = cluster.devices.compactMap { d in d.email.map { (pin: d.pin, email: $0) } }
        // The mail host's certificate chains to the cluster's CA, as the nodes' do.
        let smtpTLS = try cluster.tls.flatMap { $0.enabled == false ? nil : try TLSFiles(ca: $0.ca).clientContext() }
        let mail: MailStream? = cluster.mail.flatMap { HostPort($0.smtp) }.flatMap { smtp in
            mailRate > 0 && !mailTargets.isEmpty ? MailStream(smtp: smtp, tls: smtpTLS, targets: mailTargets, rate: mailRate, run: run) : nil
        }
        async let mailed: Void = mail?.send(count: Int(duration * mailRate)) ?? ()
        // And the devices mailing each other: sends acknowledged to them, found in INBOX and Sent.
        let deviceMail = deviceMailRate > 0 ? Self.deviceMailStream(cluster, rate: deviceMailRate, run: run, tls: smtpTLS) : nil
        async let deviceMailed: Void = deviceMail?.send(count: max(1, Int(duration * deviceMailRate))) ?? ()
        // And instant messages to the devices' users, once they have logged in.
        let im = imRate > 0 ? Self.imStream(cluster, rate: imRate, run: run, tls: smtpTLS) : nil
        async let messaged: Void = {
            guard let im else { return }
            let notLoggedIn = await im.logIn()
            if !notLoggedIn.isEmpty { FileHandle.standardError.write(Data("stream: devices \(notLoggedIn) did not log in to IM\n".utf8)) }
            await im.send(count: max(1, Int(duration * imRate)))
        }()
        // Each push in its own task, so one stuck on a failing node does not hold back the
        // ones after it; the schedule is absolute, so the rate holds.
        await withDiscardingTaskGroup { pushes in
            for n in 0..<total {
                let due = start + interval * n
                if due > .now { try? await Task.sleep(until: due) }
                let device = cluster.devices[n % cluster.devices.count]
                pushes.addTask {
                    // Unique to this run: devices' logs keep earlier streams' items.
                    let subject = "stream \(run) \(n)"
                    switch await targets.push(n, to: device.pin, subject: subject, body: "stream") {
                    case .accepted(let id, _): accepted.withLockedValue { $0[id] = Date().timeIntervalSince1970 * 1000 }
                    case .notAccepted: refused.withLockedValue { _ = $0.insert(subject) }
                    case .unknown: unknown.withLockedValue { $0 += 1 }
                    }
                }
                if n > 0, n % Int(rate) == 0 {
                    let (a, r, u) = (accepted.withLockedValue { $0.count }, refused.withLockedValue { $0.count }, unknown.withLockedValue { $0 })
                    FileHandle.standardError.write(Data("stream: \(n)/\(total) sent, \(a) accepted, \(r) not accepted, \(u) outcome unknown\n".utf8))
                }
            }
        }
        await mailed
        await deviceMailed
        await messaged
        let ids = Set(accepted.withLockedValue { $0.keys })
        let notAccepted = refused.withLockedValue { $0 }
        let mailIDs = mail?.accepted ?? []
        var audit = DeliveryAudit(accepted: ids, shown: [], intervalMs: 1000 / rate)
        var mailAudit = DeliveryAudit(accepted: mailIDs, shown: [], intervalMs: 1000 / max(mailRate, 1))
        let streamEnded = ContinuousClock.now
        let settleDeadline = streamEnded + .seconds(settle)
        repeat {
            let logs = cluster.devices.map { Self.shown(logPath: $0.log) }
            audit = DeliveryAudit(accepted: ids, shown: logs.flatMap(\.pushes), intervalMs: 1000 / rate, notAccepted: notAccepted)
            if mail != nil {
                mailAudit = DeliveryAudit(accepted: mailIDs, shown: logs.flatMap(\.mails), intervalMs: 1000 / mailRate)
            }
            if audit.lost == 0 && (mail == nil || mailAudit.lost == 0) { break }
            try await Task.sleep(for: .milliseconds(200))
        } while ContinuousClock.now < settleDeadline
        // The devices' mail, within what is left of the settle.
        let sentAudit = await deviceMail?.audit(until: settleDeadline)
        let sentSettleMs = Int(((ContinuousClock.now - streamEnded).seconds * 1000).rounded())
        let imAudit = await im?.audit(until: max(settleDeadline, .now + .seconds(5)))
        // The longest time no push was accepted, and when it ended (Unix ms): a caller
        // compares it with when the database's new primary was ready.
        let times = accepted.withLockedValue { $0.values }.sorted()
        let gap = zip(times, times.dropFirst()).max { ($0.1 - $0.0) < ($1.1 - $1.0) }
        var invariantFields: [String: Any] = [:]
        var invariantsHeld = true
        if let relayAudit {
            let summary = RelayAuditSummary(records: try Self.relayRecords(relayAudit), fromMs: startUnixMs,
                                            toMs: Int64(Date().timeIntervalSince1970 * 1000))
            invariantFields = ["max_serving_primaries": summary.maxServingPrimaries, "stale_deliveries": summary.staleDeliveries,
                           "registrations": summary.registrations]
            invariantsHeld = summary.maxServingPrimaries <= 1 && summary.staleDeliveries == 0
        }
        // The pair's event log over the stream: every epoch promoted by one node only.
        let epochs: EpochAudit?
        do {
            epochs = try await Self.epochAudit(targets, sinceUnixMs: startUnixMs)
        } catch {
            FileHandle.standardError.write(Data("stream: no node answered with the pair's event log: \(error)\n".utf8))
            epochs = nil
        }
        invariantFields["promotions"] = epochs?.promotions
        invariantFields["shared_epochs"] = epochs?.sharedEpochs.count
        invariantFields["epochs_out_of_order"] = epochs?.epochsOutOfOrder
        invariantsHeld = invariantsHeld && epochs?.passed == true
        var result: [String: Any] = [
            "accept_gap_ms": gap.map { Int(($0.1 - $0.0).rounded()) } ?? 0,
            "accept_gap_end_unix_ms": gap.map { Int($0.1) } ?? 0,
            "accepted": audit.accepted, "shown": audit.shown, "lost": audit.lost, "duplicates": audit.duplicates,
            "outage_ms": Int(audit.outageMs.rounded()), "not_accepted": notAccepted.count + unknown.withLockedValue { $0 },
            "outcome_unknown": unknown.withLockedValue { $0 }, "phantoms": audit.phantoms, "sent": total,
            "passed": audit.passed && invariantsHeld,
        ]
        result.merge(invariantFields) { $1 }
        // The mail stream: every mail Postfix accepted shown once, on its user's device.
        var mailHeld = true
        if let mail {
            result.merge(["mail_accepted": mailAudit.accepted, "mail_shown": mailAudit.shown, "mail_lost": mailAudit.lost,
                          "mail_duplicates": mailAudit.duplicates, "mail_outage_ms": Int(mailAudit.outageMs.rounded()),
                          "mail_not_accepted": mail.refusedCount, "mail_sent": Int(duration * mailRate)]) { $1 }
            mailHeld = mailAudit.accepted > 0 && mailAudit.lost == 0 && mailAudit.duplicates == 0
        }
        // The devices' mail: every send acknowledged to a device in its recipient's INBOX and
        // its sender's Sent, once.
        var sentHeld = true
        if let deviceMail, let sentAudit {
            let (sent, reading) = sentAudit
            let failed = reading.failures
            // Beside the counts, how long the slowest send took from its acknowledgement to
            // its outcome, and how long after the streams ended every one was found.
            result.merge(["sent_acked": sent.acked, "sent_delivered": sent.delivered, "sent_lost": sent.lost,
                          "sent_duplicates": sent.duplicates, "sent_requested": deviceMail.submitted, "sent_failed": failed.count,
                          "sent_outcome_max_ms": reading.slowestOutcomeMs, "sent_settle_ms": sentSettleMs]) { $1 }
            if !sent.missing.isEmpty { result["sent_missing"] = Array(sent.missing.prefix(10)) }
            for (id, why) in failed.sorted(by: { $0.key < $1.key }).prefix(10) {
                FileHandle.standardError.write(Data("stream: the device was told \(id) \(why)\n".utf8))
            }
            sentHeld = sent.passed
        }
        // Instant messages: every one the IM server accepted shown once, on its user's device.
        var imHeld = true
        if let imAudit {
            result.merge(["im_sent": imAudit.sent, "im_shown": imAudit.shown, "im_lost": imAudit.lost,
                          "im_duplicates": imAudit.duplicates, "im_not_accepted": imAudit.notAccepted]) { $1 }
            if !imAudit.missing.isEmpty { result["im_missing"] = Array(imAudit.missing.prefix(10)) }
            imHeld = imAudit.passed
        }
        let passed = audit.passed && invariantsHeld && mailHeld && sentHeld && imHeld
        result["passed"] = passed
        print(String(decoding: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), as: UTF8.self))
        if !passed { throw ExitCode(1) }
    }

    /// The devices' mail stream, when the cluster has a mail host with IMAP and at least two
    /// devices with a user (and its password) and a control spool.
    static func deviceMailStream(_ cluster: Status, rate: Double, run: String, tls: NIOSSLContext?) -> DeviceMailStream? {
        guard let mail = cluster.mail, let imap = mail.imap.flatMap(HostPort.init) else { return nil }
        let passwords = Dictionary((mail.users ?? []).map { ($0.email, $0.password) }) { first, _ in first }
        let devices: [DeviceMailStream.Device] = cluster.devices.compactMap { d in
            guard let email = d.email, let password = passwords[email], let state = d.statePath, let pin = PIN(d.pin) else { return nil }
            return .init(pin: pin, email: email, statePath: state, log: d.log, password: password)
        }
        return DeviceMailStream(devices: devices, rate: rate, run: run, imap: imap, tls: tls)
    }

    /// The IM stream, when the cluster has an IM host with the sender's password and at
    /// least one device whose user has an IM account.
    static func imStream(_ cluster: Status, rate: Double, run: String, tls: NIOSSLContext?) -> IMStream? {
        guard let im = cluster.im, let xmpp = HostPort(im.xmpp) else { return nil }
        let passwords = Dictionary(im.users.map { ($0.jid, $0.password) }) { first, _ in first }
        guard let senderPassword = passwords["im-sender@\(im.domain)"] else { return nil }
        let devices: [IMStream.Device] = cluster.devices.compactMap { d in
            guard let email = d.email, let password = passwords[email], let state = d.statePath, let pin = PIN(d.pin) else { return nil }
            return .init(pin: pin, jid: email, password: password, statePath: state, log: d.log)
        }
        return IMStream(devices: devices, rate: rate, run: run, xmpp: xmpp, tls: tls, sender: ("im-sender@\(im.domain)", senderPassword))
    }

    /// The pair's event log since `sinceUnixMs`, audited, from the first node that answers.
    static func epochAudit(_ targets: PushTargets, sinceUnixMs: Int64) async throws -> EpochAudit {
        var lastError: any Error = ValidationError("no nodes")
        for node in targets.nodes {
            do {
                let log = try await targets.client(node).call(.GET, AdminAPI.events(sinceUnixMs: sinceUnixMs, limit: 10_000),
                                                              as: PairEventLog.self, timeout: .seconds(3))
                return EpochAudit(events: log.events)
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    /// The relay's audit log.
    static func relayRecords(_ path: String) throws -> [RelayAuditSummary.Record] {
        guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read the relay audit log \(path)") }
        return RelayAuditSummary.Record.parse(jsonLines: data)
    }

    /// A device log's items (bramble-device --log: one JSON object per line; a line cut
    /// short by a kill is skipped, as the device itself does): the pushes by push id, and
    /// the mails (their `mail` lines, not More chunks) by Message-ID. The audits count only
    /// the ids the stream sent: mail the devices sent each other (`<bramble.…>`), shown on
    /// the recipient's device too, is not the SMTP stream's.
    static func shown(logPath: String) -> (pushes: [DeliveryAudit.Shown], mails: [DeliveryAudit.Shown]) {
        guard let data = FileManager.default.contents(atPath: logPath) else { return ([], []) }
        struct Line: Decodable {
            var service: String?
            var push_id: String?
            var message_id: String?
            var pin: String
            var received_at: String
            var subject: String?
        }
        let decoder = JSONDecoder()
        // As ShownItem writes it: UTC, no zone designator.
        let style = Date.ISO8601FormatStyle().year().month().day().time(includingFractionalSeconds: true)
        var pushes: [DeliveryAudit.Shown] = [], mails: [DeliveryAudit.Shown] = []
        for raw in data.split(separator: UInt8(ascii: "\n")) {
            guard let line = try? decoder.decode(Line.self, from: raw), let at = try? style.parse(line.received_at) else { continue }
            let atMs = at.timeIntervalSince1970 * 1000
            if let id = line.push_id {
                pushes.append(DeliveryAudit.Shown(pushID: id, pin: line.pin, atMs: atMs, subject: line.subject ?? ""))
            } else if line.service == "mail", let id = line.message_id {
                mails.append(DeliveryAudit.Shown(pushID: id, pin: line.pin, atMs: atMs))
            }
        }
        return (pushes, mails)
    }
}

/// A stream of mail (the drills', the mail benchmark's): one mail at a time by SMTP to each
/// target's user in turn, on an absolute schedule; a mail counts as accepted when Postfix
/// answered 250 to it, at that moment. Message-IDs are `<TAG-RUN-N@bramble.test>`.
final class MailStream: Sendable {
    let smtp: HostPort
    /// The mail host's SMTP is TLS from the first byte (nil: plaintext).
    let tls: NIOSSLContext?
    let targets: [(pin: String, email: String)]
    let rate: Double
    let run: String
    let tag: String
    private let box = NIOLockedValueBox((accepted: [String: ContinuousClock.Instant](), refused: 0))

    init(smtp: HostPort, tls: NIOSSLContext?, targets: [(pin: String, email: String)], rate: Double, run: String, tag: String = "drill") {
        (self.smtp, self.tls, self.targets, self.rate, self.run, self.tag) = (smtp, tls, targets, rate, run, tag)
    }

    var accepted: Set<String> { box.withLockedValue { Set($0.accepted.keys) } }
    /// Each accepted mail's Message-ID and when Postfix answered 250.
    var acceptedAt: [String: ContinuousClock.Instant] { box.withLockedValue { $0.accepted } }
    var refusedCount: Int { box.withLockedValue { $0.refused } }

    func send(count: Int) async {
        let start = ContinuousClock.now
        let interval = Duration.seconds(1 / rate)
        await withDiscardingTaskGroup { group in
            for n in 0..<count {
                let due = start + interval * n
                if due > .now { try? await Task.sleep(until: due) }
                let target = targets[n % targets.count]
                let id = "<\(tag)-\(run)-\(n)@bramble.test>"
                group.addTask { [smtp, tls, box, tag] in
                    let message = "From: \(tag)@outside.test\r\nTo: \(target.email)\r\nSubject: \(tag) mail \(n)\r\nMessage-ID: \(id)\r\n\r\nmail \(n)\r\n"
                    // Bounded: a mail host that stops answering costs this mail 10 s, not the stream.
                    let reply = try? await withDeadline(ms: 10_000) {
                        try await SMTPSession.with(to: smtp, tls: tls, connectTimeout: .seconds(1)) { session in
                            try await session.send(from: "\(tag)@outside.test", to: [target.email], message: message)
                        }
                    }
                    let now = ContinuousClock.now
                    box.withLockedValue { if reply?.code == 250 { $0.accepted[id] = now } else { $0.refused += 1 } }
                }
            }
        }
    }
}
