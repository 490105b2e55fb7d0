import ArgumentParser
import AsyncHTTPClient
import BrambleAPI
import BrambleCore
import BrambleDevice
import BrambleNet
import Foundation
import Histogram
import Logging
import NIOConcurrencyHelpers

/// (i) and (j): instant messaging latency, from the IM server taking a message to the
/// device showing it, with every credential's device logged in to IM in this process; with
/// `--kill`, the primary is SIGKILLed once all are logged in, and the bench measures how long
/// until the standby holds every session again, while the messages keep coming.
struct IMBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "im",
        abstract: "IM latency, IM server to shown on the device, with many sessions; optionally through a SIGKILL of the primary.",
        discussion: """
            Connects a device for every credential in --credentials and logs each in to IM as \
            its e-mail address (the password from --passwords, "JID PASSWORD" lines), waits \
            until --node holds every session (its bramble_im_sessions), then an XMPP client of \
            its own, as --sender, sends --messages messages at --rate a second, each to the next \
            device's user, and records when it handed each over and when the device showed it. \
            Prints p50, p99 and max, one JSON line last. With --kill NAME=URL=PID (the primary) \
            and --standby URL, it kills the primary once every session is logged in and also \
            prints relogged_ms: from the kill until the standby holds every session again.
            """)

    @Option(help: "The IM server's XMPP listener, HOST:PORT (TLS from the first byte, verified against --ca-file).") var xmpp: String
    @OptionGroup var relay: RelayOptions
    @Option(help: "Directory of device credential files (*.json); each device logs in to IM as its e-mail address.") var credentials: String
    @Option(help: "File of \"JID PASSWORD\" lines: the devices' users' and the sender's IM passwords (mode 0600).") var passwords: String
    @Option(help: "The JID that sends the messages.") var sender: String
    @Option(help: "The serving node's URL (its /metrics counts the sessions it holds).") var node: String
    @Option(help: "Messages to send.") var messages = 1000
    @Option(help: "Messages per second.") var rate: Double = 50
    @Option(help: "The primary to SIGKILL once every session is logged in: NAME=URL=PID.") var kill: String?
    @Option(help: "The standby's URL, watched after the kill.") var standby: String?

    func run() async throws {
        BrambleLogging.bootstrap(level: "error")
        guard let xmppAddress = HostPort(xmpp) else { throw ValidationError("--xmpp must be HOST:PORT") }
        let (relayAddress, relayTLS) = try relay.endpoint()
        guard (1...100_000).contains(messages), (0.1...1000).contains(rate) else { throw ValidationError("--messages must be 1…100000, --rate 0.1…1000") }
        let victim: Int32? = try kill.map { spec in
            guard let pid = spec.split(separator: "=").last.flatMap({ Int32($0) }) else { throw ValidationError("--kill must be NAME=URL=PID") }
            return pid
        }
        if kill != nil, standby == nil { throw ValidationError("--kill needs --standby") }
        let secrets = try String(decoding: SecretFilePermissions.read(passwords, what: "IM passwords"), as: UTF8.self)
        let password = Dictionary(secrets.split(separator: "\n").compactMap { line -> (String, String)? in
            let f = line.split(separator: " ", maxSplits: 1)
            return f.count == 2 ? (String(f[0]), String(f[1])) : nil
        }) { first, _ in first }
        guard let senderPassword = password[sender] else { throw ValidationError("--passwords has no password for \(sender)") }

        let shownAt = NIOLockedValueBox<[String: ContinuousClock.Instant]>([:])
        var agents: [(DeviceAgent, String)] = []
        for credential in try CredentialFile.loadDirectory(credentials) {
            guard password[credential.email] != nil else { throw ValidationError("--passwords has no password for \(credential.email)") }
            let agent = try DeviceAgent(configuration: .init(credential: credential, relay: relayAddress, tls: relayTLS), logger: Logger(label: "device")) { item in
                let now = ContinuousClock.now
                if item.service == "im", let id = item.id { shownAt.withLockedValue { $0[id] = now } }
            }
            agents.append((agent, credential.email))
        }
        guard !agents.isEmpty else { throw ValidationError("no credentials in \(credentials)") }
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: try relay.httpTLS()))
        defer { _ = http.shutdown() }
        let all = agents
        let users = agents.map(\.1)

        try await withThrowingTaskGroup(of: Void.self) { group in
            for (agent, _) in all { group.addTask { await agent.run() } }
            let loginStart = ContinuousClock.now
            for (agent, email) in all { _ = try agent.request(.imLogin(jid: email, secret: .password(password[email]!))) }
            try await EndToEndBench.waitUntil(seconds: 600) { (await Self.sessions(node, http: http) ?? 0) >= Double(users.count) }
            let loginMs = (ContinuousClock.now - loginStart).seconds * 1000
            try await Task.sleep(for: .seconds(2))
            print(String(format: "im: %d devices logged in to IM in %.0f ms; %d messages at %.0f/s", users.count, loginMs, messages, rate))

            let tls = try relay.caFile.map { try TLSFiles(ca: $0).clientContext() }
            let client = try await XMPPChatClient.connect(to: xmppAddress, tls: tls, jid: sender, password: senderPassword)
            let killedAt = ContinuousClock.now
            if let victim { Foundation.kill(victim, SIGKILL) }
            async let reloggedIn: Double? = {
                guard let standby else { return nil }
                try await EndToEndBench.waitUntil(seconds: 120) { (await Self.sessions(standby, http: http) ?? 0) >= Double(users.count) }
                return (ContinuousClock.now - killedAt).seconds * 1000
            }()
            var sentAt: [String: ContinuousClock.Instant] = [:]
            var notAccepted = 0
            let start = ContinuousClock.now
            let run = String(UInt32.random(in: .min ... .max), radix: 16)
            var sender = client
            for n in 0..<messages {
                let due = start + .seconds(Double(n) / rate)
                if due > .now { try? await Task.sleep(until: due) }
                let id = "imbench-\(run)-\(n)"
                let t0 = ContinuousClock.now
                if !sender.isConnected, let again = try? await XMPPChatClient.connect(to: xmppAddress, tls: tls, jid: self.sender, password: senderPassword) {
                    sender = again
                }
                if (try? await sender.send(to: users[n % users.count], body: "bench \(n)", id: id)) != nil { sentAt[id] = t0 } else { notAccepted += 1 }
            }
            await sender.close()
            let sent = sentAt
            try? await EndToEndBench.waitUntil(seconds: 120) { shownAt.withLockedValue { s in sent.keys.allSatisfy { s[$0] != nil } } }
            let again = try await reloggedIn
            var histogram = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
            let shown = shownAt.withLockedValue { $0 }
            for (id, t0) in sent {
                guard let t1 = shown[id] else { continue }
                histogram.record(UInt64(max(0, (t1 - t0).microseconds)))
            }
            let ms = { (p: Double) in Double(histogram.valueAtPercentile(p)) / 1000 }
            let shownCount = sent.keys.filter { shown[$0] != nil }.count
            print(String(format: "im: %d accepted, %d shown, %d not accepted; latency handed over -> shown  p50 %.1f ms  p99 %.1f ms  max %.1f ms",
                         sent.count, shownCount, notAccepted, ms(50), ms(99), Double(histogram.max) / 1000))
            var line: [String: Any] = ["sessions": users.count, "accepted": sent.count, "shown": shownCount, "not_accepted": notAccepted,
                                       "login_ms": loginMs, "p50_ms": ms(50), "p99_ms": ms(99), "max_ms": Double(histogram.max) / 1000]
            if let again {
                print(String(format: "im: after the SIGKILL every session logged in again on the standby in %.0f ms", again))
                line["relogged_ms"] = again
            }
            print(String(decoding: try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys]), as: UTF8.self))
            group.cancelAll()
        }
    }

    /// The node's `bramble_im_sessions` (nil: it did not answer).
    static func sessions(_ url: String, http: HTTPClient) async -> Double? {
        guard let reply = try? await BrambleClient(baseURL: url, token: "", http: http).raw(.GET, "/metrics", timeout: .seconds(1)) else { return nil }
        let text = String(decoding: reply.body, as: UTF8.self)
        for line in text.split(separator: "\n") where line.hasPrefix("bramble_im_sessions ") {
            return Double(line.split(separator: " ")[1])
        }
        return nil
    }
}
