@testable import BrambleTestSupport
import Foundation
import Testing

/// `bramble check`, the Nagios/Icinga plugin, run as Icinga runs it: the built binary, its
/// exit code and its first line, against a real pair, relay and mail host.
@Suite(.serialized) struct CheckCommandTests {
    /// One run of `bramble check …`.
    struct Run: CustomStringConvertible {
        var code: Int32
        var output: String
        var seconds: Double
        /// The status line (the plugin prints nothing on stderr, so the merged output's first line).
        var line: String { output.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? "" }
        var description: String { "exit \(code) after \(String(format: "%.1f", seconds)) s:\n\(output)" }
    }

    static func check(_ arguments: [String], environment: [String: String] = [:]) -> Run {
        let started = Date()
        let (code, output): (Int32, String)
        do {
            (code, output) = (0, try runCommand(TestCluster.bin + "/bramble", ["check"] + arguments, environment: environment))
        } catch let failed as CommandFailed {
            (code, output) = (failed.status, failed.output)
        } catch {
            (code, output) = (-1, "\(error)")
        }
        return Run(code: code, output: output, seconds: Date().timeIntervalSince(started))
    }

    @Test func aPairIsOKWhenHealthyAWarningWithItsStandbyPausedAndCriticalWhenItsPrimaryIsKilled() async throws {
        var options = TestCluster.Options()
        options.nodes = ["node-a", "node-b"]
        // Six seconds between the primary's death and the standby's promotion, for the
        // check to see the pair without a primary.
        options.leaseMs = 6_000
        try await TestCluster.with(options) { cluster in
            try cluster.provision(email: "check@example.test", pin: "2A00C0DE")  // at_least_one_user: every parameter healthy
            for node in ["node-a", "node-b"] {
                try await cluster.waitFor("\(node) to count the user", seconds: 10) { try await cluster.health(node)["score"] as? Int == 12 }
            }
            // node-a's view of its peer comes from node-b's heartbeat row, a heartbeat behind
            // node-b's own /health: wait until it has the counted score too.
            try await cluster.waitFor("node-a to see node-b's score", seconds: 10) {
                ((try await cluster.health("node-a"))["peer"] as? [String: Any])?["score"] as? Int == 12
            }
            let (a, b) = (cluster.nodeURL("node-a"), cluster.nodeURL("node-b"))
            let (aPlace, bPlace) = (a.dropFirst("https://".count), b.dropFirst("https://".count))
            let ca = ["--ca-file", cluster.tls.ca]
            let pair = ["pair", "--url", a, "--url", b] + ca

            var run = Self.check(pair)
            #expect(run.code == 0, "\(run)")
            #expect(run.line.hasPrefix("BRAMBLE PAIR OK - node-a primary (epoch 1, score 12/12); node-b standby ready (score 12/12) | "
                                       + "node-a_score=12;12:;2:;0;12 node-b_score=12;12:;;0;12 epoch=1 queue_depth=0;;;0 "
                                       + "failover_threshold=2 promotion_threshold=3 time="), "\(run)")
            #expect(run.output.split(separator: "\n").count == 1, "nothing to explain: \(run)")

