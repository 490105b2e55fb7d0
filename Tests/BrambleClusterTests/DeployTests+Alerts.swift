@testable import BrambleTestSupport
import Foundation
import Testing

/// The alert rules (deploy/monitoring/bramble.rules.yml) at work in the deployed cluster's
/// own Prometheus: the drills' faults fire what they should and the cluster returns to no
/// firing critical alert; a paused standby shows as one that cannot take over.
extension DeployTests {
    struct FiringAlert: Equatable {
        var name: String
        var severity: String
        var instance: String?
    }

    /// The alerts firing now, from Prometheus's API (asked from the client host, where the
    /// monitoring host's address exists).
    func firingAlerts(_ deployment: Deployment, _ prometheus: String) throws -> [FiringAlert] {
        let body = try deployment.run("exec", "curl", "-fsS", "--max-time", "2", prometheus + "/api/v1/alerts")
        let answer = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
        let alerts = (answer?["data"] as? [String: Any])?["alerts"] as? [[String: Any]] ?? []
        return alerts.compactMap { alert in
            let labels = alert["labels"] as? [String: String] ?? [:]
            guard alert["state"] as? String == "firing", let name = labels["alertname"] else { return nil }
            return FiringAlert(name: name, severity: labels["severity"] ?? "", instance: labels["instance"])
        }
    }

    /// Each drill of the short set, as monitoring saw it: the verdict carries the alerts,
    /// and the kill of the primary fired the failover alert (Prometheus's API, polled by
    /// chaos/drill through the drill).
    func checkDrillAlerts(_ drills: [String: [String: Any]]) {
        for (name, verdict) in drills.sorted(by: { $0.key < $1.key }) {
            let alerts = verdict["alerts"] as? [[String: Any]]
            #expect(alerts != nil && verdict["alerts_missed"] is [String], "drill \(name) was watched in Prometheus: \(verdict)")
            print("drill \(name): alerts \(alerts ?? []), missed \(verdict["alerts_missed"] ?? "-"), uncleared \(verdict["alerts_uncleared"] ?? "-")")
        }
        let killed = drills["kill-primary"]?["alerts"] as? [[String: Any]] ?? []
        #expect(killed.contains { $0["alert"] as? String == "BrambleFailover" && ($0["fired_after_ms"] as? Int).map { $0 >= 0 } == true },
                "killing the primary fired BrambleFailover: \(killed)")
    }

    /// Polls until no critical alert fires (bounded); the last firing set if it never did.
    func waitForNoCriticalAlert(_ deployment: Deployment, _ prometheus: String, seconds: Int) async throws -> [FiringAlert] {
        var firing: [FiringAlert] = []
        let deadline = ContinuousClock.now + .seconds(seconds)
        repeat {
            firing = (try? firingAlerts(deployment, prometheus)) ?? [FiringAlert(name: "(Prometheus did not answer)", severity: "critical")]
            if !firing.contains(where: { $0.severity == "critical" }) { return [] }
            try await Task.sleep(for: .seconds(1))
        } while ContinuousClock.now < deadline
        return firing.filter { $0.severity == "critical" }
    }

    /// SIGSTOP of the standby: Prometheus cannot scrape it, so no standby could take over
    /// and BrambleStandbyCannotTakeOver fires; after SIGCONT it clears.
    func pausingTheStandbyFiresStandbyCannotTakeOver(_ deployment: Deployment, _ prometheus: String) async throws {
        let status = try deployment.status()
        let standby = try #require((status["pair"] as? [[String: Any]] ?? []).first { $0["role"] as? String == "standby" }?["node"] as? String)
        let pid = try #require(((status["nodes"] as? [[String: Any]] ?? []).first { $0["name"] as? String == standby })?["pid"] as? Int)
        // The last drill's old primary may still be getting ready as the standby.
        let quiet = try await waitFor(seconds: 60) { () throws -> Bool? in
            try firingAlerts(deployment, prometheus).contains { $0.name == "BrambleStandbyCannotTakeOver" } ? nil : true
        }
        #expect(quiet == true, "not firing before the pause")
        let paused = ContinuousClock.now
        kill(Int32(pid), SIGSTOP)
        var resumed = false
        defer { if !resumed { kill(Int32(pid), SIGCONT) } }
        let fired = try await waitFor(seconds: 60) { () throws -> Bool? in
            try firingAlerts(deployment, prometheus).contains { $0.name == "BrambleStandbyCannotTakeOver" } ? true : nil
        }
        let firedAfter = ContinuousClock.now - paused
        kill(Int32(pid), SIGCONT)
        resumed = true
        print("deploy: the standby \(standby) paused: BrambleStandbyCannotTakeOver firing after \(firedAfter)")
        #expect(fired == true, "pausing the standby fired BrambleStandbyCannotTakeOver")
        let cleared = try await waitFor(seconds: 60) { () throws -> Bool? in
            try firingAlerts(deployment, prometheus).contains { $0.name == "BrambleStandbyCannotTakeOver" } ? nil : true
        }
        print("deploy: the standby resumed: the alert cleared after \(ContinuousClock.now - paused - firedAfter)")
        #expect(cleared == true, "the alert cleared once the standby was back")
    }
}
