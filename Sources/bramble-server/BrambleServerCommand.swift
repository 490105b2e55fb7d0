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
        abstract: "One Bramble node: Router, Dispatcher, push and admin API over the configuration database.",
        discussion: """
            The node applies the database migrations it needs, takes a new epoch for its SRP
            ID, registers with the relay and delivers every queued item, compressed and
            encrypted under each device's master key. Secrets are read from files, never
            from flags: the SRP key file (lines 'SRP_ID BASE64_KEY', as the relay's), the
            admin token file, and optionally the database password file.
            """)

    @Option(help: "This node's name.") var node = "node-a"
    @Option(help: "SRP ID of this node's pair.") var srpID = "bramble"
    @Option(help: "File of 'SRP_ID BASE64_KEY' lines holding this SRP ID's key.") var srpKeyFile: String
    @Option(help: "Relay SRP listener, HOST:PORT.") var relay = "127.0.0.1:3101"
    @Option(help: "HTTP listener (health, metrics, push, admin), HOST:PORT.") var httpListen = "127.0.0.1:8080"
    @Option(help: "File holding the bearer token for the push and admin APIs.") var adminTokenFile: String
    @Option(help: "Configuration database host.") var dbHost = "127.0.0.1"
    @Option(help: "Configuration database port.") var dbPort = 5432
    @Option(help: "Configuration database role.") var dbUser = "bramble"
    @Option(help: "Configuration database name.") var dbName = "bramble"
    @Option(help: "File holding the database password, if one is needed.") var dbPasswordFile: String?
    @Option(help: "Unacknowledged items in flight per device (BES: 5).") var maxInFlight = 5
    @Option(help: "Seconds before an unacknowledged item is sent again (BES: 4 h).") var resendAfter = 4 * 3600
    @Option(help: "trace, debug, info, notice, warning, error or critical.") var logLevel: String?

    func run() async throws {
        BrambleLogging.bootstrap(level: logLevel)
        let keys = try SRPKeyFile.load(srpKeyFile)
        guard let key = keys[srpID] else { throw ValidationError("\(srpKeyFile) has no key for SRP ID '\(srpID)'") }
        let token = try Self.secret(adminTokenFile, "admin token")
        guard token.count >= 16 else { throw ValidationError("the admin token in \(adminTokenFile) must be at least 16 characters") }
        var config = NodeConfiguration(srpKey: key, adminToken: token)
        config.node = node
        config.srpID = srpID
        guard let relayAddress = HostPort(relay) else { throw ValidationError("--relay must be HOST:PORT, got '\(relay)'") }
        guard let http = HostPort(httpListen) else { throw ValidationError("--http-listen must be HOST:PORT, got '\(httpListen)'") }
        config.relay = relayAddress
        config.httpListen = http
        config.database.host = dbHost
        config.database.port = dbPort
        config.database.user = dbUser
        config.database.name = dbName
        config.database.password = try dbPasswordFile.map { try Self.secret($0, "database password") }
        guard (1...64).contains(maxInFlight) else { throw ValidationError("--max-in-flight must be 1…64") }
        guard resendAfter >= 1 else { throw ValidationError("--resend-after must be at least 1 second") }
        config.dispatcher.maxInFlight = maxInFlight
        config.dispatcher.resendAfter = .seconds(resendAfter)

        let logger = Logger(label: "bramble-server")
        let group = ServiceGroup(services: [NodeService(configuration: config, logger: logger)],
                                 gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
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
