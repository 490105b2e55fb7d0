import AsyncHTTPClient
import BrambleCore
import BrambleAPI
import BrambleNet
@preconcurrency import Crypto
import Foundation
import NIOSSL
import NIOCore
import PostgresNIO

/// A real Bramble installation on loopback for one test: a private PostgreSQL (via
/// scripts/pg-private, which installs PostgreSQL 15 if it is missing), a relay, one node
/// or an HA pair, and devices as separate processes, all from this checkout's debug build.
final class TestCluster: @unchecked Sendable {
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }  // Tests/BrambleTestSupport/TestCluster.swift
        return url.path
    }()
    static let bin = root + "/.build/debug"

    struct Options {
        var lockoutWindowSeconds = 60
        var resendAfterSeconds = 4 * 3600
        /// Extra SRP IDs the relay accepts (for tests that play a server themselves).
        var extraSRPIDs: [String] = []
        /// The nodes to start; two make an HA pair. The first one started becomes primary.
        var nodes = ["node-a"]
        /// Nodes whose SRP link goes through a `LinkCutter` the test can cut.
        var cuttableLinks: Set<String> = []
        /// Nodes told a relay address where nothing listens (their relay is unreachable).
        var unreachableRelay: Set<String> = []
        var leaseMs = 1_000
        var heartbeatMs = 200
        var lockoutMaxConnects = 5
        /// The configuration database as etcd ×3 and PostgreSQL ×2 under Patroni
        /// (scripts/pg-patroni) instead of one private PostgreSQL.
        var patroni = false
        /// A mail host (scripts/mail-private: Postfix and Dovecot, mailboxes
        /// demo1…demo4@example.test) whose notifications go to the nodes, which watch it.
        var mail = false
        /// Whether Dovecot tells the nodes of new mail (else only the sweep finds it).
        var mailNotifications = true
        var mailSweepMs = 30_000
        var mailChunkBytes = 2048
        var mailMaxTextBytes = 32 * 1024
        /// A policy service the submission service asks before it answers a final dot.
        var submissionPolicy: SubmissionPolicy?
        /// An IM host (scripts/im-private: Prosody, accounts demo1…demo4@example.test and
        /// im-sender@example.test in one shared roster group) the nodes log devices in to.
        var im = false
        /// Accounts imbench1…imbenchN@example.test on the IM host too.
        var imExtraUsers = 0
        /// The nodes' `--im-session-limit` (nil: their default).
        var imSessionLimit: Int?
        /// The nodes' `--mail-device-delete` (nil: their default, expunge).
        var mailDeviceDelete: String?
        /// More `bramble-relay` flags (caps and timeouts).
        var relayArguments: [String] = []
        public init() {}
    }

    /// The mail host, once started (`Options.mail`).
    private(set) var mailHost: TestMailHost?
    /// The IM host, once started (`Options.im`).
    private(set) var imHost: TestIMHost?

    let dir: String
    let pgPort: Int
    let devicePort: Int
    let srpPort: Int
    let relayHTTPPort: Int
    let nodeHTTPPorts: [String: Int]
    /// A port where nothing listens, for `Options.unreachableRelay`.
    let deadPort: Int
    let token: String
    let srpKeys: [String: SymmetricKey]
    /// The nodes' key-encryption key (in `dir/kek`): what a test's own `ConfigStore` opens
    /// the stored master keys with.
    let keyEncryptionKey: SymmetricKey
    let options: Options
    private(set) var relay: ChildProcess?
    private(set) var nodes: [String: ChildProcess] = [:]
    private(set) var cutters: [String: LinkCutter] = [:]
    private var devices: [String: ChildProcess] = [:]
    /// Trusts the cluster's CA (the nodes' and the relay's HTTPS).
    let http: HTTPClient

    private init(options: Options) throws {
        self.options = options
        dir = NSTemporaryDirectory() + "bramble-test-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o711])
        var ports = try Self.freePorts(5 + options.nodes.count)
        pgPort = ports.removeFirst(); devicePort = ports.removeFirst(); srpPort = ports.removeFirst()
        relayHTTPPort = ports.removeFirst(); deadPort = ports.removeFirst()
        var http: [String: Int] = [:]
        for name in options.nodes { http[name] = ports.removeFirst() }
        nodeHTTPPorts = http
        token = UUID().uuidString + UUID().uuidString
        var keys: [String: SymmetricKey] = ["bramble": SymmetricKey(size: .bits256)]
        for id in options.extraSRPIDs { keys[id] = SymmetricKey(size: .bits256) }
        srpKeys = keys
        try SecretFilePermissions.create(dir + "/srp-keys", bytes: Array(keys.map { "\($0.key) \($0.value.base64)" }.joined(separator: "\n").utf8),
                                         what: "SRP key")
        try SecretFilePermissions.create(dir + "/admin-token", bytes: Array(token.utf8), what: "admin token")
        keyEncryptionKey = SymmetricKey(size: .bits256)
        try SecretFilePermissions.create(dir + "/kek", bytes: Array(keyEncryptionKey.base64.utf8), what: "key-encryption key")
        tls = try TestCA.make(in: dir + "/tls", hosts: ["relay"] + options.nodes)
        deviceTLS = try tls.deviceContext()
        self.http = HTTPClient(eventLoopGroupProvider: .singleton,
                          configuration: .init(tlsConfiguration: try TLSFiles(ca: tls.ca).clientConfiguration()))
    }

    /// The cluster's private CA and the relay's and nodes' certificates.
    let tls: TestCA
    /// What a device (or a test playing one) connects to the relay with.
    let deviceTLS: NIOSSLContext
    /// What a test playing a node connects to the relay's SRP listener with (node-a's certificate).
    func nodeTLS() throws -> NIOSSLContext { try tls.files(options.nodes[0]).clientContext() }

    /// Starts everything, runs `body`, and stops everything whether or not `body` throws.
    static func with<T>(_ options: Options = Options(), _ body: (TestCluster) async throws -> T) async throws -> T {
        let cluster = try TestCluster(options: options)
        do {
            try await cluster.start()
            let result = try await body(cluster)
            try await cluster.stop()
            return result
        } catch {
            cluster.dumpLogs()
            try? await cluster.stop()
            throw error
        }
    }

    /// The first node's API.
    var nodeURL: String { nodeURL(options.nodes[0]) }
    func nodeURL(_ name: String) -> String { "https://127.0.0.1:\(nodeHTTPPorts[name]!)" }
    /// What the `bramble` CLI needs to reach `urls` (comma-separated): the token, the URLs
    /// and the CA their certificates chain to.
    func cliEnvironment(_ urls: String) -> [String: String] {
        ["BRAMBLE_TOKEN": token, "BRAMBLE_URL": urls, "BRAMBLE_CA_FILE": tls.ca]
    }

    /// The relay's `/health` and `/metrics` (HTTPS).
    var relayHTTPURL: String { "https://127.0.0.1:\(relayHTTPPort)" }
    var node: ChildProcess? { nodes[options.nodes[0]] }
    var admin: BrambleClient { BrambleClient(baseURL: nodeURL, token: token, http: http) }
    func admin(_ name: String) -> BrambleClient { BrambleClient(baseURL: nodeURL(name), token: token, http: http) }
    var relayDevices: HostPort { HostPort(host: "127.0.0.1", port: devicePort) }
    var relaySRP: HostPort { HostPort(host: "127.0.0.1", port: srpPort) }

    private func start() async throws {
        guard FileManager.default.isExecutableFile(atPath: Self.bin + "/bramble-server") else {
            throw SetupError("no debug build in \(Self.bin): run `swift build` (or `make test`) first")
        }
        if options.patroni {
            try startPatroni()
        } else {
            try runCommand(Self.root + "/scripts/pg-private", ["start", dir + "/pg", "\(pgPort)"], environment: tls.environment)
        }
        if options.mail { try startMailHost() }
        if options.im { imHost = try TestIMHost.start(in: dir + "/im", ca: tls, extraUsers: options.imExtraUsers) }
        try startRelay()
        try await waitFor("relay health") { try await self.get(self.relayHTTPURL + "/health").status == 200 }
        for name in options.cuttableLinks {
            cutters[name] = try await LinkCutter.start(forwardingTo: relaySRP)
        }
        // The first node alone first, so it is the one that takes the lease.
        try startNode(options.nodes[0])
        try await waitFor("\(options.nodes[0]) primary", seconds: 60) { try await self.get(self.nodeURL + "/primary").status == 200 }
        for name in options.nodes.dropFirst() {
            try startNode(name)
            // A standby that can reach the relay is ready to take over; one that cannot
            // (on purpose) is merely a standby.
            let ready = options.unreachableRelay.contains(name) ? "/standby" : "/health/ready"
            try await waitFor("\(name) standby", seconds: 60) { try await self.get(self.nodeURL(name) + ready).status == 200 }
        }
    }

    private func startMailHost() throws {
        let urls = options.mailNotifications ? options.nodes.map { nodeURL($0) + MailAPI.notify } : []
        mailHost = try TestMailHost.start(in: dir + "/mail", notifyURLs: urls, ca: tls, submissionPolicy: options.submissionPolicy?.postfixAddress)
    }

    /// Sends a mail through Postfix; returns once Postfix answered 250.
    func sendMail(to: String, subject: String, body: String, messageID: String, headers: String = "") async throws {
        let message = """
            From: Sender <sender@outside.test>
            To: \(to)
            Subject: \(subject)
            Message-ID: \(messageID)
            \(headers.isEmpty ? "" : headers + "\n")MIME-Version: 1.0
            Content-Type: text/plain; charset=utf-8

            \(body)
            """
        try await sendRawMail(to: to, message)
    }

    /// Sends a message as it is (its own headers) through Postfix's public port.
    func sendRawMail(to: String, _ message: String) async throws {
        guard let mailHost else { throw SetupError("this cluster has no mail host (Options.mail)") }
        let reply = try await SMTPSession.with(to: mailHost.smtp, tls: mailHost.tls) { session in
            try await session.send(from: "sender@outside.test", to: [to], message: message)
        }
        guard reply.code == 250 else { throw SetupError("Postfix answered \(reply.code) \(reply.text)") }
    }


    func startRelay() throws {
        relay = try ChildProcess(name: "relay", executable: Self.bin + "/bramble-relay", arguments: [
            "--srp-keys", dir + "/srp-keys", "--device-listen", "127.0.0.1:\(devicePort)",
            "--srp-listen", "127.0.0.1:\(srpPort)", "--http-listen", "127.0.0.1:\(relayHTTPPort)",
            "--lockout-window", "\(options.lockoutWindowSeconds)", "--lockout-max-connects", "\(options.lockoutMaxConnects)",
            "--audit-log", dir + "/relay-audit.jsonl",
        ] + tls.flags("relay") + activationArguments + options.relayArguments, logPath: dir + "/relay.log")
    }

    /// With a mail host, the relay mails activation requests for example.test to it.
    private var activationArguments: [String] {
        guard let mailHost else { return [] }
        return ["--activation-domains", "example.test", "--activation-smtp", mailHost.smtp.description]
    }

    func startNode(_ name: String) throws {
        nodes[name] = try ChildProcess(name: name, executable: Self.bin + "/bramble-server",
                                       arguments: nodeArguments(name, httpPort: nodeHTTPPorts[name]!), logPath: "\(dir)/\(name).log")
    }

    /// Patroni's ports: PostgreSQL `patroniPGPort` and +1, REST `patroniAPIPort` and +1.
    private(set) var patroniPGPort = 0
    private(set) var patroniAPIPort = 0
    func patroniURL(_ member: Int) -> String { "https://127.0.0.1:\(patroniAPIPort + member)" }

    /// scripts/pg-patroni needs runs of adjacent ports; try a few random bases.
    private func startPatroni() throws {
        var lastError: (any Error)?
        for _ in 0..<4 {
            let base = Int.random(in: 20_000...29_000) / 10 * 10
            let env = ["BRAMBLE_ETCD_PORT": "\(base)", "BRAMBLE_PG_PORT": "\(base + 6)", "BRAMBLE_PATRONI_PORT": "\(base + 8)"]
            do {
                try runCommand(Self.root + "/scripts/pg-patroni", ["start", dir + "/patroni"], environment: env.merging(tls.environment) { $1 })
                patroniPGPort = base + 6
                patroniAPIPort = base + 8
                patroniEnvironment = env
                return
            } catch {
                lastError = error
                _ = try? runCommand(Self.root + "/scripts/pg-patroni", ["stop", dir + "/patroni"], environment: env)
                try? FileManager.default.removeItem(atPath: dir + "/patroni")
            }
        }
        throw lastError!
    }
    private var patroniEnvironment: [String: String] = [:]

    /// The database's directory (scripts/pg-private's or scripts/pg-patroni's).
    var databaseDir: String { dir + (options.patroni ? "/patroni" : "/pg") }
    /// The file holding the bramble role's password (made by the database's script, 0600).
    var databasePasswordFile: String { databaseDir + "/bramble-password" }
    var databasePassword: String {
        get throws { try String(contentsOfFile: databasePasswordFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) }
    }

    /// How a test connects to the (single, `pg-private`) database as a node does: role
    /// bramble with its password, over TLS verified against the cluster's CA.
    func databaseConfiguration(database: String = "bramble") throws -> PostgresClient.Configuration {
        PostgresClient.Configuration(host: "127.0.0.1", port: pgPort, username: "bramble", password: try databasePassword,
                                     database: database, tls: .require(try TLSFiles(ca: tls.ca).clientConfiguration()))
    }

    /// The superuser, over the database's Unix socket (its directory is the database
    /// user's, mode 0700: the tests run as root); TCP takes no superuser without a password.
    func superuserConfiguration(database: String = "bramble") -> PostgresClient.Configuration {
        PostgresClient.Configuration(unixSocketPath: "\(dir)/pg/socket/.s.PGSQL.\(pgPort)", username: "postgres", password: nil, database: database)
    }

    func nodeArguments(_ name: String, httpPort: Int) -> [String] {
        let database = (options.patroni
            ? ["--db-host", "127.0.0.1:\(patroniPGPort),127.0.0.1:\(patroniPGPort + 1)", "--patroni-api", "\(patroniURL(0)),\(patroniURL(1))"]
            : ["--db-port", "\(pgPort)"]) + ["--db-password-file", databasePasswordFile]
        let relayPort = options.unreachableRelay.contains(name) ? deadPort : cutters[name]?.port ?? srpPort
        return [
            "--node", name, "--srp-key-file", dir + "/srp-keys", "--relay", "127.0.0.1:\(relayPort)",
            "--http-listen", "127.0.0.1:\(httpPort)", "--admin-token-file", dir + "/admin-token", "--key-encryption-key-file", dir + "/kek",
            "--resend-after", "\(options.resendAfterSeconds)",
            "--lease-ms", "\(options.leaseMs)", "--heartbeat-ms", "\(options.heartbeatMs)",
        ] + database + mailArguments + imArguments + tls.flags(name)
    }

    private var imArguments: [String] {
        guard let im = imHost else { return [] }
        return ["--xmpp", im.xmpp.description, "--xmpp-domain", im.domain] + (options.imSessionLimit.map { ["--im-session-limit", "\($0)"] } ?? [])
    }

    private var mailArguments: [String] {
        guard let mail = mailHost else { return [] }
        return ["--imap", mail.imap.description, "--smtp-submission", mail.submission.description, "--mail-service-password-file", mail.servicePasswordFile,
                "--mail-notify-token-file", mail.notifyTokenFile, "--mail-sweep-ms", "\(options.mailSweepMs)",
                "--mail-chunk-bytes", "\(options.mailChunkBytes)", "--mail-max-text-bytes", "\(options.mailMaxTextBytes)"]
            + (options.mailDeviceDelete.map { ["--mail-device-delete", $0] } ?? [])
    }

    /// The nodes whose `/primary` answers 200 right now.
    func primaries() async -> [String] {
        var found: [String] = []
        for name in options.nodes where (try? await get(nodeURL(name) + "/primary").status) == 200 { found.append(name) }
        return found
    }

    /// A node's `/health` as JSON.
    func health(_ name: String) async throws -> [String: Any] {
        let reply = try await get(nodeURL(name) + "/health")
        return try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any] ?? [:]
    }

    /// A health parameter's detail in a node's `/health` ("messaging_agent", …).
    func healthDetail(_ name: String, _ parameter: String) async throws -> String? {
        let parameters = try await health(name)["parameters"] as? [[String: Any]] ?? []
        return parameters.first { ($0["name"] as? String) == parameter }?["detail"] as? String
    }

    /// The relay's `/health` (its registered sessions and their epochs).
    func relayHealth() async throws -> String {
        String(decoding: try await get(relayHTTPURL + "/health").body, as: UTF8.self)
    }

    /// What the relay's audit log shows over the whole run (every relay started here
    /// writes to the same log): the most primaries registered at once, stale deliveries.
    func relayAudit() -> RelayAuditSummary {
        let data = FileManager.default.contents(atPath: dir + "/relay-audit.jsonl") ?? Data()
        return RelayAuditSummary(records: RelayAuditSummary.Record.parse(jsonLines: data), fromMs: 0, toMs: .max)
    }

    /// Adds a user and provisions a device through the `bramble` CLI; returns its credential path.
    @discardableResult
    func provision(email: String, pin: String) throws -> String {
        let env = ["BRAMBLE_TOKEN": token, "BRAMBLE_URL": nodeURL, "BRAMBLE_CA_FILE": tls.ca]
        _ = try? runCommand(Self.bin + "/bramble", ["user", "add", "--email", email], environment: env)
        let path = "\(dir)/device-\(pin).json"
        try runCommand(Self.bin + "/bramble", ["device", "provision", "--email", email, "--pin", pin, "--out", path], environment: env)
        return path
    }

    /// Runs the `bramble` CLI against the first node; its output, or `CommandFailed`.
    @discardableResult
    func bramble(_ arguments: String...) throws -> String { try bramble(arguments) }

    @discardableResult
    func bramble(_ arguments: [String]) throws -> String {
        try runCommand(Self.bin + "/bramble", arguments, environment: ["BRAMBLE_TOKEN": token, "BRAMBLE_URL": nodeURL, "BRAMBLE_CA_FILE": tls.ca])
    }

    func logPath(pin: String) -> String { "\(dir)/device-\(pin).jsonl" }

    func startDevice(pin: String) throws {
        devices[pin] = try ChildProcess(name: "device-\(pin)", executable: Self.bin + "/bramble-device", arguments: [
            "run", "--credential", "\(dir)/device-\(pin).json", "--relay", "127.0.0.1:\(devicePort)", "--ca-file", tls.ca,
            "--log", logPath(pin: pin),
        ], logPath: "\(dir)/device-\(pin).out")
    }

    func device(_ pin: String) -> ChildProcess? { devices[pin] }

    /// What a device's JSON-lines log says it showed.
    func shown(pin: String) -> [ShownLine] {
        guard let data = FileManager.default.contents(atPath: logPath(pin: pin)) else { return [] }
        return data.split(separator: UInt8(ascii: "\n")).compactMap { try? JSONDecoder().decode(ShownLine.self, from: $0) }
    }

    struct ShownLine: Decodable, Hashable {
        var ref: UInt64
        var push_id: String
        var subject: String
    }

    /// A mail or More chunk a device showed (its JSON line).
    struct MailLine: Decodable, Hashable {
        struct Attachment: Decodable, Hashable { var name: String; var type: String; var size: UInt64 }
        var ref: UInt64
        var service: String
        var message_id: String
        var from: String?
        var to: [String]?
        var subject: String?
        var body: String
        var offset: UInt64?
        var more_available: Bool
        var attachments: [Attachment]?
        var priority: String?
    }

    /// The mail and More lines of a device's log, in order.
    func mailShown(pin: String) -> [MailLine] {
        guard let data = FileManager.default.contents(atPath: logPath(pin: pin)) else { return [] }
        return data.split(separator: UInt8(ascii: "\n")).compactMap { try? JSONDecoder().decode(MailLine.self, from: $0) }
    }

    /// Asks a running device for the next chunk of a mail (`bramble-device control … more`).
    func requestMore(pin: String, messageID: String) throws {
        try runCommand(Self.bin + "/bramble-device", ["control", "--state", "\(dir)/device-\(pin).json.state", "more", messageID])
    }

    /// How a push ended, as its sender saw it.
    enum PushAnswer: Equatable {
        case accepted(id: String)
        /// The node said it certainly did not commit it (or could not be reached).
        case notAccepted
        /// It may have committed: send it again with the same key.
        case unknown
    }

    /// POST /push to the first node, or `via` another, under `key` if given.
    func push(to: String, subject: String, body: String = "body", via node: String? = nil, key: String? = nil,
              timeout: TimeAmount = .seconds(10)) async -> PushAnswer {
        do {
            let accepted = try await (node.map { admin($0) } ?? admin).push(PushRequestBody(to: to, subject: subject, body: body),
                                                                         idempotencyKey: key, timeout: timeout)
            return .accepted(id: accepted.id)
        } catch {
            switch error {
            case .unreachable: return .notAccepted
            case .api(_, let answer) where answer.code == .notAccepted || answer.code == .unavailable: return .notAccepted
            case .noAnswer, .api, .malformed: return .unknown
            }
        }
    }

    /// POST /push to the first node; the push id, or nil when it was not accepted.
    func pushID(to: String, subject: String, body: String = "body") async -> String? {
        if case .accepted(let id) = await push(to: to, subject: subject, body: body) { return id }
        return nil
    }

    func get(_ url: String) async throws -> BrambleClient.Reply {
        try await BrambleClient(baseURL: url, token: token, http: http).raw(.GET, "", timeout: .seconds(2))
    }

    func metric(_ name: String, node: String? = nil) async throws -> Double? {
        try await metric(name, at: nodeURL(node ?? options.nodes[0]))
    }

    func relayMetric(_ name: String) async throws -> Double? {
        try await metric(name, at: relayHTTPURL)
    }

    private func metric(_ name: String, at base: String) async throws -> Double? {
        let text = String(decoding: try await get(base + "/metrics").body, as: UTF8.self)
        for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.split(separator: " ")[1])
        }
        return nil
    }

    func waitFor(_ what: String, seconds: Double = 20, _ condition: () async throws -> Bool) async throws {
        try await Self.poll(what, seconds: seconds, condition)
    }

    /// Polls `condition` every 100 ms until it holds, at most `seconds`.
    static func poll(_ what: String, seconds: Double = 20, _ condition: () async throws -> Bool) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if (try? await condition()) == true { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw SetupError("timed out after \(seconds) s waiting for \(what)")
    }

    func stop() async throws {
        for device in devices.values { device.stop() }
        for node in nodes.values { node.stop() }
        for cutter in cutters.values { await cutter.stop() }
        relay?.stop()
        mailHost?.stop()
        imHost?.stop()
        _ = try? runCommand(Self.root + "/scripts/pg-private", ["stop", dir + "/pg"])
        if options.patroni { _ = try? runCommand(Self.root + "/scripts/pg-patroni", ["stop", dir + "/patroni"], environment: patroniEnvironment) }
        try? await http.shutdown()
        try? FileManager.default.removeItem(atPath: dir)
    }

    func dumpLogs() {
        for process in [relay].compactMap({ $0 }) + options.nodes.compactMap({ nodes[$0] }) + Array(devices.values) {
            print("----- \(process.name) log (last 40 lines) -----")
            print(process.log.split(separator: "\n").suffix(40).joined(separator: "\n"))
        }
    }

    /// Ports the kernel hands out as free right now.
    static func freePorts(_ n: Int) throws -> [Int] {
        var ports: [Int] = []
        var fds: [Int32] = []
        defer { fds.forEach { close($0) } }
        while ports.count < n {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = 0
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
            }
            guard bound else { throw SetupError("cannot find a free port") }
            fds.append(fd)
            ports.append(Int(UInt16(bigEndian: addr.sin_port)))
        }
        return ports
    }
}

struct SetupError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
