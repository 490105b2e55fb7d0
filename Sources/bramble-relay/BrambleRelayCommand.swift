import ArgumentParser
import BrambleCore
import BrambleNet
import BrambleRelay
import Logging
import ServiceLifecycle

@main
struct BrambleRelayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bramble-relay",
        abstract: "The wireless-network stand-in: routes device data between devices and BES nodes.",
        discussion: """
            Devices connect to the device listener and say their PIN and SRP ID; BES nodes
            connect to the SRP listener and register their SRP ID at an epoch, proving they
            hold the SRP key (challenge–response, the key never crosses the wire). A higher
            epoch displaces the current session; a lower one is refused. Items are stored
            and forwarded while a device is offline or no node is registered.
            """)

    @Option(help: "Device listener, HOST:PORT.") var deviceListen = "127.0.0.1:4101"
    @Option(help: "SRP listener for BES nodes, HOST:PORT.") var srpListen = "127.0.0.1:3101"
    @Option(help: "HTTP listener for /health and /metrics, HOST:PORT.") var httpListen = "127.0.0.1:4180"
    @Option(help: "File of 'SRP_ID BASE64_KEY' lines: the SRP IDs this relay serves.") var srpKeys: String
    @Option(help: "Lock an SRP ID out after more than this many connects in the window.") var lockoutMaxConnects = 5
    @Option(help: "Lockout window in seconds.") var lockoutWindow = 60
    @Option(help: "Items stored per offline PIN or unregistered SRP ID.") var storeMaxItems = 5
    @Option(help: "Seconds a stored item is kept (BES: 7 days).") var storeMaxAge = 7 * 24 * 3600
    @Option(help: "Close an SRP connection that has sent nothing for this many milliseconds (nodes ping every third of their --relay-timeout-ms).") var srpTimeoutMs = 3000
    @Option(help: "Append a JSON-lines audit of SRP registrations and of each item's sending epoch to this file (for failover drills; off by default).") var auditLog: String?
    @Option(help: "trace, debug, info, notice, warning, error or critical.") var logLevel: String?
    @Option(help: "Settings file of 'key = value' lines, keys named as these options without dashes (also BRAMBLE_CONFIG). Precedence: flags, then BRAMBLE_<KEY> environment variables, then the file.") var config: String?

    /// Parses the settings file and the environment ahead of the flags (see `SettingsFile`).
    static func main() async {
        do {
            var command = try parseAsRoot(try CommandSettings.commandLine(for: Self()))
            if var command = command as? AsyncParsableCommand { try await command.run() } else { try command.run() }
        } catch {
            exit(withError: error is CommandSettings.Failure ? ValidationError("\(error)") : error)
        }
    }

    func run() async throws {
        BrambleLogging.bootstrap(level: logLevel)
        var config = RelayServiceConfiguration()
        config.deviceListen = try Self.hostPort(deviceListen, "--device-listen")
        config.srpListen = try Self.hostPort(srpListen, "--srp-listen")
        config.httpListen = try Self.hostPort(httpListen, "--http-listen")
        config.keys = try SRPKeyFile.load(srpKeys)
        guard lockoutMaxConnects >= 1, lockoutWindow >= 1, storeMaxItems >= 0, storeMaxAge >= 1 else {
            throw ValidationError("lockout and store limits must be positive")
        }
        config.relay.lockoutMaxConnects = lockoutMaxConnects
        config.relay.lockoutWindowMs = UInt64(lockoutWindow) * 1000
        config.relay.storeMaxItems = storeMaxItems
        config.relay.storeMaxAgeMs = UInt64(storeMaxAge) * 1000
        guard (100...3_600_000).contains(srpTimeoutMs) else { throw ValidationError("--srp-timeout-ms must be 100…3600000, got \(srpTimeoutMs)") }
        config.relay.serverSilenceMs = UInt64(srpTimeoutMs)
        config.auditLog = auditLog
        let logger = Logger(label: "bramble-relay")
        let group = ServiceGroup(services: [RelayService(configuration: config, logger: logger)],
                                 gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
    }

    static func hostPort(_ text: String, _ flag: String) throws -> HostPort {
        guard let hp = HostPort(text) else { throw ValidationError("\(flag) must be HOST:PORT, got '\(text)'") }
        return hp
    }
}
