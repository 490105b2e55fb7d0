import ArgumentParser
import BrambleCore
import BrambleNet
import BrambleServer
import Foundation
import Logging

/// The node's settings, read through `DaemonSettings` (flags, then `BRAMBLE_<KEY>`, then
/// the settings file, then the defaults below), and their checks.
extension BrambleServerCommand {
    /// The settings' defaults: the reads pass them, and the options' help states them.
    enum Default {
        static let node = "node-a"
        static let srpID = "bramble"
        static let leaseMs = 1000
        static let heartbeatMs = 200
        static let relay = "127.0.0.1:3101"
        static let relayTimeoutMs = 600
        static let httpListen = "127.0.0.1:8080"
        static let dbHost = "127.0.0.1"
        static let dbPort = 5432
        static let dbUser = "bramble"
        static let dbName = "bramble"
        static let maxInFlight = 5
        static let resendAfter = 4 * 3600
        static let logLevel = "info"
    }

    /// The secrets, each read from the file its setting names.
    static let secretFiles = [
        SecretFile(key: "secret.srp-keys", pathKey: "srp-key-file", what: "SRP key", trimmed: false),
        SecretFile(key: "secret.admin-token", pathKey: "admin-token-file", what: "admin token"),
        SecretFile(key: "secret.db-password", pathKey: "db-password-file", what: "database password"),
    ]

    /// Every setting of the node, with the value its flag gave (nil: not given).
    var flags: [String: (any SettingsFlagValue)?] {
        [
            "node": node, "srp-id": srpID, "pair": pair, "advertise-url": advertiseURL,
            "lease-ms": leaseMs, "heartbeat-ms": heartbeatMs, "srp-key-file": srpKeyFile,
            "relay": relay, "relay-timeout-ms": relayTimeoutMs, "http-listen": httpListen,
            "admin-token-file": adminTokenFile, "db-host": dbHost, "db-port": dbPort,
            "patroni-api": patroniApi, "db-user": dbUser, "db-name": dbName,
            "db-password-file": dbPasswordFile, "max-in-flight": maxInFlight,
            "resend-after": resendAfter, "log-level": logLevel,
        ]
    }

    /// Reads and checks every setting; bootstraps logging on the way.
    func nodeConfiguration() async throws -> NodeConfiguration {
        do { return try await readNodeConfiguration() } catch let failure as SettingsFailure { throw ValidationError(failure.description) }
    }

    private func readNodeConfiguration() async throws -> NodeConfiguration {
        let settings = try DaemonSettings(flags: flags, configFile: config, secretFiles: Self.secretFiles)
        BrambleLogging.bootstrap(level: try await settings.string("log-level", default: Default.logLevel))
        settings.logReads(to: Logger(label: "bramble-server.settings"))
        let node = try await settings.string("node", default: Default.node)
        let srpID = try await settings.string("srp-id", default: Default.srpID)
        let pair = try await settings.string("pair")
        let advertiseURL = try await settings.string("advertise-url")
        let leaseMs = try await settings.int("lease-ms", default: Default.leaseMs)
        let heartbeatMs = try await settings.int("heartbeat-ms", default: Default.heartbeatMs)
        let srpKeyFile = try await settings.requiredString("srp-key-file")
        let relay = try await settings.string("relay", default: Default.relay)
        let relayTimeoutMs = try await settings.int("relay-timeout-ms", default: Default.relayTimeoutMs)
        let httpListen = try await settings.string("http-listen", default: Default.httpListen)
        let adminTokenFile = try await settings.requiredString("admin-token-file")
        let dbHost = try await settings.string("db-host", default: Default.dbHost)
        let dbPort = try await settings.int("db-port", default: Default.dbPort)
        let patroniApi = try await settings.string("patroni-api")
        let dbUser = try await settings.string("db-user", default: Default.dbUser)
        let dbName = try await settings.string("db-name", default: Default.dbName)
        let maxInFlight = try await settings.int("max-in-flight", default: Default.maxInFlight)
        let resendAfter = try await settings.int("resend-after", default: Default.resendAfter)

        let keys = try SRPKeyFile.parse(try await settings.requiredSecret("secret.srp-keys"), path: srpKeyFile)
        guard let key = keys[srpID] else { throw ValidationError("\(srpKeyFile) has no key for SRP ID '\(srpID)'") }
        let token = try await settings.requiredSecret("secret.admin-token")
        guard token.count >= 16 else { throw ValidationError("the admin token in \(adminTokenFile) must be at least 16 characters") }
        var config = NodeConfiguration(srpKey: key, adminToken: token)
        guard Self.isName(node) else { throw ValidationError("--node must be 1–64 letters, digits, '.', '-' or '_', got '\(node)'") }
        config.node = node
        config.srpID = srpID
        config.pair = pair ?? srpID
        guard Self.isName(config.pair) else { throw ValidationError("--pair must be 1–64 letters, digits, '.', '-' or '_'") }
        config.advertisedURL = advertiseURL
        guard (20...60_000).contains(heartbeatMs) else { throw ValidationError("--heartbeat-ms must be 20…60000") }
        guard leaseMs >= 2 * heartbeatMs, leaseMs <= 600_000 else {
            throw ValidationError("--lease-ms must be at least twice --heartbeat-ms (\(heartbeatMs)) and at most 600000, got \(leaseMs)")
        }
        config.leaseMs = leaseMs
        config.heartbeatIntervalMs = heartbeatMs
        guard let relayAddress = HostPort(relay) else { throw ValidationError("--relay must be HOST:PORT, got '\(relay)'") }
        guard let http = HostPort(httpListen) else { throw ValidationError("--http-listen must be HOST:PORT, got '\(httpListen)'") }
        config.relay = relayAddress
        guard (30...60_000).contains(relayTimeoutMs) else { throw ValidationError("--relay-timeout-ms must be 30…60000, got \(relayTimeoutMs)") }
        config.relayTimeoutMs = UInt64(relayTimeoutMs)
        config.httpListen = http
        var hosts: [DatabaseHosts.Host] = []
        for spec in dbHost.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            guard let address = spec.contains(":") ? HostPort(spec) : HostPort(host: spec, port: dbPort), !spec.isEmpty else {
                throw ValidationError("--db-host must be HOST[:PORT][,HOST[:PORT]…], got '\(dbHost)'")
            }
            hosts.append(.init(address: address))
        }
        if let patroniApi {
            let urls = patroniApi.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard urls.count == hosts.count, urls.allSatisfy({ $0.hasPrefix("http://") || $0.hasPrefix("https://") }) else {
                throw ValidationError("--patroni-api needs one http(s) URL per --db-host entry (\(hosts.count))")
            }
            for i in hosts.indices { hosts[i].patroniURL = urls[i].hasSuffix("/") ? String(urls[i].dropLast()) : urls[i] }
        }
        config.database.hosts = hosts
        config.database.user = dbUser
        config.database.name = dbName
        config.database.password = try await settings.secret("secret.db-password")
        guard (1...64).contains(maxInFlight) else { throw ValidationError("--max-in-flight must be 1…64") }
        guard resendAfter >= 1 else { throw ValidationError("--resend-after must be at least 1 second") }
        config.dispatcher.maxInFlight = maxInFlight
        config.dispatcher.resendAfter = .seconds(resendAfter)
        return config
    }
}
