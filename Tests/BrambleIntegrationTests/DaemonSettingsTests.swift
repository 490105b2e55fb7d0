import BrambleNet
import Foundation
import Logging
import Synchronization
import Testing

/// `DaemonSettings` in process: the precedence of flags, environment, settings file and
/// default; unknown keys; values of the wrong type; secrets and their redaction.
@Suite("Daemon settings through swift-configuration")
struct DaemonSettingsTests {
    /// A daemon with three settings of the node's kinds, and its admin token file.
    static func flags(leaseMs: Int? = nil, node: String? = nil, dbHost: String? = nil, tokenFile: String? = nil) -> [String: (any SettingsFlagValue)?] {
        ["lease-ms": leaseMs, "node": node, "db-host": dbHost, "admin-token-file": tokenFile]
    }

    static let secretFiles = [SecretFile(key: "secret.admin-token", pathKey: "admin-token-file", what: "admin token")]

    struct Seen: Equatable {
        var leaseMs: Int
        var node: String
        var dbHost: String
    }

    static func read(_ settings: DaemonSettings) async throws -> Seen {
        Seen(leaseMs: try await settings.int("lease-ms", default: 1000),
             node: try await settings.string("node", default: "node-a"),
             dbHost: try await settings.string("db-host", default: "127.0.0.1"))
    }

    @Test("A flag beats the environment, which beats the file, which beats the default")
    func precedence() async throws {
        let dir = try TemporaryDirectory()
        let file = try dir.write("node.conf", "lease-ms = 3000\nnode = from-file\ndb-host = f1:5432,f2:5432\n")
        let environment = ["BRAMBLE_LEASE_MS": "2000", "BRAMBLE_NODE": "from-env", "BRAMBLE_DB_HOST": "e1:5432, e2:5432"]

        let defaults = try DaemonSettings(flags: Self.flags(), configFile: nil, environment: [:])
        #expect(try await Self.read(defaults) == Seen(leaseMs: 1000, node: "node-a", dbHost: "127.0.0.1"))

        let fromFile = try DaemonSettings(flags: Self.flags(), configFile: file, environment: [:])
        #expect(try await Self.read(fromFile) == Seen(leaseMs: 3000, node: "from-file", dbHost: "f1:5432,f2:5432"))
        let fromVariable = try DaemonSettings(flags: Self.flags(), configFile: nil, environment: ["BRAMBLE_CONFIG": file])
        #expect(try await Self.read(fromVariable) == Seen(leaseMs: 3000, node: "from-file", dbHost: "f1:5432,f2:5432"))

        let fromEnvironment = try DaemonSettings(flags: Self.flags(), configFile: file, environment: environment)
        #expect(try await Self.read(fromEnvironment) == Seen(leaseMs: 2000, node: "from-env", dbHost: "e1:5432, e2:5432"))

        // A comma-separated list stays one string: no source splits it.
        let fromFlags = try DaemonSettings(flags: Self.flags(leaseMs: 4000, node: "from-flag", dbHost: "c1:1,c2:2"),
                                           configFile: file, environment: environment)
        #expect(try await Self.read(fromFlags) == Seen(leaseMs: 4000, node: "from-flag", dbHost: "c1:1,c2:2"))

        // Each setting on its own: a flag for one, the environment for another, the file for the third.
        let mixed = try DaemonSettings(flags: Self.flags(leaseMs: 4000), configFile: file, environment: ["BRAMBLE_NODE": "from-env"])
        #expect(try await Self.read(mixed) == Seen(leaseMs: 4000, node: "from-env", dbHost: "f1:5432,f2:5432"))
    }

