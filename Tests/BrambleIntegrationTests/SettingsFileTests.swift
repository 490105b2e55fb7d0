import Foundation
@testable import BrambleTestSupport
import Testing

/// The example settings files under deploy/examples are the documentation of every
/// setting; these tests keep them true to the binaries, and check that flags, the
/// environment, a settings file and the defaults reach the built daemons in that order of
/// precedence, that bad settings are errors that say where, and that secrets stay out of
/// their output. Each run stops at a check that echoes the value the daemon got.
@Suite("Settings of the built daemons")
struct SettingsFileIntegrationTests {
    @Test("The example files document every setting of their daemon", arguments: ["bramble-server", "bramble-relay"])
    func exampleFilesDocumentEverySetting(daemon: String) throws {
        let options = try Self.options(of: daemon)
        #expect(options.count > 5, "\(daemon) --help lists its options")
        let example = try String(contentsOfFile: TestCluster.root + "/deploy/examples/\(daemon).conf", encoding: .utf8)
        // Set or commented out, each setting appears as 'key = …' at the start of a line.
        let documented = Set(example.matches(of: /(?m)^#? ?([a-z][a-z0-9-]*) =/).map { String($0.1) })
        #expect(documented == options, "deploy/examples/\(daemon).conf lists every option of \(daemon) --help")
    }

    @Test("Every documented setting is one the daemon reads", arguments: [
        ("bramble-server", ["--lease-ms", "50"], "--lease-ms must be"),
        ("bramble-server", ["--mail-chunk-bytes", "10"], "--mail-chunk-bytes must be 256…16384"),
        ("bramble-relay", ["--srp-timeout-ms", "1"], "--srp-timeout-ms must be"),
    ])
    func everyDocumentedSettingIsRead(daemon: String, invalid: [String], expected: String) throws {
        let dir = try TemporaryDirectory()
        let secrets = try Self.secrets(in: dir)
        // Every line of the example, commented out or not, set; the secret files replaced.
        let example = try String(contentsOfFile: TestCluster.root + "/deploy/examples/\(daemon).conf", encoding: .utf8)
        let lines = example.split(separator: "\n").compactMap { line -> String? in
            guard let match = line.firstMatch(of: /^#? ?([a-z][a-z0-9-]*) = ?(.*)$/) else { return nil }
            let key = String(match.1)
            if let path = secrets[key] { return "\(key) = \(path)" }
            return key == "pair" ? "pair = bramble" : "\(key) = \(match.2)"
        }
        let file = try dir.write("all.conf", lines.joined(separator: "\n") + "\n")
        let output = Self.run(daemon, ["--config", file] + invalid)
        #expect(output.contains(expected), "\(output)")
    }

    @Test("Mail settings without the mail server, or the mail server without its account, are errors that say what to set")
    func mailSettingsHangTogether() throws {
        let dir = try TemporaryDirectory()
        let file = try Self.nodeFile(in: dir, "")
        #expect(Self.run("bramble-server", ["--config", file, "--mail-sweep-ms", "1000"])
            .contains("--mail-sweep-ms is set but --imap is not: set --imap (the mail server's IMAP listener) or drop it"))
        #expect(Self.run("bramble-server", ["--config", file, "--imap", "127.0.0.1:143"])
            .contains("--imap needs --mail-service-password-file (the service account's password)"))
        #expect(Self.run("bramble-server", ["--config", file, "--imap", "mail.example"]).contains("--imap must be HOST:PORT, got 'mail.example'"))
    }

    @Test("A flag beats the environment, which beats the file, which beats the default: an int")
    func precedenceOfAnInt() throws {
        let dir = try TemporaryDirectory()
        let file = try Self.nodeFile(in: dir, "lease-ms = 50\n")
        let seen = { (arguments: [String], environment: [String: String]) in
            Self.run("bramble-server", arguments, environment).firstMatch(of: /got (\d+)/).map { String($0.1) }
        }
        #expect(seen(["--config", file], [:]) == "50")
        #expect(seen([], ["BRAMBLE_CONFIG": file]) == "50")
        #expect(seen(["--config", file], ["BRAMBLE_LEASE_MS": "70"]) == "70")
        #expect(seen(["--config", file, "--lease-ms", "90"], ["BRAMBLE_LEASE_MS": "70"]) == "90")
        // The default (1000) is less than twice this heartbeat, so the check shows it.
        let slow = try Self.nodeFile(in: dir, "heartbeat-ms = 600\n", name: "slow.conf")
        #expect(seen(["--config", slow], [:]) == "1000")
    }

    @Test("A flag beats the environment, which beats the file: a string and a comma-separated host list")
    func precedenceOfAStringAndAHostList() throws {
        let dir = try TemporaryDirectory()
        // Both invalid (a name with a space; a host with no port number), so the checks echo them.
        let file = try Self.nodeFile(in: dir, "node = from file\ndb-host = f1:5432,f2:5432,f3:x\n")
        let seen = { (arguments: [String], environment: [String: String]) in
            Self.run("bramble-server", ["--config", file] + arguments, environment).firstMatch(of: /got '([^']*)'/).map { String($0.1) }
        }
        #expect(seen([], [:]) == "from file")
        #expect(seen([], ["BRAMBLE_NODE": "from env"]) == "from env")
        #expect(seen(["--node", "from flag"], ["BRAMBLE_NODE": "from env"]) == "from flag")
        #expect(seen(["--node", "ok"], [:]) == "f1:5432,f2:5432,f3:x")
        #expect(seen(["--node", "ok"], ["BRAMBLE_DB_HOST": "e1:5432,e2:5432,e3:x"]) == "e1:5432,e2:5432,e3:x")
        #expect(seen(["--node", "ok", "--db-host", "c1:1,c2:2,c3:x"], ["BRAMBLE_DB_HOST": "e1:5432,e2:5432,e3:x"]) == "c1:1,c2:2,c3:x")
    }

