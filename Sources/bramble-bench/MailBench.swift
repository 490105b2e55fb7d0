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

/// (e) and (f): mail latency from Postfix's 250 to the device showing the mail, with every
/// credential's device connected in this process; with `--kill`, the primary is killed
/// (SIGKILL) once the devices are connected and the stream runs through the failover,
/// measuring also how long until the new primary watches every mailbox again.
struct MailBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mail",
        abstract: "Mail latency, SMTP 250 to shown on the device; optionally through a SIGKILL of the primary.",
        discussion: """
            Connects a device for every credential in --credentials, waits until --node's \
            Messaging Agent watches all their mailboxes, then sends --mails mails by SMTP at \
            --rate a second, each to the next device's user, and records when Postfix answered \
            250 and when the device showed it. Prints p50, p99 and max, one JSON line last. With \
            --kill NAME=URL=PID (the primary) and --standby URL, it kills the primary as the \
            stream starts and also prints watched_again_ms: from the kill until the standby's \
            Messaging Agent has checked every mailbox.
            """)

    @Option(help: "Postfix's SMTP listener, HOST:PORT (TLS from the first byte, verified against --ca-file; plain SMTP with --plaintext).") var smtp: String
    @OptionGroup var relay: RelayOptions
    @Option(help: "Directory of device credential files (*.json).") var credentials: String
    @Option(help: "The serving node's URL (its /health says how many mailboxes it watches).") var node: String
    @Option(help: "Mails to send.") var mails = 200
    @Option(help: "Mails per second.") var rate: Double = 20
    @Option(help: "The primary to SIGKILL as the stream starts: NAME=URL=PID.") var kill: String?
    @Option(help: "The standby's URL, watched after the kill.") var standby: String?

    func run() async throws {
        BrambleLogging.bootstrap(level: "error")
        guard let smtpAddress = HostPort(smtp) else { throw ValidationError("--smtp must be HOST:PORT") }
        let (relayAddress, relayTLS) = try relay.endpoint()
        guard (1...100_000).contains(mails), (0.1...1000).contains(rate) else { throw ValidationError("--mails must be 1…100000, --rate 0.1…1000") }
        let victim: Int32? = try kill.map { spec in
            guard let pid = spec.split(separator: "=").last.flatMap({ Int32($0) }) else { throw ValidationError("--kill must be NAME=URL=PID") }
            return pid
        }
        if kill != nil, standby == nil { throw ValidationError("--kill needs --standby") }

        let shownAt = NIOLockedValueBox<[String: ContinuousClock.Instant]>([:])
        var agents: [DeviceAgent] = []
        var users: [String] = []
        for credential in try CredentialFile.loadDirectory(credentials) {
            users.append(credential.email)
            agents.append(try DeviceAgent(configuration: .init(credential: credential, relay: relayAddress, tls: relayTLS), logger: Logger(label: "device")) { item in
                let now = ContinuousClock.now
                if item.service == "mail", let id = item.messageID { shownAt.withLockedValue { $0[id] = now } }
            })
        }
        guard !users.isEmpty else { throw ValidationError("no credentials in \(credentials)") }
        let http = HTTPClient(eventLoopGroupProvider: .singleton,
                              configuration: .init(tlsConfiguration: try relay.httpTLS()))
        defer { _ = http.shutdown() }
        let all = agents, targets = users

        try await withThrowingTaskGroup(of: Void.self) { group in
            for agent in all { group.addTask { await agent.run() } }
            // Every mailbox watched (checked once) before measuring; the devices connect meanwhile.
            try await EndToEndBench.waitUntil(seconds: 300) {
                await Self.watched(node, http: http).map { $0.0 == $0.1 && $0.1 >= targets.count } ?? false
            }
            try await Task.sleep(for: .seconds(2))
            print("mail: \(targets.count) devices connected, \(targets.count) mailboxes watched; \(mails) mails at \(rate)/s")

            // The mail host's certificate chains to the same CA as the relay's.
            let smtpTLS = try relay.caFile.map { try TLSFiles(ca: $0).clientContext() }
            let stream = MailStream(smtp: smtpAddress, tls: smtpTLS, targets: targets.map { (pin: "", email: $0) }, rate: rate,
                                    run: String(UInt32.random(in: .min ... .max), radix: 16), tag: "bench")
            let killedAt = ContinuousClock.now
            if let victim { Foundation.kill(victim, SIGKILL) }
            async let watchedAgain: Double? = {
                guard let standby else { return nil }
                try await EndToEndBench.waitUntil(seconds: 120) {
                    await Self.watched(standby, http: http).map { $0.0 == $0.1 && $0.1 >= targets.count } ?? false
                }
                return (ContinuousClock.now - killedAt).seconds * 1000
            }()
            await stream.send(count: mails)
            let sent = stream.acceptedAt
            try await EndToEndBench.waitUntil(seconds: 120) { shownAt.withLockedValue { s in sent.keys.allSatisfy { s[$0] != nil } } }
            let again = try await watchedAgain
            var all = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
            var firstTen = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
            let shown = shownAt.withLockedValue { $0 }
            for (id, t0) in sent {
                guard let t1 = shown[id] else { continue }
                let us = UInt64(max(0, (t1 - t0).microseconds))
                all.record(us)
                if t0 - killedAt < .seconds(10) { firstTen.record(us) }
            }
            let ms = { (h: Histogram<UInt64>, p: Double) in Double(h.valueAtPercentile(p)) / 1000 }
            print(String(format: "mail: %d accepted, %d shown; latency SMTP 250 -> shown  p50 %.1f ms  p99 %.1f ms  max %.1f ms",
                         sent.count, shown.count, ms(all, 50), ms(all, 99), Double(all.max) / 1000))
            var line: [String: Any] = ["mailboxes": targets.count, "accepted": sent.count, "shown": sent.keys.filter { shown[$0] != nil }.count,
                                       "p50_ms": ms(all, 50), "p99_ms": ms(all, 99), "max_ms": Double(all.max) / 1000]
            if let again {
                print(String(format: "mail: after the SIGKILL every mailbox watched again in %.0f ms; first 10 s: p50 %.1f ms  p99 %.1f ms",
                             again, ms(firstTen, 50), ms(firstTen, 99)))
                line["watched_again_ms"] = again
                line["first_10s_p50_ms"] = ms(firstTen, 50)
                line["first_10s_p99_ms"] = ms(firstTen, 99)
            }
            print(String(decoding: try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys]), as: UTF8.self))
            group.cancelAll()
        }
    }

    /// (watched, total) from a node's messaging_agent health detail, "watching W of T …".
    static func watched(_ url: String, http: HTTPClient) async -> (Int, Int)? {
        guard let reply = try? await BrambleClient(baseURL: url, token: "", http: http).raw(.GET, HealthAPI.health, timeout: .seconds(1)),
              let health = try? JSONDecoder().decode(NodeHealth.self, from: Data(reply.body)),
              let detail = health.parameters.first(where: { $0.parameter == .messagingAgent })?.detail,
              let match = detail.firstMatch(of: /watching (\d+) of (\d+)/), let w = Int(match.1), let t = Int(match.2) else { return nil }
        return (w, t)
    }

}
