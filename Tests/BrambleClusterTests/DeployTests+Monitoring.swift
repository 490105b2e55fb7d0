@testable import BrambleTestSupport
import Foundation
import Testing

extension DeployTests {
    /// Every scrape target of the monitoring host's Prometheus, as `job/instance`: the names
    /// the alert rules (deploy/monitoring/*.rules.yml) and the dashboard select on.
    static let monitoringTargets: Set<String> = [
        "bramble-node/node-a", "bramble-node/node-b", "bramble-relay/relay", "patroni/pg1", "patroni/pg2", "prometheus/monitoring",
    ]

    /// Dashboard expressions that may rightly return nothing, each with why. Keep it tiny:
    /// every other panel must show data on a healthy cluster.
    static let panelsAllowedEmpty: [String: String] = [
        #"ALERTS{alertstate="firing"}"#: "no alert fires on a healthy cluster",
    ]

    /// The monitoring host: status's `monitoring` (Prometheus's URL on its own host, the
    /// rule files it loaded, its config and log, its PID among the processes), and what
    /// its Prometheus says through its HTTP API, asked from the client host: every target
    /// up under its job and instance names, scraped over HTTPS; the rule groups of
    /// deploy/monitoring loaded, none failing to evaluate; and every expression of
    /// deploy/monitoring/bramble-dashboard.json parsed and answered with data (after at
    /// most about 30 s, so that rate() and increase() have two samples), but those in
    /// `panelsAllowedEmpty`.
    func checkMonitoring(_ deployment: Deployment, _ status: [String: Any]) async throws {
        let monitoring = try #require(status["monitoring"] as? [String: Any], "status has monitoring")
        let address = ((status["hosts"] as? [[String: Any]] ?? []).first { $0["name"] as? String == "monitoring" })?["address"] as? String
        let prometheus = try #require(monitoring["prometheus"] as? String)
        #expect(monitoring["host"] as? String == "monitoring")
        #expect(prometheus == "http://\(address ?? "?"):\(deployment.environment["BRAMBLE_PROMETHEUS_PORT"]!)", "Prometheus on the monitoring host: \(monitoring)")
        let processes = status["processes"] as? [[String: Any]] ?? []
        let process = processes.first { $0["name"] as? String == "prometheus" }
        #expect(process?["host"] as? String == "monitoring" && process?["alive"] as? Bool == true, "prometheus among the processes: \(processes)")
        #expect(pid(monitoring["prometheus_pid"]) != nil && pid(monitoring["prometheus_pid"]) == pid(process?["pid"]), "monitoring.prometheus_pid")
        let config = try #require(monitoring["config"] as? String)
        let log = try #require((monitoring["logs"] as? [String: Any])?["prometheus"] as? String)
        #expect(FileManager.default.fileExists(atPath: log), "Prometheus's log: \(log)")
        // No secret in its config or its command line: /metrics needs no token.
        let token = try #require(status["admin_token"] as? String)
        let commandLine = (try? String(contentsOfFile: "/proc/\(pid(process?["pid"]) ?? 0)/cmdline", encoding: .utf8)) ?? ""
        #expect(try !String(contentsOfFile: config, encoding: .utf8).contains(token) && !commandLine.contains(token), "no token in prometheus.yml or argv")
        #expect(try deployment.run("status").contains("monitoring Prometheus \(prometheus)  targets up 6/6"), "the status screen has a monitoring line")

        /// `data` of a Prometheus API answer, asked from the client host (the address exists
        /// only inside the namespaces); its `error` for a query it refused.
        func api(_ path: String, query: String? = nil) throws -> Any? {
            var arguments = ["exec", "curl", "-sS", "--max-time", "5", "-G", prometheus + path]
            if let query { arguments += ["--data-urlencode", "query=\(query)"] }
            let body = try runCommand(deployment.root + "/deploy/cluster", arguments, environment: deployment.environment)
            let answer = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] ?? [:]
            guard answer["status"] as? String == "success" else {
                throw PrometheusRefused(path: path, query: query, error: "\(answer["errorType"] ?? "?"): \(answer["error"] ?? body)")
            }
            return answer["data"]
        }

        // Every target up, under the jobs and instance names the rules select on, and every
        // Bramble and Patroni target scraped over HTTPS (verified against the cluster's CA).
        let targets = (try api("/api/v1/targets", query: nil) as? [String: Any])?["activeTargets"] as? [[String: Any]] ?? []
        let named = Dictionary(targets.map { target -> (String, [String: Any]) in
            let labels = target["labels"] as? [String: String] ?? [:]
            return ("\(labels["job"] ?? "?")/\(labels["instance"] ?? "?")", target)
        }) { first, _ in first }
        #expect(Set(named.keys) == Self.monitoringTargets && targets.count == Self.monitoringTargets.count, "Prometheus's targets: \(named.keys.sorted())")
        for (name, target) in named.sorted(by: { $0.key < $1.key }) {
            #expect(target["health"] as? String == "up", "target \(name) is up: \(target["lastError"] ?? "")")
            if !name.hasPrefix("prometheus/") {
                #expect((target["scrapeUrl"] as? String)?.hasPrefix("https://") == true, "\(name) scraped over HTTPS: \(target["scrapeUrl"] ?? "")")
            }
        }

