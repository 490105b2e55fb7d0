import BrambleNet
import Foundation
import NIOSSL

/// A private IM host for one test (scripts/im-private, the same code as deploy/cluster's):
/// Prosody on a free loopback port, XMPP with TLS from the first byte (XEP-0368), accounts
/// demo1…demo4@example.test and im-sender@example.test (one shared roster group), plus
/// imbench1…imbenchN@example.test with `extraUsers`; what the script printed, read back.
/// `stop()` stops Prosody by PID; `restart()` stops it and starts it on the same config
/// and data.
struct TestIMHost {
    let dir: String
    let xmpp: HostPort
    let domain: String
    /// Every account's password, by JID (the extra users share one).
    let passwords: [String: String]
    /// The file they were read from ("JID PASSWORD" lines, mode 0600).
    let passwordsFile: String
    /// Prosody's log.
    let log: String
    /// What a client connects to its XMPP port with (trusts the CA its certificate chains to).
    let tls: NIOSSLContext

    static let script = TestCluster.root + "/scripts/im-private"

    /// Starts it in `dir` (created if missing), with a certificate from `ca`, or else from a
    /// CA of its own.
    static func start(in dir: String, ca: TestCA? = nil, extraUsers: Int = 0) throws -> TestIMHost {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o711])
        let port = try TestCluster.freePorts(1)[0]
        var environment = ["BRAMBLE_IM_EXTRA_USERS": String(extraUsers)]
        if let ca { environment.merge(ca.environment) { $1 } }
        let output = try runCommand(script, ["start", dir, String(port)], environment: environment)
        // The JSON is the last thing printed (an install may say something first).
        guard let json = output.range(of: "{").map({ String(output[$0.lowerBound...]) }),
              let info = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let domain = info["domain"] as? String, let passwordsFile = info["user_passwords_file"] as? String,
              let log = info["log"] as? String,
              let caFile = (info["tls"] as? [String: Any])?["ca_file"] as? String else {
            throw SetupError("scripts/im-private printed no IM host: \(output.suffix(500))")
        }
        let passwords = Dictionary(uniqueKeysWithValues: try String(contentsOfFile: passwordsFile, encoding: .utf8)
            .split(separator: "\n").map { line in let f = line.split(separator: " "); return (String(f[0]), String(f[1])) })
        return TestIMHost(dir: dir, xmpp: HostPort(host: "127.0.0.1", port: port), domain: domain, passwords: passwords,
                          passwordsFile: passwordsFile, log: log, tls: try TLSFiles(ca: caFile).clientContext())
    }

    /// Prosody's PID now (its pid file), nil when it does not run.
    var prosodyPID: Int32? {
        (try? String(contentsOfFile: dir + "/run/prosody.pid", encoding: .utf8))
            .flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            .flatMap { Self.isRunning($0) ? $0 : nil }
    }

    /// Running, and not a zombie (a stopped Prosody may wait for a reaper that never comes).
    static func isRunning(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return !stat[stat.index(close, offsetBy: 2)...].hasPrefix("Z")
    }

    /// Stops Prosody (its sessions end) and starts it again on the same port, config, accounts and data.
    func restart() throws { try runCommand(Self.script, ["restart", dir]) }

    func stop() { _ = try? runCommand(Self.script, ["stop", dir]) }
}
