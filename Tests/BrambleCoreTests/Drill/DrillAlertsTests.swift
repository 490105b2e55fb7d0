import BrambleCore
import Foundation
import Testing

/// A drill read in monitoring: which alerts fired after the fault, how soon, and how soon
/// after the heal they cleared, from chaos/drill's poll log of Prometheus's alerts.
@Suite struct DrillAlertsTests {
    /// Prometheus's `/api/v1/alerts` answer with these (name, state, severity, instance).
    func answer(_ alerts: [(String, String, String, String)]) -> String {
        let items = alerts.map { name, state, severity, instance in
            #"{"labels":{"alertname":"\#(name)","severity":"\#(severity)","instance":"\#(instance)"},"annotations":{"summary":"s"},"state":"\#(state)","activeAt":"2026-12-06T17:00:00Z","value":"1e+00"}"#
        }
        return #"{"status":"success","data":{"alerts":["# + items.joined(separator: ",") + "]}}"
    }

    let fault: Int64 = 1_000_000, heal: Int64 = 1_002_000

    /// A kill of the primary: the failover alert 3 s after the fault, the restart 5 s
    /// after; the failover clears 31 s after the heal, the restart 33 s after.
    func killPrimaryLog(alreadyFiring: Bool = false) -> Data {
        var lines: [String] = []
        let old = alreadyFiring ? [("BrambleDeliverySlow", "firing", "warning", "node-a")] : []
        for second in -3...60 {
            var alerts = old
            let at = fault + Int64(second) * 1_000
            if at >= fault + 1_000 && at < fault + 3_000 { alerts.append(("BrambleFailover", "pending", "warning", "node-b")) }
            if at >= fault + 3_000 && at < heal + 31_000 { alerts.append(("BrambleFailover", "firing", "warning", "node-b")) }
            if at >= fault + 5_000 && at < heal + 33_000 {
                alerts.append(("BrambleRestarted", "firing", "warning", "node-a"))
                alerts.append(("BrambleRestarted", "firing", "critical", "relay"))  // one name, two instances: counted once, gravest
            }
            lines.append("\(at) \(answer(alerts))")
        }
        lines.insert("not a poll", at: 10)
        return Data(lines.joined(separator: "\n").utf8)
    }