    @Test("An unknown key names the file and line, or the variable")
    func unknownKeys() throws {
        let dir = try TemporaryDirectory()
        let bad = try dir.write("bad.conf", "srp-key-file = \(dir.path)/keys\nlease = 5\n")
        #expect(Self.run("bramble-server", ["--config", bad]).contains("bad.conf: line 2: unknown setting 'lease'"))
        let file = try Self.nodeFile(in: dir, "", name: "good.conf")
        #expect(Self.run("bramble-server", ["--config", file], ["BRAMBLE_LEASE_MSS": "5"])
            .contains("environment variable BRAMBLE_LEASE_MSS: unknown setting 'lease-mss'"))
        #expect(Self.run("bramble-relay", [], ["BRAMBLE_DB_HOST": "h"])
            .contains("environment variable BRAMBLE_DB_HOST: unknown setting 'db-host'"))
        #expect(Self.run("bramble-server", ["--config", dir.path + "/missing.conf"]).contains("cannot read the settings file"))
    }

    @Test("A value of the wrong type names the key and its source")
    func badValueTypes() throws {
        let dir = try TemporaryDirectory()
        let file = try Self.nodeFile(in: dir, "lease-ms = soon\n")
        #expect(Self.run("bramble-server", ["--config", file]).contains("node.conf: line 4: 'lease-ms' takes an integer, got 'soon'"))
        let good = try Self.nodeFile(in: dir, "", name: "good.conf")
        #expect(Self.run("bramble-server", ["--config", good], ["BRAMBLE_DB_PORT": "5432x"])
            .contains("environment variable BRAMBLE_DB_PORT: 'db-port' takes an integer, got '5432x'"))
        #expect(Self.run("bramble-relay", ["--srp-keys", dir.path + "/keys", "--lockout-window", "soon"]).contains("'soon' is invalid for '--lockout-window"))
        #expect(Self.run("bramble-relay", []).contains("missing setting 'srp-keys'"))
    }

    @Test("The secrets never appear in the output, the access log or an error")
    func secretsStayOutOfTheOutput() throws {
        let dir = try TemporaryDirectory()
        let file = try Self.nodeFile(in: dir, "lease-ms = 50\n")
        let token = try String(contentsOfFile: dir.path + "/token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let srpKey = Self.srpKey.base64EncodedString()
        let accessLog = dir.path + "/access.log"
        // The secrets are read before the invalid lease-ms stops the node; debug logs every read.
        let output = Self.run("bramble-server", ["--config", file, "--log-level", "debug"], ["CONFIG_ACCESS_LOG_FILE": accessLog])
        #expect(output.contains("--lease-ms must be"), "\(output)")
        #expect(output.contains("secret.admin-token") && output.contains("<REDACTED>"), "the debug log lists the reads: \(output)")
        let fileLog = try String(contentsOfFile: accessLog, encoding: .utf8)
        #expect(fileLog.contains("secret.admin-token") && fileLog.contains("<REDACTED>"), "CONFIG_ACCESS_LOG_FILE lists the reads: \(fileLog)")
        for text in [output, fileLog] {
            #expect(!text.contains(token), "no admin token")
            #expect(!text.contains(srpKey), "no SRP key")
        }
        // A token too short is refused without being shown.
        let short = "sh0rt-t0ken"
        let shortFile = try dir.writeSecret("short-token", short + "\n")
        let refused = Self.run("bramble-server", ["--config", file, "--admin-token-file", shortFile, "--log-level", "debug"])
        #expect(refused.contains("must be at least 16 characters"), "\(refused)")
        #expect(!refused.contains(short))
    }

    // MARK: - Helpers

    static let srpKey = Data(repeating: 7, count: 32)

    /// The option names `--help` lists, but --config and --help.
    static func options(of daemon: String) throws -> Set<String> {
        let help = try runCommand(TestCluster.bin + "/" + daemon, ["--help"])
        return Set(help.matches(of: /(?m)^\s+--([a-z][a-z0-9-]*)/).map { String($0.1) }).subtracting(["config", "help"])
    }

    /// The secret files in `dir` (SRP keys, admin token, database password), by the settings naming them.
    static func secrets(in dir: TemporaryDirectory) throws -> [String: String] {
        let keys = try dir.writeSecret("keys", "bramble \(srpKey.base64EncodedString())\n")
        let token = try dir.writeSecret("token", "token-\(UUID().uuidString)\n")
        let password = try dir.writeSecret("db-password", "password-\(UUID().uuidString)\n")
        let mail = try dir.writeSecret("mail-password", "mail-\(UUID().uuidString)\n")
        let notify = try dir.writeSecret("notify-token", "notify-\(UUID().uuidString)\n")
        let kek = try dir.writeSecret("kek", Data(repeating: 9, count: 32).base64EncodedString() + "\n")
        return ["srp-key-file": keys, "srp-keys": keys, "admin-token-file": token, "db-password-file": password,
                "mail-service-password-file": mail, "mail-notify-token-file": notify, "key-encryption-key-file": kek,
                "previous-key-encryption-key-file": kek]
    }

    /// A node's settings file in `dir`: the secret files, then `lines`.
    static func nodeFile(in dir: TemporaryDirectory, _ lines: String, name: String = "node.conf") throws -> String {
        let secrets = try secrets(in: dir)
        return try dir.write(name, "srp-key-file = \(secrets["srp-key-file"]!)\nadmin-token-file = \(secrets["admin-token-file"]!)\n"
                             + "key-encryption-key-file = \(secrets["key-encryption-key-file"]!)\n" + lines)
    }

    /// Runs a daemon that is expected to stop at a check; its output (or "started").
    static func run(_ daemon: String, _ arguments: [String], _ environment: [String: String] = [:]) -> String {
        // runCommand adds `environment` to this process's own, which has no BRAMBLE_ settings.
        do {
            _ = try runCommand(TestCluster.bin + "/" + daemon, arguments, environment: environment)
            return "started"
        } catch let failed as CommandFailed {
            return failed.output
        } catch { return "\(error)" }
    }
}
