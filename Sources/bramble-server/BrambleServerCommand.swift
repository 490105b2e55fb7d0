import ArgumentParser
import BrambleCore
import BrambleNet
import BrambleServer
import Foundation
import Logging
import ServiceLifecycle

@main
struct BrambleServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bramble-server",
        abstract: "One Bramble node of an HA pair: Router, Dispatcher, push and admin API over the configuration database.",
        discussion: """
            The node applies the database migrations it needs and starts as a standby of its pair. Its HA manager renews a lease in the configuration database every heartbeat; the node holding the lease is the primary: it registers the SRP ID with the relay at the lease's epoch and delivers every queued item, compressed and encrypted under each device's master key. When the primary's heartbeat goes stale, its lease expires, its health score falls below the failover threshold, or an operator runs `bramble failover`, the standby takes the lease (the epoch goes up by one) and the relay then refuses the old primary. Both nodes accept pushes. SIGTERM or SIGINT demote the node first (SRP link closed, lease released).

            Secrets are read from files, never from flags: the SRP key file (lines 'SRP_ID BASE64_KEY', as the relay's), the admin token file, and optionally the database password file.
            """)

    @Option(help: "This node's name.") var node = "node-a"
    @Option(help: "SRP ID of this node's pair.") var srpID = "bramble"
    @Option(help: "HA pair this node belongs to (default: the SRP ID).") var pair: String?
    @Option(help: "URL at which the peer node and `bramble` reach this node (default: http://HTTP-LISTEN).") var advertiseURL: String?
    @Option(help: "Milliseconds the HA lease lasts after each renewal.") var leaseMs = 1000
    @Option(help: "Milliseconds between heartbeats (lease renewal, observation, heartbeat row).") var heartbeatMs = 200
    @Option(help: "File of 'SRP_ID BASE64_KEY' lines holding this SRP ID's key.") var srpKeyFile: String
    @Option(help: "Relay SRP listener, HOST:PORT.") var relay = "127.0.0.1:3101"
    @Option(help: "Milliseconds without a frame from the relay after which the SRP link counts as lost (the node pings every third of it). A relay gone silent makes the primary's wireless network unhealthy at once; one that closes the link or refuses it gets a 1.5 s grace.") var relayTimeoutMs = 600
    @Option(help: "HTTP listener (health, metrics, push, admin), HOST:PORT.") var httpListen = "127.0.0.1:8080"
    @Option(help: "File holding the bearer token for the push and admin APIs.") var adminTokenFile: String
    @Option(help: "Configuration database host, or HOST[:PORT],HOST[:PORT],… for each member of a Patroni cluster; the node writes to whichever is the primary.") var dbHost = "127.0.0.1"
    @Option(help: "Configuration database port (for hosts given without one).") var dbPort = 5432
    @Option(help: "Patroni REST API URL of each database host, comma-separated in the same order (optional; makes finding the primary safe when a Patroni dies).") var patroniApi: String?
    @Option(help: "Configuration database role.") var dbUser = "bramble"
    @Option(help: "Configuration database name.") var dbName = "bramble"
    @Option(help: "File holding the database password, if one is needed.") var dbPasswordFile: String?
    @Option(help: "Unacknowledged items in flight per device (BES: 5).") var maxInFlight = 5
    @Option(help: "Seconds before an unacknowledged item is sent again (BES: 4 h).") var resendAfter = 4 * 3600
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
        let keys = try SRPKeyFile.load(srpKeyFile)
        guard let key = keys[srpID] else { throw ValidationError("\(srpKeyFile) has no key for SRP ID '\(srpID)'") }
        let token = try Self.secret(adminTokenFile, "admin token")
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
        config.database.password = try dbPasswordFile.map { try Self.secret($0, "database password") }
        guard (1...64).contains(maxInFlight) else { throw ValidationError("--max-in-flight must be 1…64") }
        guard resendAfter >= 1 else { throw ValidationError("--resend-after must be at least 1 second") }
        config.dispatcher.maxInFlight = maxInFlight
        config.dispatcher.resendAfter = .seconds(resendAfter)

        try await Node.run(configuration: config, logger: Logger(label: "bramble-server"))
    }

    static func isName(_ s: String) -> Bool {
        (1...64).contains(s.count) && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
    }

    static func secret(_ path: String, _ what: String) throws -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ValidationError("cannot read the \(what) file \(path)")
        }
        let value = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !value.isEmpty else { throw ValidationError("the \(what) file \(path) is empty") }
        return value
    }
}