    @Test("A key in the file that names no setting is an error naming the file and the line")
    func unknownKeyInTheFile() throws {
        let dir = try TemporaryDirectory()
        let file = try dir.write("node.conf", "node = a\n\nlease = 5\n")
        #expect(throws: SettingsFailure.self) { try DaemonSettings(flags: Self.flags(), configFile: file, environment: [:]) }
        #expect(Self.failure { try DaemonSettings(flags: Self.flags(), configFile: file, environment: [:]) }
            == "\(file): line 3: unknown setting 'lease' (see --help for the settings)")
        // `config` names the file; it is not a setting inside one.
        let nested = try dir.write("nested.conf", "config = /etc/other.conf\n")
        #expect(Self.failure { try DaemonSettings(flags: Self.flags(), configFile: nested, environment: [:]) }
            == "\(nested): line 1: unknown setting 'config' (see --help for the settings)")
    }

    @Test("A BRAMBLE_ variable that names no setting is an error naming it; other Bramble programs' variables are not")
    func unknownKeyInTheEnvironment() throws {
        #expect(Self.failure { try DaemonSettings(flags: Self.flags(), configFile: nil, environment: ["BRAMBLE_LEASE_MSS": "5", "HOME": "/root"]) }
            == "environment variable BRAMBLE_LEASE_MSS: unknown setting 'lease-mss' (see --help for the settings)")
        // A secret is never a setting: it cannot be given in the environment.
        #expect(Self.failure { try DaemonSettings(flags: Self.flags(), configFile: nil, secretFiles: Self.secretFiles, environment: ["BRAMBLE_ADMIN_TOKEN": "0123456789abcdef"]) }
            == "environment variable BRAMBLE_ADMIN_TOKEN: unknown setting 'admin-token' (see --help for the settings)")
        let others = ["BRAMBLE_URL": "http://x", "BRAMBLE_TOKEN": "t", "BRAMBLE_RELAY_HTTP_PORT": "4180", "BRAMBLE_LEASE_MS": "2000"]
        #expect(throws: Never.self) { try DaemonSettings(flags: Self.flags(), configFile: nil, environment: others) }
    }

    @Test("A value of the wrong type is an error naming the key and where the value came from")
    func badValueType() async throws {
        let dir = try TemporaryDirectory()
        let file = try dir.write("node.conf", "node = a\nlease-ms = soon\n")
        let fromFile = try DaemonSettings(flags: Self.flags(), configFile: file, environment: [:])
        #expect(await Self.failure { _ = try await fromFile.int("lease-ms", default: 1000) }
            == "\(file): line 2: 'lease-ms' takes an integer, got 'soon'")
        let fromEnvironment = try DaemonSettings(flags: Self.flags(), configFile: nil, environment: ["BRAMBLE_LEASE_MS": "1e3"])
        #expect(await Self.failure { _ = try await fromEnvironment.int("lease-ms", default: 1000) }
            == "environment variable BRAMBLE_LEASE_MS: 'lease-ms' takes an integer, got '1e3'")
        // A source that is not consulted cannot fail: the flag wins before the file is read.
        let overridden = try DaemonSettings(flags: Self.flags(leaseMs: 1500), configFile: file, environment: [:])
        #expect(try await overridden.int("lease-ms", default: 1000) == 1500)
    }

    @Test("A required setting that no source gives names the flag, the variable and the key")
    func missingRequiredSetting() async throws {
        let settings = try DaemonSettings(flags: Self.flags(), configFile: nil, secretFiles: Self.secretFiles, environment: [:])
        let expected = "missing setting 'admin-token-file': give --admin-token-file, BRAMBLE_ADMIN_TOKEN_FILE or 'admin-token-file = …' in the settings file"
        #expect(await Self.failure { _ = try await settings.requiredString("admin-token-file") } == expected)
        #expect(await Self.failure { _ = try await settings.requiredSecret("secret.admin-token") } == expected)
        #expect(try await settings.secret("secret.admin-token") == nil)
    }

    @Test("A secret is read from the file its setting names and never appears in the access log or an error")
    func secretsAreRedacted() async throws {
        let dir = try TemporaryDirectory()
        let token = "token-\(UUID().uuidString)"
        let tokenFile = try dir.writeSecret("token", token + "\n")
        let file = try dir.write("node.conf", "admin-token-file = \(tokenFile)\nlease-ms = soon\n")
        let log = LogCollector()
        let settings = try DaemonSettings(flags: Self.flags(), configFile: file, secretFiles: Self.secretFiles, environment: [:])
        settings.logReads(to: Logger(label: "settings") { _ in log })

        #expect(try await settings.requiredSecret("secret.admin-token") == token)
        #expect(try await settings.requiredString("admin-token-file") == tokenFile)
        let failure = await Self.failure { _ = try await settings.int("lease-ms", default: 1000) }
        #expect(failure?.contains("'lease-ms' takes an integer") == true)

        let text = log.text
        #expect(text.contains("secret.admin-token"), "the access log lists the secret's read")
        #expect(text.contains("<REDACTED>"))
        #expect(text.contains(tokenFile), "the path is not secret")
        #expect(!text.contains(token), "the access log never holds the token")
        #expect(failure?.contains(token) == false)
    }

    @Test("An unreadable, empty or world-readable secret file is an error naming the file, not its contents")
    func badSecretFiles() async throws {
        let dir = try TemporaryDirectory()
        let empty = try dir.writeSecret("empty", " \n")
        let settings = try DaemonSettings(flags: Self.flags(tokenFile: empty), configFile: nil, secretFiles: Self.secretFiles, environment: [:])
        #expect(await Self.failure { _ = try await settings.secret("secret.admin-token") } == "the admin token file \(empty) is empty")
        let missing = dir.path + "/missing"
        let unreadable = try DaemonSettings(flags: Self.flags(tokenFile: missing), configFile: nil, secretFiles: Self.secretFiles, environment: [:])
        #expect(await Self.failure { _ = try await unreadable.secret("secret.admin-token") }
                == "admin token file \(missing) cannot be read (errno 2)")
        // Readable by others: refused, whatever it holds; made 0600 it is read.
        let open = try dir.write("open", "0123456789abcdef0123456789abcdef\n")
        chmod(open, 0o644)
        let exposed = try DaemonSettings(flags: Self.flags(tokenFile: open), configFile: nil, secretFiles: Self.secretFiles, environment: [:])
        let failure = await Self.failure { _ = try await exposed.secret("secret.admin-token") }
        #expect(failure == "admin token file \(open) is readable by others (mode 644); chmod 600 it")
        #expect(failure?.contains("0123456789abcdef") == false)
        chmod(open, 0o600)
        #expect(try await exposed.secret("secret.admin-token") == "0123456789abcdef0123456789abcdef")
        // A new secret file is never written over an existing one (nor through a symlink).
        #expect(throws: SecretFileError.self) { try SecretFilePermissions.create(open, bytes: Array("x".utf8), what: "test") }
        #expect(try String(contentsOfFile: open, encoding: .utf8) == "0123456789abcdef0123456789abcdef\n")
        let created = try dir.writeSecret("new", "secret")
        #expect((try FileManager.default.attributesOfItem(atPath: created)[.posixPermissions] as? Int) == 0o600)
    }

    @Test("A settings file that cannot be read or parsed is an error naming it")
    func badSettingsFiles() throws {
        let dir = try TemporaryDirectory()
        let missing = dir.path + "/missing.conf"
        #expect(Self.failure { try DaemonSettings(flags: Self.flags(), configFile: missing, environment: [:]) } == "cannot read the settings file \(missing)")
        let malformed = try dir.write("bad.conf", "node = a\nnode = b\n")
        #expect(Self.failure { try DaemonSettings(flags: Self.flags(), configFile: malformed, environment: [:]) }
            == "\(malformed): line 2: 'node' was already set on line 1")
    }

    static func failure(_ body: () throws -> Any) -> String? {
        do { _ = try body(); return nil } catch { return "\(error)" }
    }

    static func failure(_ body: () async throws -> Void) async -> String? {
        do { try await body(); return nil } catch { return "\(error)" }
    }
}

/// A directory removed when the value goes away.
final class TemporaryDirectory {
    let path = NSTemporaryDirectory() + "bramble-settings-" + UUID().uuidString

    init() throws { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    func write(_ name: String, _ text: String) throws -> String {
        try text.write(toFile: path + "/" + name, atomically: true, encoding: .utf8)
        return path + "/" + name
    }

    /// A secret file: 0600 from its creation (replacing one of that name).
    func writeSecret(_ name: String, _ text: String) throws -> String {
        try? FileManager.default.removeItem(atPath: path + "/" + name)
        try SecretFilePermissions.create(path + "/" + name, bytes: Array(text.utf8), what: name)
        return path + "/" + name
    }
}

/// Every log line, message and metadata, as text.
final class LogCollector: LogHandler, Sendable {
    private let lines = Mutex<[String]>([])
    var text: String { lines.withLock { $0.joined(separator: "\n") } }

    var metadata: Logger.Metadata {
        get { [:] }
        set {}
    }
    var logLevel: Logger.Level {
        get { .trace }
        set {}
    }
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { nil }
        set {}
    }

    func log(event: LogEvent) {
        let metadata = (event.metadata ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        lines.withLock { $0.append("\(event.message) \(metadata)") }
    }
}