        // The rule groups of deploy/monitoring/*.rules.yml (read with python3's yaml, which
        // Patroni brings), as loaded: status names the copies, Prometheus their groups.
        let rulesDir = deployment.root + "/deploy/monitoring"
        let ruleFiles = try FileManager.default.contentsOfDirectory(atPath: rulesDir).filter { $0.hasSuffix(".rules.yml") }.sorted()
        let loaded = (monitoring["rules"] as? [String] ?? []).map { ($0 as NSString).lastPathComponent }.sorted()
        #expect(loaded == ruleFiles, "status's monitoring.rules are copies of deploy/monitoring's rule files: \(loaded) vs \(ruleFiles)")
        let groupsScript = "import json, sys, yaml\nprint(json.dumps([g['name'] for f in sys.argv[1:] for g in (yaml.safe_load(open(f)) or {}).get('groups', [])]))"
        let fileGroups = ruleFiles.isEmpty ? [] : try JSONSerialization.jsonObject(with: Data(
            try runCommand("/usr/bin/python3", ["-c", groupsScript] + ruleFiles.map { rulesDir + "/" + $0 }).utf8)) as? [String] ?? []
        let groups = (try api("/api/v1/rules") as? [String: Any])?["groups"] as? [[String: Any]] ?? []
        #expect(groups.compactMap { $0["name"] as? String }.sorted() == fileGroups.sorted(), "the rule groups loaded are deploy/monitoring's: \(fileGroups)")
        let failing = groups.flatMap { $0["rules"] as? [[String: Any]] ?? [] }.filter { $0["health"] as? String == "err" }
        #expect(failing.isEmpty, "no rule fails to evaluate: \(failing.map { "\($0["name"] ?? "?"): \($0["lastError"] ?? "")" })")

        // The dashboard: an exported Grafana dashboard on the ${DS_PROMETHEUS} input, and
        // every panel's every expression answered with data (rows' nested panels too).
        let dashboardPath = rulesDir + "/bramble-dashboard.json"
        let dashboard = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dashboardPath))) as? [String: Any])
        #expect(dashboard["uid"] as? String == "bramble-overview" && dashboard["title"] as? String == "Bramble")
        #expect((dashboard["schemaVersion"] as? Int ?? 0) >= 36, "a current Grafana schema")
        #expect((dashboard["__inputs"] as? [[String: Any]] ?? []).contains { $0["name"] as? String == "DS_PROMETHEUS" && $0["pluginId"] as? String == "prometheus" })
        var expressions: [(panel: String, expr: String)] = []
        func walk(_ panels: [[String: Any]]) {
            for panel in panels {
                let title = panel["title"] as? String ?? "?"
                if panel["type"] as? String != "row" {
                    #expect((panel["datasource"] as? [String: Any])?["uid"] as? String == "${DS_PROMETHEUS}", "panel \(title) reads ${DS_PROMETHEUS}")
                }
                for target in panel["targets"] as? [[String: Any]] ?? [] {
                    if let expr = target["expr"] as? String { expressions.append((title, expr)) }
                }
                walk(panel["panels"] as? [[String: Any]] ?? [])
            }
        }
        walk(dashboard["panels"] as? [[String: Any]] ?? [])
        #expect(expressions.count >= 20, "the dashboard's expressions: \(expressions.count)")

        // Each expression once; those without data yet asked again until the deadline (a
        // rate() needs two samples: a scrape interval of 2 s). A refused query fails at once.
        var pending = expressions
        var nanOnly: [String] = []
        let deadline = ContinuousClock.now + .seconds(30)
        while !pending.isEmpty {
            var empty: [(panel: String, expr: String)] = []
            for entry in pending {
                do {
                    let result = (try api("/api/v1/query", query: entry.expr) as? [String: Any])?["result"] as? [[String: Any]] ?? []
                    if result.isEmpty {
                        empty.append(entry)
                    } else if result.allSatisfy({ ($0["value"] as? [Any])?.last as? String == "NaN" }) {
                        nanOnly.append("\(entry.panel): \(entry.expr)")  // series, but nothing observed in the window
                    }
                } catch {
                    Issue.record("panel \(entry.panel): \(entry.expr) does not parse or run: \(error)")
                }
            }
            pending = empty.filter { Self.panelsAllowedEmpty[$0.expr] == nil }
            if pending.isEmpty || ContinuousClock.now >= deadline { break }
            try await Task.sleep(for: .seconds(1))
        }
        #expect(pending.isEmpty, "dashboard panels without data after 30 s: \(pending.map { "\($0.panel): \($0.expr)" })")
        if !nanOnly.isEmpty { print("monitoring: panels with series but nothing observed in the window (NaN): \(nanOnly)") }
        print("monitoring: \(targets.count) targets up, \(groups.count) rule group(s), \(expressions.count) dashboard expressions checked")
    }
}

/// A query Prometheus's API refused (it does not parse, or cannot run).
struct PrometheusRefused: Error, CustomStringConvertible {
    let path: String
    let query: String?
    let error: String
    var description: String { "Prometheus refused \(path)\(query.map { " ?query=\($0)" } ?? ""): \(error)" }
}
