@testable import BrambleTestSupport
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The deploy smoke test: `deploy/cluster up` (hosts as network namespaces when run as
/// root, else the loopback fallback) ready only when its standby could take over, a
/// killed node restarted by the cluster's supervisor and counted, pushes delivered, a
/// Patroni switchover of the database under a stream of pushes, the short set of
/// failover drills (`make drill`), a mail delivered by SMTP and read over IMAP with the
/// service account on the mail host, `down` with nothing left behind. Every verdict comes from outside the nodes: ids the
/// push API accepted against the devices' logs (`bramble-bench stream`), the relay's
/// audit log and registered epoch, Patroni's roles.
@Suite(.serialized) struct DeployTests {
    /// A cluster apart from the user's own `make up`: its own namespaces, subnet, ports
    /// and state directory; the debug binaries `make test` has built (a build inside `swift
    /// test` would wait forever on its lock).
    struct Deployment {
        let root = TestCluster.root
        let runDir: String
        let environment: [String: String]

        init() {
            let tag = Int.random(in: 1000...9999)
            runDir = NSTemporaryDirectory() + "bramble-test-deploy-\(tag)"
            let base = Int.random(in: 2_000...2_900) * 10
            var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("BRAMBLE_") }
            env.merge([
                "BRAMBLE_RUN_DIR": runDir, "BRAMBLE_BIN": TestCluster.bin,
                "BRAMBLE_DEPLOY_PREFIX": "bt\(tag)", "BRAMBLE_DEPLOY_NET": "10.233.\(tag % 250)",
                "BRAMBLE_ETCD_PORT": "\(base)", "BRAMBLE_PG_PORT": "\(base + 6)", "BRAMBLE_PATRONI_PORT": "\(base + 8)",
                "BRAMBLE_RELAY_DEVICE_PORT": "\(base + 10)", "BRAMBLE_RELAY_SRP_PORT": "\(base + 11)",
                "BRAMBLE_RELAY_HTTP_PORT": "\(base + 12)", "BRAMBLE_NODE_HTTP_PORT": "\(base + 13)",
                "BRAMBLE_NODE_B_HTTP_PORT": "\(base + 14)", "BRAMBLE_SMTP_PORT": "\(base + 15)",
                "BRAMBLE_IMAP_PORT": "\(base + 16)", "BRAMBLE_LMTP_PORT": "\(base + 17)",
                "BRAMBLE_SUBMISSION_PORT": "\(base + 18)", "BRAMBLE_XMPP_PORT": "\(base + 19)",
                "BRAMBLE_PROMETHEUS_PORT": "\(base + 20)",
            ]) { $1 }
            environment = env
        }

        @discardableResult
        func run(_ arguments: String...) throws -> String {
            try runCommand(root + "/deploy/cluster", arguments, environment: environment)
        }

        func status() throws -> [String: Any] {
            try JSONSerialization.jsonObject(with: Data(try run("status", "--json").utf8)) as? [String: Any] ?? [:]
        }
    }

    @Test func upIsReadyRestartsAKilledNodeSurvivesADatabaseSwitchoverAndTheShortDrillsAndDownLeavesNothing() async throws {
        let deployment = Deployment()
        var pids: [Int32] = []
        var namespacePrefix: String?
        var tmpdir: String?
        do {
            try deployment.run("up")
            let status = try deployment.status()
            let mode = status["mode"] as? String
            if mode == "netns" { namespacePrefix = deployment.environment["BRAMBLE_DEPLOY_PREFIX"]! + "-" }
            tmpdir = status["tmpdir"] as? String
            let hosts = status["hosts"] as? [[String: Any]] ?? []
            #expect(hosts.count == 10, "db1 db2 db3 relay node-a node-b client mail im monitoring")
            let processes = status["processes"] as? [[String: Any]] ?? []
            pids = processes.flatMap { [pid($0["pid"]), pid($0["supervisor_pid"])].compactMap { $0 } }
            #expect(processes.count == 16 && processes.allSatisfy { $0["alive"] as? Bool == true }, "every process runs: \(processes)")
            let mailPIDs = processes.filter { $0["host"] as? String == "mail" }
            #expect(mailPIDs.compactMap { $0["name"] as? String } == ["dovecot", "postfix"], "the mail host's daemons: \(mailPIDs)")
            pids += self.processes(inSessionsOf: mailPIDs.compactMap { pid($0["pid"]) })  // their children too
            try checkMail(deployment, status)
            try checkIM(deployment, status)
            try await checkMonitoring(deployment, status)
            // The relay and both nodes run under a supervisor (deploy/lib/supervise), none restarted yet.
            let supervised = processes.filter { $0["restarts"] != nil }
            #expect(supervised.compactMap { $0["name"] as? String } == ["relay", "node-a", "node-b"], "supervised: \(supervised)")
            #expect(supervised.allSatisfy { $0["restarts"] as? Int == 0 && $0["supervised"] as? Bool == true && pid($0["supervisor_pid"]) != nil })
            let nodes = status["nodes"] as? [[String: Any]] ?? []
            #expect(nodes.count == 2 && nodes.allSatisfy { $0["restarts"] as? Int == 0 }, "nodes[] count restarts: \(nodes)")
            #expect((status["relay"] as? [String: Any])?["restarts"] as? Int == 0, "the relay counts restarts")
            // `up` is done only when the standby could take over.
            let nodeBHealth = try #require(nodes.last?["health_url"] as? String)
            #expect((try? deployment.run("exec", "curl", "-fsS", "--max-time", "2", nodeBHealth + "/ready")) != nil, "node-b's /health/ready answers 200 after up")
            let members = status["database"] as? [[String: Any]] ?? []
            #expect(Set(members.compactMap { $0["role"] as? String }) == ["master", "replica"], "Patroni: a leader and a replica")
            #expect(members.allSatisfy { $0["pid"] is Int && ($0["api_url"] as? String)?.hasPrefix("https://") == true })
            let etcd = status["etcd"] as? [[String: Any]] ?? []
            #expect(etcd.count == 3 && etcd.allSatisfy { $0["healthy"] as? Bool == true })
            let pair = status["pair"] as? [[String: Any]] ?? []
            #expect(pair.map { $0["role"] as? String } == ["primary", "standby"], "node-a primary, node-b standby: \(pair)")
            #expect(status["admin_token"] is String && status["push_url"] is String && (status["devices"] as? [Any])?.count == 2)
            // A demo push application's token beside the admin token: a different one, for pushing only.
            let pushToken = status["push_token"] as? String
            #expect(pushToken?.hasPrefix("bpa_") == true && pushToken != status["admin_token"] as? String)
            // Every link is TLS under the cluster's own CA, whose certificate status names.
            let tls = status["tls"] as? [String: Any]
            let ca = try #require(tls?["ca"] as? String, "status has tls.ca")
            #expect(try String(contentsOfFile: ca, encoding: .utf8).contains("BEGIN CERTIFICATE"))
            let links = tls?["links"] as? [String: String] ?? [:]
            #expect(links["srp"]?.hasPrefix("mutual TLS") == true)
            #expect(Set(links.keys) == ["srp", "devices", "api", "database", "imap", "smtp", "submission", "xmpp", "etcd", "patroni"], "\(links)")
            #expect(!links.values.contains { $0.lowercased().contains("plain") }, "no plaintext link: \(links)")
            let relayKey = ca.replacingOccurrences(of: "ca.crt", with: "relay/key.pem")
            #expect(((try FileManager.default.attributesOfItem(atPath: relayKey))[.posixPermissions] as? Int) == 0o600, "TLS keys are 0600")
            let relayEpochBefore = try relayEpoch(deployment, status)
            #expect(relayEpochBefore == 1)

            // The supervisor restarts a crashed node (SIGKILL of the standby's own PID) and counts it.
            let killed = try #require(pid(nodes.last?["pid"]), "node-b's pid")
            kill(killed, SIGKILL)
            let restarted = try await waitFor(seconds: 30) { () throws -> (Int32, Int?)? in
                let node = (try deployment.status()["nodes"] as? [[String: Any]] ?? []).first { $0["name"] as? String == "node-b" }
                guard let node, node["alive"] as? Bool == true, let now = pid(node["pid"]), now != killed else { return nil }
                return (now, node["restarts"] as? Int)
            }
            #expect(restarted?.1 == 1, "node-b was restarted once by its supervisor, and status counts it: \(String(describing: restarted))")
            if let (newPID, _) = restarted { pids.append(newPID) }
            let log = try deployment.run("logs", "node-b")
            #expect(log.contains("was killed by SIGKILL; restarting it"), "the restart is logged in node-b's log")
            let ready = try await waitFor(seconds: 60) { () -> Bool? in
                (try? deployment.run("exec", "curl", "-fsS", "--max-time", "2", nodeBHealth + "/ready")).map { _ in true }
            }
            #expect(ready == true, "the restarted node-b is ready to take over again")

            // A stream of pushes to both devices through both nodes; the database's primary
            // moves to the other member in the middle of it.
            let bench = TestCluster.bin + "/bramble-bench"
            let relayAudit = try #require((status["relay"] as? [String: Any])?["audit_log"] as? String)
            let stream = try ChildProcess(
                name: "stream", executable: deployment.root + "/deploy/cluster",
                arguments: ["exec", bench, "stream", "--duration", "14", "--rate", "40", "--settle", "30", "--relay-audit", relayAudit],
                logPath: deployment.runDir + "-stream.log", environment: deployment.environment)
            defer { stream.stop(); try? FileManager.default.removeItem(atPath: deployment.runDir + "-stream.log") }
            try await Task.sleep(for: .seconds(4))
            try deployment.run("db-switchover")
            let deadline = ContinuousClock.now + .seconds(90)
            while stream.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(200)) }
            let verdictLine = stream.log.split(separator: "\n").last.map(String.init) ?? ""
            let verdict = try JSONSerialization.jsonObject(with: Data(verdictLine.utf8)) as? [String: Any] ?? [:]
            print("deploy smoke: database switchover under pushes: \(verdictLine)")
            #expect(verdict["lost"] as? Int == 0, "no accepted push lost: \(stream.log.suffix(600))")
            #expect(verdict["duplicates"] as? Int == 0, "no push shown twice")
            // The relay's own record: one primary registered throughout, nothing from an old epoch.
            #expect(verdict["max_serving_primaries"] as? Int == 1 && verdict["registrations"] as? Int == 0, "no second primary, no new registration")
            #expect(verdict["stale_deliveries"] as? Int == 0, "no item from an old epoch")
            #expect((verdict["accepted"] as? Int ?? 0) > 300, "pushes were accepted before and after the switchover")
            // The demo devices logged in to IM and got every message the IM host accepted, once.
            #expect((verdict["im_sent"] as? Int ?? 0) > 0 && verdict["im_lost"] as? Int == 0 && verdict["im_duplicates"] as? Int == 0,
                    "instant messages whole through the switchover: \(verdictLine)")

            let after = try deployment.status()
            let roles = Dictionary(uniqueKeysWithValues: (after["database"] as? [[String: Any]] ?? []).map { ($0["name"] as! String, $0["role"] as? String ?? "") })
            #expect(roles["pg2"] == "master", "Patroni moved the database primary to pg2: \(roles)")
            #expect((after["pair"] as? [[String: Any]] ?? []).map { $0["role"] as? String } == ["primary", "standby"], "no pair failover")
            #expect(try relayEpoch(deployment, after) == relayEpochBefore, "the relay saw no new registration: no pair failover")

            // `make drill`'s set, on this cluster: each drill's verdict must pass (nothing
            // lost or shown twice, no stale delivery, one primary, the fault left its trace).
            // Outage figures are printed, not asserted: they are measurements (chaos/README.md).
            let drills = try runDrills(deployment, mode: mode ?? "")
            let expected = ["kill-primary", "kill-standby", "switchover", "kill-db-primary"] + (mode == "netns" ? ["partition-primary-relay"] : [])
            #expect(Set(drills.keys) == Set(expected), "every drill of the short set ran: \(drills.keys.sorted())")
            for (name, verdict) in drills.sorted(by: { $0.key < $1.key }) {
                #expect(verdict["passed"] as? Bool == true, "drill \(name) passed: \(verdict)")
                // The devices mailed each other through the drill: every send acknowledged to
                // a device is in its recipient's INBOX and its sender's Sent, once.
                #expect((verdict["sent_acked"] as? Int ?? 0) > 0 && verdict["sent_lost"] as? Int == 0 && verdict["sent_duplicates"] as? Int == 0,
                        "drill \(name): the devices' mail whole: \(verdict)")
                #expect((verdict["im_sent"] as? Int ?? 0) > 0 && verdict["im_lost"] as? Int == 0 && verdict["im_duplicates"] as? Int == 0,
                        "drill \(name): every instant message the IM host accepted shown once: \(verdict)")
            }

            // Monitoring saw the drills: the kill of the primary fired the failover alert in
            // Prometheus; afterwards the cluster returns to no firing critical alert; a paused
            // standby shows as one that cannot take over, and clears when it resumes.
            checkDrillAlerts(drills)
            let prometheus = try #require((status["monitoring"] as? [String: Any])?["prometheus"] as? String)
            let critical = try await waitForNoCriticalAlert(deployment, prometheus, seconds: 90)
            #expect(critical.isEmpty, "no critical alert fires once the drills are over: \(critical)")
            try await pausingTheStandbyFiresStandbyCannotTakeOver(deployment, prometheus)
        } catch {
            Issue.record("deploy smoke test: \(error)")
        }
        _ = try? deployment.run("down")

        // Nothing left behind: processes, namespaces, bridge, temp and state dirs.
        #expect(!pids.isEmpty)
        for pid in pids { #expect(isGone(pid), "pid \(pid) is gone") }
        if let namespacePrefix {
            let namespaces = (try? runCommand("/usr/sbin/ip", ["netns", "list"])) ?? ""
            #expect(!namespaces.contains(namespacePrefix), "namespaces removed: \(namespaces)")
            let links = (try? runCommand("/usr/sbin/ip", ["-o", "link", "show"])) ?? ""
            #expect(!links.contains(deployment.environment["BRAMBLE_DEPLOY_PREFIX"]! + "br"), "bridge removed")
        }
        if let tmpdir { #expect(!FileManager.default.fileExists(atPath: tmpdir), "temp dir removed") }
        #expect(!FileManager.default.fileExists(atPath: deployment.runDir), "state dir removed")
    }

    /// The mail host in status (`mail`: smtp, imap, domain, users with passwords, the
    /// service account's user and password file, never its password), and one message sent
    /// by SMTP from the client host and found over IMAP in demo1's mailbox by the service
    /// account (python3's smtplib and imaplib, reading the password from its file), both
    /// over TLS verified against the cluster's CA (a plaintext SMTP client gets nowhere).
    /// The IM host in status: its XMPP listener on its own host, the domain, the demo users
    /// and the drills' sender with their passwords, Prosody among the processes.
    func checkIM(_ deployment: Deployment, _ status: [String: Any]) throws {
        let im = try #require(status["im"] as? [String: Any], "status has im")
        let address = ((status["hosts"] as? [[String: Any]] ?? []).first { $0["name"] as? String == "im" })?["address"] as? String
        #expect(im["xmpp"] as? String == "\(address ?? "?"):\(deployment.environment["BRAMBLE_XMPP_PORT"]!)", "XMPP on the IM host: \(im)")
        #expect(im["domain"] as? String == "example.test")
        let users = im["users"] as? [[String: Any]] ?? []
        #expect(Set(users.compactMap { $0["jid"] as? String }).isSuperset(of: (1...4).map { "demo\($0)@example.test" } + ["im-sender@example.test"]), "\(users)")
        #expect(users.allSatisfy { ($0["password"] as? String)?.count ?? 0 >= 16 }, "each with a random password")
        let processes = status["processes"] as? [[String: Any]] ?? []
        #expect(processes.contains { $0["name"] as? String == "prosody" && $0["host"] as? String == "im" && $0["alive"] as? Bool == true })
    }

    func checkMail(_ deployment: Deployment, _ status: [String: Any]) throws {
        let mail = try #require(status["mail"] as? [String: Any], "status has mail")
        let smtp = try #require(mail["smtp"] as? String), imap = try #require(mail["imap"] as? String)
        let address = ((status["hosts"] as? [[String: Any]] ?? []).first { $0["name"] as? String == "mail" })?["address"] as? String
        #expect(smtp == "\(address ?? "?"):\(deployment.environment["BRAMBLE_SMTP_PORT"]!)", "SMTP on the mail host: \(smtp)")
        #expect(imap == "\(address ?? "?"):\(deployment.environment["BRAMBLE_IMAP_PORT"]!)", "IMAP on the mail host: \(imap)")
        #expect(mail["submission"] as? String == "\(address ?? "?"):\(deployment.environment["BRAMBLE_SUBMISSION_PORT"]!)",
                "the submission service on the mail host: \(mail["submission"] ?? "none")")
        #expect(mail["domain"] as? String == "example.test")
        let users = mail["users"] as? [[String: Any]] ?? []
        #expect(users.compactMap { $0["email"] as? String } == (1...4).map { "demo\($0)@example.test" }, "four demo mailboxes: \(users)")
        #expect(users.allSatisfy { ($0["password"] as? String)?.count ?? 0 >= 32 }, "each with a random password")
        let account = try #require(mail["service_account"] as? [String: Any])
        let user = try #require(account["user"] as? String), passwordFile = try #require(account["password_file"] as? String)
        let mode = (try FileManager.default.attributesOfItem(atPath: passwordFile)[.posixPermissions] as? Int) ?? 0
        #expect(mode == 0o600, "the service password file is 0600, not \(String(mode, radix: 8))")
        let secret = try String(contentsOfFile: passwordFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let everything = try deployment.run("status", "--json") + deployment.run("status")
        #expect(!secret.isEmpty && !everything.contains(secret), "the service password is in no status output")
        #expect(try deployment.run("status").contains("mail     SMTP \(smtp), IMAP \(imap)"), "the status screen has a mail line")

        let messageID = "<deploy-\(UUID().uuidString)@bramble.test>"
        let script = """
            import os, sys, smtplib, imaplib, ssl, time
            smtp, imap, user, password_file, mid = sys.argv[1:]
            tls = ssl.create_default_context(cafile=os.environ["BRAMBLE_CA_FILE"])
            host, port = smtp.split(":")
            try:
                smtplib.SMTP(host, int(port), timeout=3)
                sys.exit("a plaintext SMTP client was greeted")
            except (OSError, smtplib.SMTPException):
                pass
            with smtplib.SMTP_SSL(host, int(port), timeout=10, context=tls) as s:
                s.sendmail("sender@client.test", ["demo1@example.test"], "From: sender@client.test\\r\\nTo: demo1@example.test\\r\\n"
                           "Subject: deploy test\\r\\nMessage-ID: %s\\r\\n\\r\\nHello.\\r\\n" % mid)
            host, port = imap.split(":")
            for attempt in range(50):
                m = imaplib.IMAP4_SSL(host, int(port), timeout=10, ssl_context=tls)
                m.login("demo1@example.test*" + user, open(password_file).read().strip())
                m.select("INBOX")
                typ, data = m.uid("FETCH", "1:*", "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
                m.logout()
                if mid.encode() in b"".join(p for part in data if isinstance(part, tuple) for p in part):
                    print("found after %d attempt(s)" % (attempt + 1)); sys.exit(0)
                time.sleep(0.1)
            sys.exit("not found")
            """
        let found = try deployment.run("exec", "/usr/bin/python3", "-c", script, smtp, imap, user, passwordFile, messageID)
        #expect(found.contains("found after"), "the message reached demo1's INBOX, read by the service account: \(found)")

        // The Messaging Agent brings it to demo1's device; the device's `control` command
        // asks for More (a short mail has none: an empty last chunk comes back).
        let device = try #require((status["devices"] as? [[String: Any]] ?? []).first { $0["email"] as? String == "demo1@example.test" })
        let log = try #require(device["log"] as? String)
        let control = try #require(device["control"] as? [String])
        #expect(control.count == 4 && FileManager.default.isExecutableFile(atPath: control[0]) && control[1] == "control", "control: \(control)")
        func lines() -> [[String: Any]] {
            (FileManager.default.contents(atPath: log) ?? Data()).split(separator: UInt8(ascii: "\n")).compactMap {
                try? JSONSerialization.jsonObject(with: $0) as? [String: Any]
            }.filter { $0["message_id"] as? String == messageID && $0["service"] as? String != "request" }
        }
        let deadline = Date().addingTimeInterval(10)
        while lines().isEmpty && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        let shown = lines()
        #expect(shown.count == 1 && shown.first?["service"] as? String == "mail" && shown.first?["subject"] as? String == "deploy test",
                "demo1's device showed the mail once: \(shown)")
        try runCommand(control[0], Array(control.dropFirst()) + ["more", messageID])
        while lines().count < 2 && Date() < deadline.addingTimeInterval(10) { Thread.sleep(forTimeInterval: 0.1) }
        #expect(lines().last?["service"] as? String == "more" && lines().last?["more_available"] as? Bool == false, "More answered: \(lines())")
        // The device logged that the server recorded its request, once.
        let recorded = (FileManager.default.contents(atPath: log) ?? Data()).split(separator: UInt8(ascii: "\n")).compactMap {
            try? JSONSerialization.jsonObject(with: $0) as? [String: Any]
        }.filter { $0["service"] as? String == "request" && $0["message_id"] as? String == messageID }
        #expect(recorded.count == 1 && recorded.first?["verb"] as? String == "more", "one request line: \(recorded)")
    }

    /// Every process in the sessions these (session-leading) daemons lead.
    func processes(inSessionsOf leaders: [Int32]) -> [Int32] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init).filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")  // state ppid pgrp session …
            return fields.count > 3 && Int32(fields[3]).map(leaders.contains) == true
        }
    }

    /// A PID from status JSON.
    func pid(_ value: Any?) -> Int32? { (value as? Int).map(Int32.init) }

    /// Polls `probe` every 500 ms until it returns a value, for at most `seconds`.
    func waitFor<T>(seconds: Int, _ probe: () throws -> T?) async throws -> T? {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if let value = try probe() { return value }
            try await Task.sleep(for: .milliseconds(500))
        }
        return nil
    }

    /// Runs `chaos/drill short` against the deployment; each drill's JSON verdict by name.
    func runDrills(_ deployment: Deployment, mode: String) throws -> [String: [String: Any]] {
        var output = ""
        do {
            output = try runCommand(deployment.root + "/chaos/drill", ["short", "--duration", "10"], environment: deployment.environment)
        } catch let failure as CommandFailed {
            output = failure.output  // a failed drill: its verdict says why
        }
        print("drills:\n\(output)")
        var verdicts: [String: [String: Any]] = [:]
        for line in output.split(separator: "\n") where line.hasPrefix("{") {
            if let verdict = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], let name = verdict["drill"] as? String {
                verdicts[name] = verdict
            }
        }
        return verdicts
    }

    /// No such process, or a zombie (stopped; its parent, the script, is gone and init
    /// may reap it late).
    func isGone(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(close, offsetBy: 2)...].hasPrefix("Z")
    }

    /// The epoch the relay registered for the pair's SRP ID, asked from the client host.
    func relayEpoch(_ deployment: Deployment, _ status: [String: Any]) throws -> Int? {
        let url = (status["relay"] as? [String: Any])?["health_url"] as? String ?? ""
        let body = try deployment.run("exec", "curl", "-fsS", "--max-time", "2", url)
        let health = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
        return (health?["sessions"] as? [String: Any])?["bramble"] as? Int
    }
}
