import BrambleNet
import Foundation
import NIOSSL

/// A private mail host for one test (scripts/mail-private, the same code as deploy/cluster's):
/// Postfix and Dovecot on free loopback ports, mailboxes demo1…demo4@example.test, the
/// service account; what the script printed, read back; `stop()` stops both by PID.
struct TestMailHost {
    let dir: String
    let smtp: HostPort
    let imap: HostPort
    /// Mail submission (AUTH first; a copy goes to the sender's Sent).
    let submission: HostPort
    let serviceUser: String
    let servicePasswordFile: String
    let notifyTokenFile: String
    /// Each demo mailbox's own password.
    let passwords: [String: String]
    /// What a client connects to its SMTP and IMAP with (trusts the CA its certificate chains to).
    let tls: NIOSSLContext

    static let script = TestCluster.root + "/scripts/mail-private"
    /// The tests' submission size limit: 1 MiB, so "too large" is quick to reach.
    static let submissionSizeLimit = 1 << 20

    /// Starts it in `dir` (created if missing); `notifyURLs` are the nodes Dovecot tells of
    /// new mail. Its SMTP and IMAP are TLS from the first byte, with a certificate from
    /// `ca` (which the notify URLs' certificates chain to too), or else from a CA of its own.
    /// The submission service takes messages up to `submissionSizeLimit` bytes (EHLO SIZE).
    static func start(in dir: String, notifyURLs: [String] = [], ca: TestCA? = nil,
                      submissionSizeLimit: Int = submissionSizeLimit, submissionPolicy: String? = nil) throws -> TestMailHost {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o711])
        let ports = try TestCluster.freePorts(4)
        var environment = ["BRAMBLE_MAIL_NOTIFY_URLS": notifyURLs.joined(separator: " "),
                           "BRAMBLE_MAIL_SUBMISSION_SIZE_LIMIT": String(submissionSizeLimit)]
        if let submissionPolicy { environment["BRAMBLE_MAIL_SUBMISSION_POLICY"] = submissionPolicy }
        if let ca { environment.merge(ca.environment) { $1 } }
        let output = try runCommand(script, ["start", dir] + ports.map(String.init), environment: environment)
        // The JSON is the last thing printed (an install may say something first).
        guard let json = output.range(of: "{").map({ String(output[$0.lowerBound...]) }),
              let info = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let account = info["service_account"] as? [String: Any], let user = account["user"] as? String,
              let passwordFile = account["password_file"] as? String, let tokenFile = info["notify_token_file"] as? String,
              let passwordsFile = info["user_passwords_file"] as? String,
              let caFile = (info["tls"] as? [String: Any])?["ca_file"] as? String else {
            throw SetupError("scripts/mail-private printed no mail host: \(output.suffix(500))")
        }
        let passwords = Dictionary(uniqueKeysWithValues: try String(contentsOfFile: passwordsFile, encoding: .utf8)
            .split(separator: "\n").map { line in let f = line.split(separator: " "); return (String(f[0]), String(f[1])) })
        return TestMailHost(dir: dir, smtp: HostPort(host: "127.0.0.1", port: ports[0]), imap: HostPort(host: "127.0.0.1", port: ports[1]),
                            submission: HostPort(host: "127.0.0.1", port: ports[3]),
                            serviceUser: user, servicePasswordFile: passwordFile, notifyTokenFile: tokenFile, passwords: passwords,
                            tls: try TLSFiles(ca: caFile).clientContext())
    }

    /// The Dovecot master user's password.
    var servicePassword: String {
        get throws { try String(contentsOfFile: servicePasswordFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) }
    }

    func stop() { _ = try? runCommand(Self.script, ["stop", dir]) }
}