            run = Self.check(["node", "--url", a] + ca)
            #expect(run.code == 0 && run.line.hasPrefix("BRAMBLE NODE OK - node-a primary (epoch 1, score 12/12) | score=12;12:;2:;0;12 "
                                                        + "failover_threshold=2 promotion_threshold=3 epoch=1 queue_depth=0;;;0 time="), "\(run)")
            #expect(run.output.contains("node-a sees node-b at score 12, heartbeat "), "\(run)")
            run = Self.check(["node", "--url", b + "/health"] + ca)
            #expect(run.code == 0 && run.line.hasPrefix("BRAMBLE NODE OK - node-b standby ready (score 12/12) | score=12;12:;;0;12 "), "\(run)")

            run = Self.check(["relay", "--url", cluster.relayHTTPURL + "/health", "--srp-id", "bramble"] + ca)
            #expect(run.code == 0 && run.line.hasPrefix("BRAMBLE RELAY OK - bramble registered at epoch 1; "), "\(run)")
            #expect(run.line.contains("sessions=1;;;0") && run.line.contains(" stored="), "\(run)")
            run = Self.check(["relay", "--url", cluster.relayHTTPURL, "--srp-id", "elsewhere"] + ca)
            #expect(run.code == 2 && run.line.hasPrefix("BRAMBLE RELAY CRITICAL - no node registered for SRP ID elsewhere; "), "\(run)")
            run = Self.check(["relay", "--url", "https://127.0.0.1:\(cluster.deadPort)"] + ca)
            #expect(run.code == 2 && run.line.hasPrefix("BRAMBLE RELAY CRITICAL - 127.0.0.1:\(cluster.deadPort) unreachable (connection refused) | time="), "\(run)")

            // The standby frozen: it accepts connections but answers nothing.
            let standby = try #require(cluster.nodes["node-b"])
            standby.pause()
            do {
                defer { standby.resume() }
                run = Self.check(pair + ["--timeout", "3"])
                #expect(run.code == 1, "\(run)")
                #expect(run.line.hasPrefix("BRAMBLE PAIR WARNING - node-b unreachable (no answer within 2.4 s): no standby; "
                                           + "node-a primary (epoch 1, score 12/12) | node-a_score=12;"), "\(run)")
                #expect(run.seconds < 5, "\(run)")
                run = Self.check(["node", "--url", b, "--timeout", "2"] + ca)
                #expect(run.code == 2 && run.line.hasPrefix("BRAMBLE NODE CRITICAL - \(bPlace) unreachable (no answer within 1.6 s) | time="), "\(run)")
            }
            try await cluster.waitFor("node-b ready again", seconds: 20) { try await cluster.get(b + "/health/ready").status == 200 }
            #expect(Self.check(pair).code == 0)

            // The primary killed: until the lease runs out the standby does not take over.
            cluster.nodes["node-a"]!.kill()
            run = Self.check(pair)
            #expect(run.code == 2, "\(run)")
            #expect(run.line.hasPrefix("BRAMBLE PAIR CRITICAL - no node serves as primary; node-a unreachable (connection refused); "
                                       + "node-b standby ready (score 12/12) | node-b_score=12;12:;;0;12 "), "\(run)")
            run = Self.check(["node", "--url", a] + ca)
            #expect(run.code == 2 && run.line.hasPrefix("BRAMBLE NODE CRITICAL - \(aPlace) unreachable (connection refused) | time="), "\(run)")

            // node-b took over: the pair serves again, without a standby.
            try await cluster.waitFor("node-b to take over", seconds: 20) { try await cluster.get(b + "/primary").status == 200 }
            try await cluster.waitFor("the check to see node-b serve", seconds: 10) { Self.check(pair).code == 1 }
            run = Self.check(pair)
            #expect(run.code == 1 && run.line.hasPrefix("BRAMBLE PAIR WARNING - node-a unreachable (connection refused): no standby; "
                                                        + "node-b primary (epoch 2, score 12/12) | node-b_score=12;12:;2:;0;12 epoch=2 "), "\(run)")
        }
    }

    @Test func theMessagingAgentsWatchOfAMailboxIsOKFailingOrMissing() async throws {
        var options = TestCluster.Options()
        options.mail = true
        try await TestCluster.with(options) { cluster in
            try cluster.provision(email: "demo1@example.test", pin: "2A00F00D")
            try await cluster.waitFor("the mailbox watched") {
                try await cluster.healthDetail("node-a", "messaging_agent")?.hasPrefix("watching 1 of 1") == true
            }
            let env = cluster.cliEnvironment(cluster.nodeURL)
            var run = Self.check(["mailbox", "demo1@example.test"], environment: env)
            #expect(run.code == 0 && run.line.hasPrefix("BRAMBLE MAILBOX OK - demo1@example.test watched: last good check "), "\(run)")
            #expect(run.line.contains(" | last_check_age=") && run.line.contains("s;120;300;0 time="), "\(run)")
            // The token from a file, as an Icinga host would keep it; it is never printed.
            run = Self.check(["mailbox", "demo1@example.test", "--url", cluster.nodeURL, "--token-file", cluster.dir + "/admin-token",
                              "--ca-file", cluster.tls.ca])
            #expect(run.code == 0, "\(run)")
            #expect(!run.output.contains(cluster.token))

            // A user whose mailbox the mail server refuses.
            try cluster.provision(email: "ghost@example.test", pin: "2A00F0FF")
            try await cluster.waitFor("the failing mailbox reported") {
                Self.check(["mailbox", "ghost@example.test"], environment: env).code == 2
            }
            run = Self.check(["mailbox", "ghost@example.test"], environment: env)
            #expect(run.line.hasPrefix("BRAMBLE MAILBOX CRITICAL - ghost@example.test failing: IMAP LOGIN answered NO"), "\(run)")
            #expect(run.output.contains("\nlast failed check "), "\(run)")

            try cluster.bramble("user", "add", "--email", "demo3@example.test")
            run = Self.check(["mailbox", "demo3@example.test"], environment: env)
            #expect(run.code == 1 && run.line.hasPrefix("BRAMBLE MAILBOX WARNING - demo3@example.test not watched: the user has no device"), "\(run)")
            run = Self.check(["mailbox", "nobody@example.test"], environment: env)
            #expect(run.code == 2 && run.line.hasPrefix("BRAMBLE MAILBOX CRITICAL - no user nobody@example.test | time="), "\(run)")

            var wrong = env
            wrong["BRAMBLE_TOKEN"] = "not-the-token-not-the-token"
            run = Self.check(["mailbox", "demo1@example.test"], environment: wrong)
            #expect(run.code == 3 && run.line.hasPrefix("BRAMBLE MAILBOX UNKNOWN - cannot read demo1@example.test from the admin API: "), "\(run)")
            #expect(run.line.contains("HTTP 401"), "\(run)")
            #expect(!run.output.contains("not-the-token"))
        }
    }

    @Test func badArgumentsAreUnknownNeverArgumentParsersSixtyFour() throws {
        let dead = "http://127.0.0.1:\(try TestCluster.freePorts(1)[0])"
        for (arguments, start) in [
            ([], "BRAMBLE CHECK UNKNOWN - no check given: use pair, node, relay or mailbox"),
            (["bogus"], "BRAMBLE CHECK UNKNOWN - unknown check 'bogus'"),
            (["--timeout", "5", "pair"], "BRAMBLE CHECK UNKNOWN - unknown check '--timeout'"),
            (["pair", "--url", dead], "BRAMBLE PAIR UNKNOWN - a pair has two nodes: give --url twice (got 1)"),
            (["node", "--url", dead, "--timeout", "abc"], "BRAMBLE NODE UNKNOWN - The value 'abc' is invalid for '--timeout <seconds>'"),
            (["node", "--url", dead, "--timeout", "0"], "BRAMBLE NODE UNKNOWN - --timeout must be 0.5…120 seconds"),
            (["node", "--url", dead, "--bogus"], "BRAMBLE NODE UNKNOWN - Unknown option '--bogus'"),
            (["node", "--url", dead, "--timeout"], "BRAMBLE NODE UNKNOWN - Missing value for '--timeout <seconds>'"),
            (["node", "--url", "ftp://127.0.0.1/"], "BRAMBLE NODE UNKNOWN - 'ftp://127.0.0.1' is not an http:// or https:// URL"),
            (["node", "--url", "https://127.0.0.1:1"], "BRAMBLE NODE UNKNOWN - https://127.0.0.1:1 is HTTPS: give --ca-file"),
            (["node", "--url", dead, "--score-warning", "13"], "BRAMBLE NODE UNKNOWN - --score-warning must be 0…12"),
            (["mailbox", "not-an-address", "--url", dead], "BRAMBLE MAILBOX UNKNOWN - 'not-an-address' is not an e-mail address"),
            (["mailbox", "--url", dead], "BRAMBLE MAILBOX UNKNOWN - Missing expected argument '<email>'"),
            (["mailbox", "a@example.test", "--url", dead], "BRAMBLE MAILBOX UNKNOWN - no admin token"),
        ] {
            let run = Self.check(arguments)
            #expect(run.code == 3, "\(arguments): \(run)")
            #expect(run.line.hasPrefix(start), "\(arguments): \(run)")
        }
        let help = Self.check(["pair", "--help"])
        #expect(help.code == 0 && help.output.contains("USAGE: bramble check pair") && help.output.contains("--score-warning"), "\(help)")
        let top = Self.check(["--help"])
        #expect(Self.check(["help"]).output == top.output)
        #expect(top.code == 0 && top.output.contains("0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN"), "\(top)")
        // Nothing listens: CRITICAL at once, not after the time-out.
        let down = Self.check(["node", "--url", dead])
        #expect(down.code == 2 && down.line.hasPrefix("BRAMBLE NODE CRITICAL - \(dead.dropFirst(7)) unreachable (connection refused)"), "\(down)")
        #expect(down.seconds < 3, "\(down)")
    }

    @Test func aHugeMalformedOrStalledAnswerIsUnknownOrCriticalWithinTheTimeout() async throws {
        let port = try TestCluster.freePorts(1)[0]
        let dir = NSTemporaryDirectory() + "bramble-check-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A web server that answers /huge/… with 2 MiB, /garbage/… with what is not JSON,
        // /error/… with a 500, /stall/… with a head and then nothing.
        let server = try ChildProcess(name: "fake", executable: "/usr/bin/python3", arguments: ["-c", """
            import http.server, time
            class H(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    kind = self.path.split('/')[1]
                    body = {'huge': b'[' * (2 << 20), 'garbage': b'{"node": 1, "role": [}', 'stall': b'{'}.get(kind, b'')
                    self.send_response(500 if kind == 'error' else 200)
                    self.send_header('Content-Length', str(len(body) + (100 if kind == 'stall' else 0)))
                    self.end_headers()
                    self.wfile.write(body)
                    self.wfile.flush()
                    if kind == 'stall': time.sleep(30)
            http.server.ThreadingHTTPServer(('127.0.0.1', \(port)), H).serve_forever()
            """], logPath: dir + "/fake.log")
        defer { server.stop(seconds: 1) }
        let base = "http://127.0.0.1:\(port)"
        try await TestCluster.poll("the fake server") { Self.check(["node", "--url", base + "/error"]).code == 2 }

        var run = Self.check(["node", "--url", base + "/huge"])
        #expect(run.code == 3 && run.line.hasPrefix("BRAMBLE NODE UNKNOWN - 127.0.0.1:\(port): an answer larger than 1 MiB"), "\(run)")
        run = Self.check(["node", "--url", base + "/garbage"])
        #expect(run.code == 3 && run.line.hasPrefix("BRAMBLE NODE UNKNOWN - 127.0.0.1:\(port): /health is not a Bramble node's answer"), "\(run)")
        run = Self.check(["node", "--url", base + "/error"])
        #expect(run.code == 2 && run.line.hasPrefix("BRAMBLE NODE CRITICAL - 127.0.0.1:\(port) unreachable (/health answered HTTP 500)"), "\(run)")
        run = Self.check(["relay", "--url", base + "/garbage"])
        #expect(run.code == 3 && run.line.hasPrefix("BRAMBLE RELAY UNKNOWN - 127.0.0.1:\(port): /health is not a Bramble relay's answer"), "\(run)")
        run = Self.check(["pair", "--url", base + "/huge", "--url", base + "/garbage"])
        #expect(run.code == 3 && run.line.hasPrefix("BRAMBLE PAIR UNKNOWN - cannot tell whether a node serves as primary; "), "\(run)")
        // One down and one unreadable: at least a WARNING, whichever the other is.
        run = Self.check(["pair", "--url", base + "/huge", "--url", base + "/error"])
        #expect(run.code == 1 && run.line.hasPrefix("BRAMBLE PAIR WARNING - 127.0.0.1:\(port) unreachable (/health answered HTTP 500); "
                                                    + "cannot tell whether a node serves as primary; "), "\(run)")
        // A head and then silence: whichever gives up first, the check ends within its time.
        run = Self.check(["node", "--url", base + "/stall", "--timeout", "2"])
        #expect([2, 3].contains(run.code), "\(run)")
        #expect(run.line.hasPrefix("BRAMBLE NODE CRITICAL - 127.0.0.1:\(port) unreachable (no answer within 1.6 s)")
                || run.line == "BRAMBLE NODE UNKNOWN - timed out after 2 s", "\(run)")
        #expect(run.seconds < 3.5, "\(run)")
    }
}
