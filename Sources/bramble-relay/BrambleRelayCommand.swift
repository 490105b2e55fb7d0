import ArgumentParser
import BrambleCore
import BrambleNet
import BrambleRelay
import Logging
import Metrics
import Prometheus
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

            Each setting comes from its flag, else from the environment variable BRAMBLE_<KEY> (the key in upper case, '-' as '_': BRAMBLE_SRP_LISTEN), else from the settings file (--config or BRAMBLE_CONFIG; keys as the options without dashes), else its default. A key or BRAMBLE_ variable that names no setting is an error. The SRP keys are read from their file, never from a flag, the environment or the settings file, and logs show them as <REDACTED>.
            """)

    // Every setting is optional here, with no ArgumentParser default: a flag given beats
    // BRAMBLE_<KEY> and the settings file; the default lives in the read (Default below)
    // and the help states it.
    @Option(help: "Device listener, HOST:PORT (default: \(Default.deviceListen)).") var deviceListen: String?
    @Option(help: "SRP listener for BES nodes, HOST:PORT (default: \(Default.srpListen)).") var srpListen: String?
    @Option(help: "HTTP listener for /health and /metrics, HOST:PORT (default: \(Default.httpListen)).") var httpListen: String?
    @Option(help: "File of 'SRP_ID BASE64_KEY' lines: the SRP IDs this relay serves (required).") var srpKeys: String?
    @Option(help: "Lock an SRP ID out after more than this many connects in the window (default: \(Default.lockoutMaxConnects)).") var lockoutMaxConnects: Int?
    @Option(help: "Lockout window in seconds (default: \(Default.lockoutWindow)).") var lockoutWindow: Int?
    @Option(help: "Items stored per offline PIN or unregistered SRP ID (default: \(Default.storeMaxItems)).") var storeMaxItems: Int?
    @Option(help: "Seconds a stored item is kept (default: \(Default.storeMaxAge), 7 days as BES).") var storeMaxAge: Int?
    @Option(help: "Close an SRP connection that has sent nothing for this many milliseconds; nodes ping every third of their --relay-timeout-ms (default: \(Default.srpTimeoutMs)).") var srpTimeoutMs: Int?
    @Option(help: "Append a JSON-lines audit of SRP registrations and of each item's sending epoch to this file (for failover drills; off by default).") var auditLog: String?
    @Option(help: "trace, debug (also logs every setting read and where it came from, secrets redacted), info, notice, warning, error or critical (default: \(Default.logLevel)).") var logLevel: String?
    @Option(help: "Settings file of 'key = value' lines, keys named as these options without dashes (also BRAMBLE_CONFIG). Precedence: flags, then BRAMBLE_<KEY> environment variables, then the file, then the default.") var config: String?

    /// The settings' defaults: the reads pass them, and the options' help states them.
    enum Default {
        static let deviceListen = "127.0.0.1:4101"
        static let srpListen = "127.0.0.1:3101"
        static let httpListen = "127.0.0.1:4180"
        static let lockoutMaxConnects = 5
        static let lockoutWindow = 60
        static let storeMaxItems = 5
        static let storeMaxAge = 7 * 24 * 3600
        static let srpTimeoutMs = 3000
        static let logLevel = "info"
    }

    /// Every setting of the relay, with the value its flag gave (nil: not given).
    var flags: [String: (any SettingsFlagValue)?] {
        [
            "device-listen": deviceListen, "srp-listen": srpListen, "http-listen": httpListen,
            "srp-keys": srpKeys, "lockout-max-connects": lockoutMaxConnects, "lockout-window": lockoutWindow,
            "store-max-items": storeMaxItems, "store-max-age": storeMaxAge, "srp-timeout-ms": srpTimeoutMs,
            "audit-log": auditLog, "log-level": logLevel,
        ]
    }

    func run() async throws {
        let config: RelayServiceConfiguration
        do { config = try await relayConfiguration() } catch let failure as SettingsFailure { throw ValidationError(failure.description) }
        let logger = Logger(label: "bramble-relay")
        // swift-metrics bootstrapped once, with the registry the relay's /metrics emits.
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let group = ServiceGroup(services: [RelayService(configuration: config, logger: logger, registry: registry)],
                                 gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
    }

    /// Reads (flags, then BRAMBLE_<KEY>, then the settings file, then the default) and
    /// checks every setting; bootstraps logging on the way.
    private func relayConfiguration() async throws -> RelayServiceConfiguration {
        let settings = try DaemonSettings(flags: flags, configFile: config, secretFiles: [
            SecretFile(key: "secret.srp-keys", pathKey: "srp-keys", what: "SRP key", trimmed: false),
        ])
        BrambleLogging.bootstrap(level: try await settings.string("log-level", default: Default.logLevel))
        settings.logReads(to: Logger(label: "bramble-relay.settings"))
        let deviceListen = try await settings.string("device-listen", default: Default.deviceListen)
        let srpListen = try await settings.string("srp-listen", default: Default.srpListen)
        let httpListen = try await settings.string("http-listen", default: Default.httpListen)
        let srpKeys = try await settings.requiredString("srp-keys")
        let lockoutMaxConnects = try await settings.int("lockout-max-connects", default: Default.lockoutMaxConnects)
        let lockoutWindow = try await settings.int("lockout-window", default: Default.lockoutWindow)
        let storeMaxItems = try await settings.int("store-max-items", default: Default.storeMaxItems)
        let storeMaxAge = try await settings.int("store-max-age", default: Default.storeMaxAge)
        let srpTimeoutMs = try await settings.int("srp-timeout-ms", default: Default.srpTimeoutMs)
        let auditLog = try await settings.string("audit-log")

        var config = RelayServiceConfiguration()
        config.deviceListen = try Self.hostPort(deviceListen, "--device-listen")
        config.srpListen = try Self.hostPort(srpListen, "--srp-listen")
        config.httpListen = try Self.hostPort(httpListen, "--http-listen")
        config.keys = try SRPKeyFile.parse(try await settings.requiredSecret("secret.srp-keys"), path: srpKeys)
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
        return config
    }

    static func hostPort(_ text: String, _ flag: String) throws -> HostPort {
        guard let hp = HostPort(text) else { throw ValidationError("\(flag) must be HOST:PORT, got '\(text)'") }
        return hp
    }
}