    @Test func eachAlertFiredAfterTheFaultIsTimedFromTheFaultAndToItsClearing() throws {
        let polls = DrillAlerts.parse(log: killPrimaryLog())
        #expect(polls.count == 64, "every poll read, the unreadable line skipped")
        let alerts = DrillAlerts(drill: .killPrimary, polls: polls, faultAtMs: fault, healAtMs: heal)
        #expect(alerts.fired == [
            .init(alert: "BrambleFailover", severity: "warning", firedAfterMs: 3_000, clearedAfterHealMs: 31_000),
            .init(alert: "BrambleRestarted", severity: "critical", firedAfterMs: 5_000, clearedAfterHealMs: 33_000),
        ], "pending is not firing; \(alerts.fired)")
        #expect(alerts.missed.isEmpty && alerts.uncleared.isEmpty && alerts.alreadyFiring.isEmpty)
        #expect(alerts.summary == "BrambleFailover 3.0s→31.0s, BrambleRestarted 5.0s→33.0s")
    }

    @Test func anAlertFiringBeforeTheFaultIsNotMeasuredButNamed() throws {
        let alerts = DrillAlerts(drill: .killPrimary, polls: DrillAlerts.parse(log: killPrimaryLog(alreadyFiring: true)), faultAtMs: fault, healAtMs: heal)
        #expect(alerts.alreadyFiring == ["BrambleDeliverySlow"])
        #expect(alerts.fired.map(\.alert) == ["BrambleFailover", "BrambleRestarted"])
    }

    @Test func anExpectedAlertLateOrAbsentIsMissedAndOneStillFiringIsUncleared() throws {
        // The failover alert only 20 s after the fault, past the 15 s goal, and never cleared.
        let polls = (0...40).map { second in
            DrillAlerts.Poll(atMs: fault + Int64(second) * 1_000, firing: second >= 20 ? ["BrambleFailover": "warning"] : [:])
        }
        let alerts = DrillAlerts(drill: .killPrimary, polls: polls, faultAtMs: fault, healAtMs: heal)
        #expect(alerts.missed == ["BrambleFailover", "BrambleRestarted"])
        #expect(alerts.fired.first?.clearedAfterHealMs == nil && alerts.uncleared == ["BrambleFailover"])
        #expect(alerts.summary == "BrambleFailover 20.0s→…")
        // No polls at all: nothing fired, every expected alert missed.
        let none = DrillAlerts(drill: .switchover, polls: [], faultAtMs: fault, healAtMs: heal)
        #expect(none.polls == 0 && none.fired.isEmpty && none.missed == ["BrambleFailover"])
        // A drill that expects nothing misses nothing.
        #expect(DrillAlerts(drill: .slowLink, polls: [], faultAtMs: fault, healAtMs: heal).missed.isEmpty)
    }

    @Test func theVerdictLineAndTheTableCarryTheAlertsWithoutChangingPassed() throws {
        let stream = DrillVerdict.Stream(accepted: 400, shown: 400, lost: 0, duplicates: 0, stale_deliveries: 0, max_serving_primaries: 1,
                                         outage_ms: 950, not_accepted: 0, registrations: 1, shared_epochs: 0, passed: true)
        let late = DrillAlerts(drill: .killPrimary, polls: [], faultAtMs: fault, healAtMs: heal)
        let verdict = DrillVerdict(drill: .killPrimary, stream: stream, databaseLeaderBefore: "pg1", databaseLeaderAfter: "pg1",
                                   alerts: DrillAlerts(drill: .killPrimary, polls: DrillAlerts.parse(log: killPrimaryLog()), faultAtMs: fault, healAtMs: heal))
        let line = try JSONSerialization.jsonObject(with: Data(verdict.jsonLine.utf8)) as? [String: Any] ?? [:]
        let fired = line["alerts"] as? [[String: Any]] ?? []
        #expect(fired.map { $0["alert"] as? String } == ["BrambleFailover", "BrambleRestarted"])
        #expect(fired.first?["fired_after_ms"] as? Int == 3_000 && fired.first?["cleared_after_heal_ms"] as? Int == 31_000)
        #expect(line["alerts_expected"] as? [String] == ["BrambleFailover", "BrambleRestarted"] && line["alerts_missed"] as? [String] == [])
        #expect(line["passed"] as? Bool == true)
        // Missing alerts are a measurement: the drill still passes.
        let missing = DrillVerdict(drill: .killPrimary, stream: stream, databaseLeaderBefore: "pg1", databaseLeaderAfter: "pg1", alerts: late)
        #expect(missing.passed)
        // Without monitoring the line has no alert fields.
        let plain = DrillVerdict(drill: .killPrimary, stream: stream, databaseLeaderBefore: "pg1", databaseLeaderAfter: "pg1")
        #expect(!plain.jsonLine.contains("alerts"))

        let table = DrillTable(jsonLines: Data((verdict.jsonLine + "\n" + missing.jsonLine + "\n").utf8)).text.split(separator: "\n").map(String.init)
        #expect(table[0].hasSuffix("alerts (fired s after the fault→cleared s after the heal)"), "\(table[0])")
        #expect(table[1].hasSuffix("BrambleFailover 3.0→31.0, BrambleRestarted 5.0→33.0"), "\(table[1])")
        #expect(table[2].hasSuffix("none, missed: BrambleFailover, BrambleRestarted"), "\(table[2])")
        // A table of verdicts without monitoring has no alerts column.
        #expect(!DrillTable(jsonLines: Data(plain.jsonLine.utf8)).text.contains("alerts"))
    }
}
