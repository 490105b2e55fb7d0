import ArgumentParser
import AsyncHTTPClient
import BrambleCore
import BrambleDevice
import BrambleAPI
import BrambleNet
import Foundation
import Glibc
import Logging
import NIOConcurrencyHelpers

/// (c) One failover of a running pair, as a probe device sees it: a push every 10 ms
/// (to either node, as an application with both URLs would), then SIGKILL of the
/// primary or a planned switchover. Prints one JSON line: the device-visible outage (the
/// largest gap between consecutive shown items around the failover), the time from the
/// kill or request to the relay's registration of the new epoch, and the pushes
/// accepted, lost and shown twice.
struct FailoverBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "failover", abstract: "One measured failover of a running pair.")

    enum Mode: String, ExpressibleByArgument { case kill, switchover }

    @Option(help: "kill (SIGKILL the primary) or switchover (bramble failover).") var mode: Mode
    @Option(help: "Each node as NAME=URL=PID.") var node: [String]
    @Option(help: "File holding the admin token.") var tokenFile: String
    @OptionGroup var relay: RelayOptions
    @Option(help: "Relay health URL (shows the registered epoch).") var relayHealth: String
    @Option(help: "The probe device's credential file.") var credential: String
    @Option(help: "SRP ID whose epoch to watch.") var srpID = "bramble"
    @Option(help: "Milliseconds between pushes.") var everyMs = 10

    struct Node { var name: String; var url: String; var pid: pid_t }

    func run() async throws {
        BrambleLogging.bootstrap(level: "error")
        let nodes = try node.map { spec -> Node in
            let parts = spec.split(separator: "=", maxSplits: 2).map(String.init)
            guard parts.count == 3, let pid = pid_t(parts[2]) else { throw ValidationError("--node must be NAME=URL=PID, got '\(spec)'") }
            return Node(name: parts[0], url: parts[1], pid: pid)
        }
        let token = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let (relayAddress, relayTLS) = try relay.endpoint()
        let probe = try CredentialFile.load(credential)
        let http = HTTPClient(eventLoopGroupProvider: .singleton,
                              configuration: .init(tlsConfiguration: try relay.httpTLS()))
        defer { _ = http.shutdown() }

        let shown = NIOLockedValueBox<[(id: String, at: ContinuousClock.Instant)]>([])
        let agent = try DeviceAgent(configuration: .init(credential: probe, relay: relayAddress, tls: relayTLS), logger: Logger(label: "probe")) { item in
            let now = ContinuousClock.now
            if let id = item.pushID { shown.withLockedValue { $0.append((id, now)) } }
        }
        guard let primary = await Self.primary(nodes, http: http) else { throw ValidationError("no node answers /primary with 200") }
        let startEpoch = try await Self.relayEpoch(relayHealth, srpID: srpID, http: http)

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await agent.run() }
            let accepted = NIOLockedValueBox<Set<String>>([])
            let stop = NIOLockedValueBox(false)
            // One push every `everyMs`, each in its own task, so a request stuck on the
            // killed node does not hold back the ones after it (an application sending
            // from many threads). A node that failed a push is skipped for a second.
            let targets = PushTargets(nodes: nodes.map { .init(name: $0.name, url: $0.url) }, token: token, http: http,
                                      skipFor: .seconds(1), timeout: .seconds(2))
            group.addTask {
                try await withThrowingDiscardingTaskGroup { pushes in
                    var n = 0
                    while !stop.withLockedValue({ $0 }) {
                        let i = n
                        pushes.addTask {
                            if case .accepted(let id, _) = await targets.push(i, to: probe.pin, subject: "probe \(i)", body: "probe") {
                                accepted.withLockedValue { _ = $0.insert(id) }
                            }
                        }
                        n += 1
                        try await Task.sleep(for: .milliseconds(everyMs))
                    }
                }
            }
            // Steady state first.
            try await Task.sleep(for: .seconds(2))
            let t0 = ContinuousClock.now
            switch mode {
            case .kill:
                kill(primary.pid, SIGKILL)
            case .switchover:
                do {
                    _ = try await BrambleClient(baseURL: primary.url, token: token, http: http)
                        .call(.POST, AdminAPI.failover, body: FailoverRequest(), as: FailoverDone.self)
                } catch {
                    throw ValidationError("failover refused: \(error)")
                }
            }
            var registeredMs: Double?
            while ContinuousClock.now - t0 < .seconds(15) {
                if let e = try? await Self.relayEpoch(relayHealth, srpID: srpID, http: http), e > startEpoch {
                    registeredMs = (ContinuousClock.now - t0).ms
                    break
                }
                try await Task.sleep(for: .milliseconds(2))
            }
            try await Task.sleep(for: .seconds(3))
            stop.withLockedValue { $0 = true }
            try await Task.sleep(for: .milliseconds(2_500))  // pushes still in flight answer or time out
            let expected = accepted.withLockedValue { $0 }
            let deadline = ContinuousClock.now + .seconds(20)
            while !expected.isSubset(of: Set(shown.withLockedValue { $0.map(\.id) })), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            let seen = shown.withLockedValue { $0 }
            let ids = seen.map(\.id)
            let lost = expected.subtracting(ids).count
            let doubled = ids.count - Set(ids).count
            // The largest gap between consecutive shown items from 1 s before the failover.
            let times = seen.map(\.at).filter { $0 >= t0 - .seconds(1) }.sorted()
            let outage = zip(times, times.dropFirst()).map { ($1 - $0).ms }.max() ?? .infinity
            let result: [String: String] = [
                "mode": mode.rawValue, "from": primary.name,
                "outage_ms": String(format: "%.0f", outage),
                "registration_ms": registeredMs.map { String(format: "%.0f", $0) } ?? "none",
                "accepted": "\(expected.count)", "lost": "\(lost)", "shown_twice": "\(doubled)",
            ]
            let json = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
            print(String(decoding: json, as: UTF8.self))
            group.cancelAll()
        }
    }

    static func primary(_ nodes: [Node], http: HTTPClient) async -> Node? {
        for n in nodes {
            if let reply = try? await BrambleClient(baseURL: n.url, token: "", http: http).raw(.GET, HealthAPI.primary, timeout: .seconds(2)),
               reply.status == 200 { return n }
        }
        return nil
    }

    /// The epoch the relay's /health lists for the SRP ID.
    static func relayEpoch(_ url: String, srpID: String, http: HTTPClient) async throws -> UInt64 {
        let reply = try await BrambleClient(baseURL: url, token: "", http: http).raw(.GET, "", timeout: .seconds(1))
        let object = try JSONSerialization.jsonObject(with: reply.body) as? [String: Any]
        let sessions = object?["sessions"] as? [String: Any] ?? [:]
        return (sessions[srpID] as? NSNumber)?.uint64Value ?? 0
    }

}

extension Duration {
    var ms: Double { seconds * 1000 }
}
