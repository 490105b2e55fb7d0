@testable import BrambleTestSupport
import BrambleNet
import Foundation
import NIOSSL
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The mail host (scripts/mail-private, the same code as deploy/cluster's mail host):
/// Postfix takes a message by SMTP and delivers it over LMTP to Dovecot, where the
/// service account (a Dovecot master user) finds it over IMAP by its Message-ID; each
/// user's own password works and a wrong one is refused; the secrets stay in their files;
/// SMTP and IMAP are TLS from the first byte, verified against the host's CA (a plaintext
/// client, or one that trusts another CA, gets nowhere); `stop` leaves no process.
@Suite(.serialized) struct MailServerTests {
    @Test func smtpDeliversToDovecotAndTheServiceAccountReadsEveryMailboxAndStopLeavesNothing() async throws {
        let dir = NSTemporaryDirectory() + "bramble-test-mail-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o711])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ports = try TestCluster.freePorts(3)
        let script = TestCluster.root + "/scripts/mail-private"
        var sessionPIDs: [Int32] = []
        do {
            let output = try runCommand(script, ["start", dir] + ports.map(String.init))
            // The JSON is the last thing printed (an install may say something first).
            let json = try #require(output.range(of: "{", options: []).map { String(output[$0.lowerBound...]) })
            let info = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
            #expect(info["smtp"] as? String == "127.0.0.1:\(ports[0])" && info["imap"] as? String == "127.0.0.1:\(ports[1])")
            #expect(info["domain"] as? String == "example.test")
            #expect(info["users"] as? [String] == (1...4).map { "demo\($0)@example.test" })
            let account = try #require(info["service_account"] as? [String: Any])
            let serviceUser = try #require(account["user"] as? String)
            let passwordFile = try #require(account["password_file"] as? String)
            let passwordsFile = try #require(info["user_passwords_file"] as? String)
            let caFile = try #require((info["tls"] as? [String: Any])?["ca_file"] as? String)
            let tls = try TLSFiles(ca: caFile).clientContext()
            let dovecot = try #require((info["dovecot_pid"] as? Int).map(Int32.init))
            let postfix = try #require((info["postfix_pid"] as? Int).map(Int32.init))
            sessionPIDs = processes(inSessionsOf: [dovecot, postfix])
            #expect(sessionPIDs.count > 4, "Dovecot's and Postfix's masters with their children: \(sessionPIDs)")

            // The secrets: files of mode 0600, never printed.
            for file in [passwordFile, passwordsFile] {
                let mode = (try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int) ?? 0
                #expect(mode == 0o600, "\(file) is 0600, not \(String(mode, radix: 8))")
            }
            let servicePassword = try String(contentsOfFile: passwordFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            let passwords = Dictionary(uniqueKeysWithValues: try String(contentsOfFile: passwordsFile, encoding: .utf8)
                .split(separator: "\n").map { line in let f = line.split(separator: " "); return (String(f[0]), String(f[1])) })
            #expect(servicePassword.count >= 32 && passwords.count == 4)
            #expect(!output.contains(servicePassword) && !passwords.values.contains { output.contains($0) }, "no password printed")

            // SMTP: one message to demo1 (the Agent's own SMTP client).
            let messageID = "<\(UUID().uuidString)@bramble.test>"
            let smtpAddress = HostPort(host: "127.0.0.1", port: ports[0]), imapAddress = HostPort(host: "127.0.0.1", port: ports[1])
            let queued = try await SMTPSession.with(to: smtpAddress, tls: tls, helo: "client.test") { smtp in
                try await smtp.send(from: "sender@outside.test", to: ["demo1@example.test"],
                                    message: "From: sender@outside.test\r\nTo: demo1@example.test\r\nSubject: mail server test\r\nMessage-ID: \(messageID)\r\n\r\nHello.\r\n")
            }
            #expect(queued.code == 250)
            // A mailbox that does not exist is refused at RCPT, and nothing is relayed elsewhere.
            let refusals = try await SMTPSession.with(to: smtpAddress, tls: tls, helo: "client.test") { smtp in
                try await smtp.command("MAIL FROM:<sender@outside.test>")
                let nobody = try await smtp.command("RCPT TO:<nobody@example.test>", accept: { _ in true })
                let elsewhere = try await smtp.command("RCPT TO:<someone@elsewhere.test>", accept: { _ in true })
                return [nobody.code, elsewhere.code]
            }
            #expect(refusals == [550, 550])

            // IMAP as the service account, in demo1's mailbox: the message by its Message-ID.
            let found = try await IMAPSession.with(to: imapAddress, tls: tls) { imap in
                try await imap.login(user: "demo1@example.test*\(serviceUser)", password: servicePassword)
                for attempt in 0..<50 {  // LMTP delivery follows the SMTP 250 within milliseconds
                    if attempt > 0 { try await Task.sleep(for: .milliseconds(100)) }
                    guard try await imap.select("INBOX", readOnly: true).exists > 0 else { continue }
                    let headers = try await imap.uidFetch("1:*", "UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]")
                    if headers.contains(where: { String(decoding: $0.attributes["BODY[HEADER.FIELDS (MESSAGE-ID)]"]?.bytes ?? [], as: UTF8.self).contains(messageID) }) {
                        await imap.logout()
                        return true
                    }
                }
                return false
            }
            #expect(found, "the message \(messageID) reached demo1's INBOX")

            // The user's own password works; a wrong one and a service login to no mailbox do not.
            #expect(try await logsIn("demo1@example.test", passwords["demo1@example.test"] ?? "", at: imapAddress, tls: tls))
            #expect(try await !logsIn("demo1@example.test", "wrong-password", at: imapAddress, tls: tls))
            #expect(try await !logsIn("nobody@example.test*\(serviceUser)", servicePassword, at: imapAddress, tls: tls))

            // Nothing in the clear: a plaintext client gets no greeting from either; a client
            // that trusts another CA refuses the host's certificate.
            // (Each server waits minutes for a ClientHello that never comes: 3 s is enough.)
            await #expect(throws: (any Error).self) {
                try await withDeadline(ms: 3_000) { try await IMAPSession.with(to: imapAddress, tls: nil) { _ in } }
            }
            await #expect(throws: (any Error).self) {
                try await withDeadline(ms: 3_000) { try await SMTPSession.with(to: smtpAddress, tls: nil, helo: "client.test") { _ in } }
            }
            let other = try TestCA.make(in: dir + "/other-ca", hosts: [])
            await #expect(throws: NIOSSLError.self) {
                try await IMAPSession.with(to: imapAddress, tls: try TLSFiles(ca: other.ca).clientContext()) { _ in }
            }

            // No log holds a password.
            for log in [info["dovecot_log"], info["postfix_log"]].compactMap({ $0 as? String }) {
                let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                #expect(!text.contains(servicePassword) && !passwords.values.contains { text.contains($0) }, "\(log) holds no password")
            }
        } catch {
            Issue.record("mail host: \(error)")
            for log in ["dovecot.log", "postfix.log", "postfix-start.out"] {
                print("--- \(log)\n" + ((try? String(contentsOfFile: dir + "/" + log, encoding: .utf8)) ?? ""))
            }
        }
        try runCommand(script, ["stop", dir])
        #expect(!sessionPIDs.isEmpty)
        for pid in sessionPIDs { #expect(isGone(pid), "pid \(pid) is gone after stop") }
    }

    /// Whether an IMAP LOGIN on a new connection is accepted (NO: false).
    func logsIn(_ user: String, _ password: String, at address: HostPort, tls: NIOSSLContext) async throws -> Bool {
        do {
            try await IMAPSession.with(to: address, tls: tls) { imap in try await imap.login(user: user, password: password) }
            return true
        } catch let refused as IMAPSession.Refused where refused.status == .no {
            return false
        }
    }

    /// Every process in the sessions these (session-leading) masters lead.
    func processes(inSessionsOf leaders: [Int32]) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            // After "pid (comm) ": state ppid pgrp session …
            let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
            return fields.count > 3 && Int32(fields[3]).map(leaders.contains) == true
        }
    }

    /// No such process, or a zombie (its parent gone, init reaps it late).
    func isGone(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(close, offsetBy: 2)...].hasPrefix("Z")
    }
}
