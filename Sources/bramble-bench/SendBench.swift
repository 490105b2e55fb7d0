import ArgumentParser
import BrambleCore
import BrambleDevice
import BrambleNet
import Foundation
import Histogram
import Logging
import NIOConcurrencyHelpers
import NIOSSL

/// (h): the latency of mail sent from a device: from the device's request to the mail in
/// the recipient's INBOX (Dovecot has delivered it), and to the device's `sent` line.
struct SendBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Device mail latency: the device's send request to the recipient's INBOX, and to the device hearing \"sent\".",
        discussion: """
            Connects a device for each of the --credential files (two or more, users with \
            mailboxes), then --mails times at --rate a second has the next device send a mail \
            to the next device's user. The recipients' INBOXes are watched over IMAP as the \
            service account (a fetch of new Message-IDs every 10 ms), and each mail's arrival \
            time taken against the moment its request was made in the device. Then \
            --reconciliations rounds on mail the devices received: a device marks one read or \
            unread (until IMAP shows the flag, polled every 5 ms), or an IMAP client does \
            (until the device's state line says so). Prints p50, p99 and max of each latency, \
            one JSON line last.
            """)

    @OptionGroup var relay: RelayOptions
    @Option(help: "A device credential file (repeat: two or more).") var credential: [String]
    @Option(help: "The mail host's IMAP listener, HOST:PORT (TLS verified against --ca-file).") var imap: String
    @Option(help: "The Dovecot master user the INBOXes are read as.") var serviceUser = "bramble-service"
    @Option(help: "File holding its password.") var servicePasswordFile: String
    @Option(help: "Mails to send.") var mails = 100
    @Option(help: "Mails per second.") var rate: Double = 5
    @Option(help: "Reconciliation rounds after the sends, alternating a device's read/unread (to the mailbox) and an IMAP client's (to the device).") var reconciliations = 40

    func run() async throws {
        BrambleLogging.bootstrap(level: "error")
        guard credential.count >= 2 else { throw ValidationError("give two or more --credential files") }
        guard (1...10_000).contains(mails), (0.1...100).contains(rate) else { throw ValidationError("--mails must be 1…10000, --rate 0.1…100") }
        guard let imapAddress = HostPort(imap) else { throw ValidationError("--imap must be HOST:PORT") }
        let password = try String(contentsOfFile: servicePasswordFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let (relayAddress, relayTLS) = try relay.endpoint()
        let imapTLS = try relay.caFile.map { try TLSFiles(ca: $0).clientContext() }

        let heardAt = NIOLockedValueBox<[String: ContinuousClock.Instant]>([:])
        // Mail each device showed, and each state line: (message, read) → when.
        let received = NIOLockedValueBox<[(device: Int, messageID: String)]>([])
        let stateSeen = NIOLockedValueBox<[String: ContinuousClock.Instant]>([:])
        let failed = NIOLockedValueBox<[String: String]>([:])
        var agents: [(agent: DeviceAgent, pin: PIN, email: String)] = []
        for (index, path) in credential.enumerated() {
            let c = try CredentialFile.load(path)
            let agent = try DeviceAgent(configuration: .init(credential: c, relay: relayAddress, tls: relayTLS), logger: Logger(label: "device")) { item in
                let now = ContinuousClock.now
                if item.service == "mail", let id = item.messageID { received.withLockedValue { $0.append((index, id)) } }
                if item.service == "state", let id = item.messageID, let read = item.read {
                    stateSeen.withLockedValue { if $0["\(index) \(id) \(read)"] == nil { $0["\(index) \(id) \(read)"] = now } }
                }
                guard item.service == "sent", let id = item.messageID else { return }

                heardAt.withLockedValue { $0[id] = now }
                if item.state != "sent" { failed.withLockedValue { $0[id] = item.reason ?? "failed" } }
            }
            agents.append((agent, try c.validated().pin, c.email))
        }
        let devices = agents
        let arrivedAt = NIOLockedValueBox<[String: ContinuousClock.Instant]>([:])
        let requestedAt = NIOLockedValueBox<[String: ContinuousClock.Instant]>([:])
        let done = NIOLockedValueBox(false)

        try await withThrowingTaskGroup(of: Void.self) { group in
            for d in devices { group.addTask { await d.agent.run() } }
            for email in Set(devices.map(\.email)) {
                group.addTask {
                    try await Self.watchInbox(email, at: imapAddress, tls: imapTLS, user: serviceUser, password: password, arrivedAt: arrivedAt, done: done)
                }
            }
            try await Task.sleep(for: .seconds(3))  // the devices connect, the watchers start
            print("send: \(devices.count) devices; \(mails) mails at \(rate)/s")
            for i in 0..<mails {
                let (from, to) = (devices[i % devices.count], devices[(i + 1) % devices.count])
                let started = ContinuousClock.now
                let ref = try from.agent.request(.send(to: [to.email], cc: [], subject: "bench send \(i)", body: "Mail \(i) from the device bench.\n"))
                let domain = from.email.split(separator: "@").last.map(String.init) ?? ""
                requestedAt.withLockedValue { $0[OutgoingMessageID.make(pin: from.pin, ref: ref, domain: domain)] = started }
                try await Task.sleep(for: .milliseconds(Int(1000 / rate)))
            }
            let wanted = requestedAt.withLockedValue { $0 }
            try? await EndToEndBench.waitUntil(seconds: 60) {
                let (arrived, heard) = (arrivedAt.withLockedValue { $0 }, heardAt.withLockedValue { $0 })
                return wanted.keys.allSatisfy { arrived[$0] != nil && heard[$0] != nil }
            }
            done.withLockedValue { $0 = true }
            let (arrived, heard, refused) = (arrivedAt.withLockedValue { $0 }, heardAt.withLockedValue { $0 }, failed.withLockedValue { $0 })
            var toInbox = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
            var toSent = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
            for (id, t0) in wanted {
                if let t1 = arrived[id] { toInbox.record(UInt64(max(0, (t1 - t0).microseconds))) }
                if let t1 = heard[id] { toSent.record(UInt64(max(0, (t1 - t0).microseconds))) }
            }
            let ms = { (h: Histogram<UInt64>, p: Double) in Double(h.valueAtPercentile(p)) / 1000 }
            let delivered = wanted.keys.filter { arrived[$0] != nil }.count
            print(String(format: "send: %d requested, %d in the recipient's INBOX, %d failed; request -> INBOX  p50 %.1f ms  p99 %.1f ms  max %.1f ms",
                         wanted.count, delivered, refused.count, ms(toInbox, 50), ms(toInbox, 99), Double(toInbox.max) / 1000))
            print(String(format: "send: request -> the device hears \"sent\"  p50 %.1f ms  p99 %.1f ms  max %.1f ms",
                         ms(toSent, 50), ms(toSent, 99), Double(toSent.max) / 1000))
            if let reason = refused.values.first { print("send: a failure said: \(reason)") }

            let (toMailbox, toDevice) = try await Self.reconcile(rounds: reconciliations, devices: devices.map { ($0.agent, $0.email) },
                                                                 received: received.withLockedValue { $0 }, stateSeen: stateSeen,
                                                                 imap: imapAddress, tls: imapTLS, user: serviceUser, password: password)
            print(String(format: "send: reconciliation, device -> mailbox (IMAP shows the flag)  p50 %.1f ms  p99 %.1f ms  max %.1f ms  (%d)",
                         ms(toMailbox, 50), ms(toMailbox, 99), Double(toMailbox.max) / 1000, Int(toMailbox.totalCount)))
            print(String(format: "send: reconciliation, mailbox -> device (an IMAP client's change to the state line)  p50 %.1f ms  p99 %.1f ms  max %.1f ms  (%d)",
                         ms(toDevice, 50), ms(toDevice, 99), Double(toDevice.max) / 1000, Int(toDevice.totalCount)))
            let line: [String: Any] = ["requested": wanted.count, "delivered": delivered, "failed": refused.count,
                                       "inbox_p50_ms": ms(toInbox, 50), "inbox_p99_ms": ms(toInbox, 99), "inbox_max_ms": Double(toInbox.max) / 1000,
                                       "sent_p50_ms": ms(toSent, 50), "sent_p99_ms": ms(toSent, 99),
                                       "to_mailbox_p50_ms": ms(toMailbox, 50), "to_mailbox_p99_ms": ms(toMailbox, 99),
                                       "to_device_p50_ms": ms(toDevice, 50), "to_device_p99_ms": ms(toDevice, 99)]
            print(String(decoding: try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys]), as: UTF8.self))
            group.cancelAll()
        }
    }

    /// Notes when each new message's Message-ID appears in `email`'s INBOX, until `done`.
    static func watchInbox(_ email: String, at address: HostPort, tls: NIOSSLContext?, user: String, password: String,
                           arrivedAt: NIOLockedValueBox<[String: ContinuousClock.Instant]>, done: NIOLockedValueBox<Bool>) async throws {
        try await IMAPSession.with(to: address, tls: tls) { imap in
            try await imap.login(user: "\(email)*\(user)", password: password)
            var next = try await imap.select("INBOX", readOnly: true).uidNext ?? 1
            while !done.withLockedValue({ $0 }), !Task.isCancelled {
                try await imap.run("NOOP")  // Dovecot shows what was delivered since
                for (uid, attributes) in try await imap.uidFetch("\(next):*", "UID ENVELOPE") where uid >= next {
                    let now = ContinuousClock.now
                    if let id = attributes["ENVELOPE"].flatMap(MailEnvelope.init)?.messageID {
                        arrivedAt.withLockedValue { if $0[id] == nil { $0[id] = now } }
                    }
                    next = max(next, uid + 1)
                }
                try await Task.sleep(for: .milliseconds(10))
            }
            await imap.logout()
        }
    }

    /// Rounds on mail the devices received, alternating: a device's read/unread until IMAP
    /// shows the flag, and an IMAP client's until the device's state line says so. Each
    /// mail's flag flips every time it is used, so every round is a change.
    static func reconcile(rounds: Int, devices: [(agent: DeviceAgent, email: String)], received: [(device: Int, messageID: String)],
                          stateSeen: NIOLockedValueBox<[String: ContinuousClock.Instant]>, imap: HostPort, tls: NIOSSLContext?,
                          user: String, password: String) async throws -> (Histogram<UInt64>, Histogram<UInt64>) {
        var toMailbox = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        var toDevice = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        guard rounds > 0, !received.isEmpty else { return (toMailbox, toDevice) }
        var read: [String: Bool] = [:]  // what each mail's \Seen is now (new mail: unread)
        for round in 0..<rounds {
            let (device, id) = received[round % received.count]
            let email = devices[device].email
            let target = !(read[id] ?? false)
            read[id] = target
            try await IMAPSession.with(to: imap, tls: tls) { session in
                try await session.login(user: "\(email)*\(user)", password: password)
                _ = try await session.select("INBOX")
                guard let uid = try await session.uidSearch(header: "Message-ID", value: id).first else { return }
                let started = ContinuousClock.now
                if round % 2 == 0 {
                    try devices[device].agent.request(target ? .read(messageID: id) : .unread(messageID: id))
                    let deadline = started + .seconds(10)
                    while ContinuousClock.now < deadline {
                        let flags = try await session.uidFetch("\(uid)", "UID FLAGS").first?.attributes["FLAGS"]?.list?.compactMap(\.text) ?? []
                        if flags.contains("\\Seen") == target { toMailbox.record(UInt64(max(0, (ContinuousClock.now - started).microseconds))); break }
                        try await Task.sleep(for: .milliseconds(5))
                    }
                } else {
                    try await session.uidStore("\(uid)", flags: ["\\Seen"], add: target)
                    let deadline = started + .seconds(40)
                    while ContinuousClock.now < deadline {
                        if let at = stateSeen.withLockedValue({ $0["\(device) \(id) \(target)"] }) {
                            toDevice.record(UInt64(max(0, (at - started).microseconds)))
                            stateSeen.withLockedValue { $0["\(device) \(id) \(target)"] = nil }
                            break
                        }
                        try await Task.sleep(for: .milliseconds(5))
                    }
                }
                await session.logout()
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        return (toMailbox, toDevice)
    }
}
