import ArgumentParser
import AsyncHTTPClient
import BrambleAPI
import BrambleCore
import BrambleDevice
import BrambleNet
import Foundation
import Histogram

/// (k): over-the-air activation through the real relay, Postfix and Dovecot: from the
/// device's request to "Activation Complete" (its service books acknowledged).
struct ActivationBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "activation",
        abstract: "Over-the-air activation time, the device's request to \"Activation Complete\", through the real mail servers.",
        discussion: """
            --activations times, one after another: sets a fresh activation password for \
            --email through the admin API (not timed), then activates a new device (a new \
            PIN each time) as `bramble-device activate` does, in this process: the request \
            through the relay and Postfix into the mailbox, the node's answer, CPace's key \
            confirmation, the signed IT policy applied and confirmed, the service books \
            acknowledged. Prints p50, p99 and max of the time to each stage and the \
            activations a second, one JSON line last. Each run leaves a device for the user.
            """)

    @Option(help: "Node URL (the primary; the admin API).") var url: String
    @Option(help: "File holding the admin token.") var tokenFile: String
    @Option(help: "The user whose mailbox the requests go to (must exist, with a mailbox on the mail host).") var email: String
    @OptionGroup var relay: RelayOptions
    @Option(help: "Activations to time.") var activations = 50

    func run() async throws {
        BrambleLogging.bootstrap(level: "error")
        guard (1...10_000).contains(activations) else { throw ValidationError("--activations must be 1…10000") }
        let token = try String(decoding: SecretFilePermissions.read(tokenFile, what: "admin token"), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let (relayAddress, relayTLS) = try relay.endpoint()
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: try relay.httpTLS()))
        defer { _ = http.shutdown() }
        let client = BrambleClient(baseURL: url, token: token, http: http)

        var complete = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        var verified = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        var failures: [String] = []
        let begin = ContinuousClock.now
        var busy = Duration.zero
        for n in 0..<activations {
            let password = ActivationPassword.generate()
            _ = try await client.call(.POST, AdminAPI.activation(email), body: NewActivation(password: password), as: ActivationSet.self)
            let pin = PIN(UInt32.random(in: 1...UInt32.max))
            let activation = DeviceActivation(configuration: .init(email: email, password: password, pin: pin, relay: relayAddress, tls: relayTLS))
            let start = ContinuousClock.now
            do {
                let keyed = try await withDeadline(ms: 60_000) {
                    let credential = try await activation.exchangeKeys { _ in }
                    let keyed = ContinuousClock.now
                    try await activation.receiveServices(credential: credential, statePath: nil) { _ in }
                    return keyed
                }
                verified.record(UInt64((keyed - start).microseconds))
                complete.record(UInt64((ContinuousClock.now - start).microseconds))
            } catch {
                failures.append("\(error)")
            }
            busy += ContinuousClock.now - start
            if (n + 1) % 10 == 0 { print("activation: \(n + 1) of \(activations) done") }
        }
        let ms = { (h: Histogram<UInt64>, p: Double) in Double(h.valueAtPercentile(p)) / 1000 }
        let rate = Double(complete.totalCount) / max(busy.seconds, 0.001)
        print(String(format: "activation: %d completed, %d failed; request -> Activation Complete  p50 %.1f ms  p99 %.1f ms  max %.1f ms",
                     Int(complete.totalCount), failures.count, ms(complete, 50), ms(complete, 99), Double(complete.max) / 1000))
        print(String(format: "activation: request -> Encryption Verified  p50 %.1f ms  p99 %.1f ms; %.2f activations/s one at a time (%.1f s in all)",
                     ms(verified, 50), ms(verified, 99), rate, (ContinuousClock.now - begin).seconds))
        if let reason = failures.first { print("activation: a failure said: \(reason)") }
        let line: [String: Any] = ["completed": Int(complete.totalCount), "failed": failures.count,
                                   "complete_p50_ms": ms(complete, 50), "complete_p99_ms": ms(complete, 99), "complete_max_ms": Double(complete.max) / 1000,
                                   "verified_p50_ms": ms(verified, 50), "verified_p99_ms": ms(verified, 99), "activations_per_second": rate]
        print(String(decoding: try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys]), as: UTF8.self))
    }
}
