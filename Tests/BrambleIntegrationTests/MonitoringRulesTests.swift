@testable import BrambleTestSupport
import Foundation
import Testing

/// The Prometheus alert rules operators load (deploy/monitoring/bramble.rules.yml): valid
/// for Prometheus's own checker, every rule right on synthetic series (promtool's unit
/// tests in bramble.rules.test.yml), and every alert tested and given a runbook paragraph.
@Suite struct MonitoringRulesTests {
    let directory = TestCluster.root + "/deploy/monitoring"

    /// The alert names the rules define, in file order.
    func alertNames() throws -> [String] {
        let rules = try String(contentsOfFile: directory + "/bramble.rules.yml", encoding: .utf8)
        return rules.split(separator: "\n").compactMap { line in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            return trimmed.hasPrefix("- alert: ") ? String(trimmed.dropFirst("- alert: ".count)) : nil
        }
    }

    @Test func promtoolAcceptsTheRulesAndTheirUnitTestsPass() throws {
        let check = try runCommand("/usr/bin/promtool", ["check", "rules", directory + "/bramble.rules.yml"])
        #expect(check.contains("SUCCESS: \(try alertNames().count) rules found"), "promtool check rules: \(check)")
        // promtool resolves rule_files against the test file's directory.
        let test = try runCommand("/usr/bin/promtool", ["test", "rules", directory + "/bramble.rules.test.yml"])
        #expect(test.contains("SUCCESS") && !test.contains("FAILED"), "promtool test rules: \(test)")
    }

    @Test func everyAlertIsTestedFiringAndHasARunbookParagraph() throws {
        let names = try alertNames()
        #expect(names.count >= 15 && Set(names).count == names.count, "distinct alerts: \(names)")
        let tests = try String(contentsOfFile: directory + "/bramble.rules.test.yml", encoding: .utf8)
        let readme = try String(contentsOfFile: TestCluster.root + "/README.md", encoding: .utf8)
        for name in names {
            // A case where it fires (labels expected), besides the quiet cluster's empty one.
            let firing = tests.components(separatedBy: "alertname: \(name)\n        exp_alerts:\n          - exp_labels:").count - 1
            let inline = tests.components(separatedBy: "alertname: \(name), exp_alerts: [{exp_labels:").count - 1
            #expect(firing + inline > 0, "\(name) has a promtool case in which it fires")
            #expect(tests.contains("alertname: \(name), exp_alerts: []}"), "\(name) has a case in which it must not fire")
            #expect(readme.contains("<a id=\"runbook-\(name.lowercased())\"></a>"), "README has a runbook paragraph for \(name)")
        }
    }
}
