import ArgumentParser
import AsyncHTTPClient
import BrambleCore
import BrambleDevice
import BrambleAPI
import BrambleNet
import Foundation
import Histogram
import Logging
import NIOConcurrencyHelpers

/// (b) End to end: pushes per second and latency from `POST /push` to the device's
/// acknowledgement, for many devices on loopback.
struct EndToEndBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "e2e", abstract: "End-to-end pushes/s and latency.")

    @Option(help: "Node URL.") var url: String
    @Option(help: "File holding the admin token.") var tokenFile: String
    @OptionGroup var relay: RelayOptions
    @Option(help: "Directory of device credential files (*.json).") var credentials: String
    @Option(help: "Pushes to send.") var pushes = 20_000
    @Option(help: "Concurrent HTTP requests.") var concurrency = 128

    func run() async throws {
        BrambleLogging.bootstrap(level: "warning")
        let token = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let (relayAddress, relayTLS) = try relay.endpoint()

        let shownAt = NIOLockedValueBox<[String: ContinuousClock.Instant]>([:])
        var agents: [DeviceAgent] = []
        var pins: [String] = []
        for credential in try CredentialFile.loadDirectory(credentials) {
            pins.append(credential.pin)
            agents.append(try DeviceAgent(configuration: .init(credential: credential, relay: relayAddress, tls: relayTLS), logger: Logger(label: "device")) { item in
                let now = ContinuousClock.now
                if let id = item.pushID { shownAt.withLockedValue { $0[id] = now } }
            })
        }
        let allPins = pins
        let allAgents = agents
        // One HTTP connection per concurrent request: the shared client's default of 8
        // per host would make the client, not the node, the bottleneck.
        var httpConfig = HTTPClient.Configuration()
        httpConfig.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: concurrency)
        httpConfig.tlsConfiguration = try relay.httpTLS()
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfig)
        defer { _ = http.shutdown() }
        let client = BrambleClient(baseURL: url, token: token, http: http)

        try await withThrowingTaskGroup(of: Void.self) { group in
            for agent in allAgents { group.addTask { await agent.run() } }
            // Warm up: one push per device, so every link is up before measuring.
            for pin in allPins { _ = try await Self.push(client, to: pin, n: -1) }
            try await Self.waitUntil(seconds: 60) { shownAt.withLockedValue { $0.count } >= allPins.count }
            shownAt.withLockedValue { $0.removeAll() }
            print("e2e: \(allPins.count) devices connected; sending \(pushes) pushes, \(concurrency) at a time")

            let started = NIOLockedValueBox<[String: ContinuousClock.Instant]>([:])
            let begin = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { senders in
                for w in 0..<concurrency {
                    senders.addTask {
                        for n in stride(from: w, to: pushes, by: concurrency) {
                            let t0 = ContinuousClock.now
                            if let id = try await Self.push(client, to: allPins[n % allPins.count], n: n) {
                                started.withLockedValue { $0[id] = t0 }
                            }
                        }
                    }
                }
                try await senders.waitForAll()
            }
            let acceptedAll = ContinuousClock.now
            let total = started.withLockedValue { $0.count }
            try await Self.waitUntil(seconds: 120) { shownAt.withLockedValue { $0.count } >= total }
            let end = shownAt.withLockedValue { $0.values.max()! }

            var histogram = Histogram<UInt64>(highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
            let s = started.withLockedValue { $0 }
            let shown = shownAt.withLockedValue { $0 }
            for (id, t0) in s { if let t1 = shown[id] { histogram.record(UInt64(max(0, (t1 - t0).microseconds))) } }
            let seconds = (end - begin).seconds
            print(String(format: "e2e: accepted %d pushes in %.2f s (%.0f accepted/s)", total, (acceptedAll - begin).seconds, Double(total) / (acceptedAll - begin).seconds))
            print(String(format: "e2e: %d shown and acknowledged in %.2f s: %.0f pushes/s end to end", shown.count, seconds, Double(shown.count) / seconds))
            print(String(format: "e2e: latency POST -> device ack  p50 %.1f ms  p99 %.1f ms  max %.1f ms   (goal >= 5000/s, p99 < 50 ms)",
                         Double(histogram.valueAtPercentile(50)) / 1000, Double(histogram.valueAtPercentile(99)) / 1000, Double(histogram.max) / 1000))
            group.cancelAll()
        }
    }

    /// One push; a refusal ends the benchmark (it measures a healthy pair).
    static func push(_ client: BrambleClient, to: String, n: Int) async throws -> String? {
        do {
            return try await client.push(PushRequestBody(to: to, subject: "bench \(n)", body: "Benchmark item \(n) for \(to).")).id
        } catch {
            throw ValidationError("push refused: \(error)")
        }
    }

    static func waitUntil(seconds: Double, _ condition: () async -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while await !condition() {
            guard ContinuousClock.now < deadline else { throw ValidationError("timed out after \(seconds) s") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
    var microseconds: Int64 { components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000 }
}
