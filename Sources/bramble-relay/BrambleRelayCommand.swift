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
            BES nodes connect to the SRP listener and register their SRP ID at an epoch,
            proving they hold the SRP key (challenge–response, the key never crosses the
            wire); the serving node then registers a relay key for each of its devices. A
            device connects to the device listener and proves its PIN with that key in
            answer to a fresh challenge; one PIN per connection. A higher epoch displaces
            the current session; a lower one is refused. Items are stored and forwarded
            while a device is offline or no node is registered, bounded in count, bytes and
            age. Connections are capped in all, per source address and while not yet
            authenticated; hellos time out and idle devices are closed.

            All three listeners speak TLS with the relay's certificate (tls-cert, tls-key;
            HTTPS for /health and /metrics); on the SRP listener a node must present a
            certificate of the private CA (tls-ca). plaintext = yes turns TLS off, with a
            warning.

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
    @Option(help: "Bytes of stored items in all, in MiB (default: \(Default.storeMaxMiB)).") var storeMaxMib: Int?
    @Option(help: "Connections in all, devices and nodes (default: \(Default.maxConnections)).") var maxConnections: Int?
    @Option(help: "Connections from one source address (default: \(Default.maxConnectionsPerSource)).") var maxConnectionsPerSource: Int?
    @Option(help: "Connections not yet authenticated, in all (default: \(Default.maxUnauthenticated)).") var maxUnauthenticated: Int?
    @Option(help: "Connections not yet authenticated from one source address (default: \(Default.maxUnauthenticatedPerSource)).") var maxUnauthenticatedPerSource: Int?
    @Option(help: "Milliseconds a device has to prove its PIN after connecting (default: \(Default.helloTimeoutMs)).") var helloTimeoutMs: Int?
    @Option(help: "Close a device connection silent for this many seconds; devices ping every minute (default: \(Default.deviceIdleTimeout)).") var deviceIdleTimeout: Int?
    @Option(help: "Tell a node a device came online at most once per this many milliseconds; each makes the node resend what is in flight (default: \(Default.presenceIntervalMs)).") var presenceIntervalMs: Int?
    @Option(help: "The private CA's certificate (PEM): nodes' client certificates must chain to it.") var tlsCa: String?
    @Option(help: "This relay's certificate (PEM), for its IP address or name; devices and nodes verify it.") var tlsCert: String?
    @Option(help: "This relay's private key (PEM, mode 0600).") var tlsKey: String?
    @Option(help: "yes: run the device and SRP listeners without TLS (a warning is logged); no (default) needs tls-ca, tls-cert and tls-key.") var plaintext: String?
    @Option(help: "Mail domains whose users may activate devices over the air through this relay, comma-separated (default: none, no activation over the air).") var activationDomains: String?
    @Option(help: "The mail server's SMTP listener, HOST:PORT, that activation requests are mailed to (as BES's infrastructure did); needed with activation-domains. TLS from the first byte against tls-ca unless plaintext = yes.") var activationSmtp: String?
    @Option(help: "Envelope sender and From of activation request mails (default: activation@ the first activation domain).") var activationSender: String?
    @Option(help: "Activation requests mailed to one address in a minute, at most (default: \(Default.activationMaxPerAddress)).") var activationMaxPerAddress: Int?
    @Option(help: "Activation requests taken from one source address in a minute, at most (default: \(Default.activationMaxPerSource)).") var activationMaxPerSource: Int?
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
        static let storeMaxMiB = 64
        static let maxConnections = 20_000
        static let maxConnectionsPerSource = 2_000
        static let maxUnauthenticated = 2_000
        static let maxUnauthenticatedPerSource = 100
        static let helloTimeoutMs = 10_000
        static let deviceIdleTimeout = 180
        static let presenceIntervalMs = 2_000
        static let logLevel = "info"
        static let activationMaxPerAddress = 10
        static let activationMaxPerSource = 30
    }

    /// Every setting of the relay, with the value its flag gave (nil: not given).
    var flags: [String: (any SettingsFlagValue)?] {
        [
            "device-listen": deviceListen, "srp-listen": srpListen, "http-listen": httpListen,
            "srp-keys": srpKeys, "lockout-max-connects": lockoutMaxConnects, "lockout-window": lockoutWindow,
            "store-max-items": storeMaxItems, "store-max-age": storeMaxAge, "srp-timeout-ms": srpTimeoutMs,
            "audit-log": auditLog, "log-level": logLevel, "store-max-mib": storeMaxMib, "max-connections": maxConnections,
            "max-connections-per-source": maxConnectionsPerSource, "max-unauthenticated": maxUnauthenticated,
            "max-unauthenticated-per-source": maxUnauthenticatedPerSource, "hello-timeout-ms": helloTimeoutMs,
            "device-idle-timeout": deviceIdleTimeout, "presence-interval-ms": presenceIntervalMs,
            "tls-ca": tlsCa, "tls-cert": tlsCert, "tls-key": tlsKey, "plaintext": plaintext,
            "activation-domains": activationDomains, "activation-smtp": activationSmtp, "activation-sender": activationSender,
            "activation-max-per-address": activationMaxPerAddress, "activation-max-per-source": activationMaxPerSource,
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
        if let files = try await settings.tlsFiles(logger: Logger(label: "bramble-relay")) {
            do {
                config.tls = .init(devices: try files.serverContext(requireClientCertificate: false),
                                   srp: try files.serverContext(requireClientCertificate: true),
                                   http: try files.serverConfiguration(requireClientCertificate: false))
            } catch {
                throw ValidationError("\(error)")
            }
        }

        func limit(_ key: String, _ fallback: Int, _ range: ClosedRange<Int>) async throws -> Int {
            let value = try await settings.int(key, default: fallback)
            guard range.contains(value) else { throw ValidationError("--\(key) must be \(range.lowerBound)…\(range.upperBound), got \(value)") }
            return value
        }
        config.relay.storeMaxBytes = try await limit("store-max-mib", Default.storeMaxMiB, 1...65_536) << 20
        config.relay.maxConnections = try await limit("max-connections", Default.maxConnections, 1...1_000_000)
        config.relay.maxConnectionsPerSource = try await limit("max-connections-per-source", Default.maxConnectionsPerSource, 1...1_000_000)
        config.relay.maxUnauthenticated = try await limit("max-unauthenticated", Default.maxUnauthenticated, 1...1_000_000)
        config.relay.maxUnauthenticatedPerSource = try await limit("max-unauthenticated-per-source", Default.maxUnauthenticatedPerSource, 1...1_000_000)
        config.relay.helloTimeoutMs = UInt64(try await limit("hello-timeout-ms", Default.helloTimeoutMs, 100...600_000))
        config.relay.deviceIdleMs = UInt64(try await limit("device-idle-timeout", Default.deviceIdleTimeout, 1...86_400)) * 1000
        config.relay.presenceMinIntervalMs = UInt64(try await limit("presence-interval-ms", Default.presenceIntervalMs, 0...600_000))

        let domains = (try await settings.string("activation-domains") ?? "").split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty }
        let smtp = try await settings.string("activation-smtp")
        guard domains.isEmpty == (smtp == nil) else {
            throw ValidationError("activation-domains and activation-smtp go together: the domains whose users activate over the air, and where their requests are mailed")
        }
        if let smtp, let first = domains.first {
            guard domains.allSatisfy({ $0.contains(".") && !$0.contains("@") && !$0.contains(" ") }) else {
                throw ValidationError("activation-domains must be mail domains such as example.com, got '\(domains.joined(separator: ","))'")
            }
            let sender = try await settings.string("activation-sender") ?? "activation@\(first)"
            guard sender.contains("@"), !sender.contains(where: { $0 == " " || $0 == "<" || $0 == ">" || $0.isNewline }) else {
                throw ValidationError("activation-sender must be an e-mail address, got '\(sender)'")
            }
            config.relay.activationDomains = Set(domains)
            config.relay.activationMaxPerAddress = try await limit("activation-max-per-address", Default.activationMaxPerAddress, 1...100_000)
            config.relay.activationMaxPerSource = try await limit("activation-max-per-source", Default.activationMaxPerSource, 1...100_000)
            do {
                config.activationSMTP = .init(smtp: try Self.hostPort(smtp, "--activation-smtp"),
                                              tls: try await settings.string("tls-ca").map { try TLSFiles(ca: $0).clientContext() }, sender: sender)
            } catch let error as ValidationError { throw error } catch { throw ValidationError("\(error)") }
        }
        return config
    }

    static func hostPort(_ text: String, _ flag: String) throws -> HostPort {
        guard let hp = HostPort(text) else { throw ValidationError("\(flag) must be HOST:PORT, got '\(text)'") }
        return hp
    }
}
