import Foundation
@testable import BrambleTestSupport
import XCTest

/// The example settings files under deploy/examples are the documentation of every
/// setting; these tests keep them true to the binaries, and check that a file, the
/// environment and the flags reach the daemon in that order of precedence.
final class SettingsFileIntegrationTests: XCTestCase {
    func testExampleFilesDocumentEverySettingOfTheirDaemon() throws {
        for daemon in ["bramble-server", "bramble-relay"] {
            let help = try runCommand(TestCluster.bin + "/" + daemon, ["--help"])
            let options = Set(help.matches(of: /(?m)^\s+--([a-z][a-z0-9-]*)/).map { String($0.1) }).subtracting(["config", "help"])
            XCTAssertGreaterThan(options.count, 5, "\(daemon) --help lists its options")
            let example = try String(contentsOfFile: TestCluster.root + "/deploy/examples/\(daemon).conf", encoding: .utf8)
            // Set or commented out, each setting appears as 'key = …' at the start of a line.
            let documented = Set(example.matches(of: /(?m)^#? ?([a-z][a-z0-9-]*) =/).map { String($0.1) })
            XCTAssertEqual(documented, options, "deploy/examples/\(daemon).conf lists every option of \(daemon) --help")
        }
    }

    func testFlagsBeatEnvironmentWhichBeatsTheFile() throws {
        let dir = NSTemporaryDirectory() + "bramble-settings-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "bramble \(Data(repeating: 7, count: 32).base64EncodedString())\n".write(toFile: dir + "/keys", atomically: true, encoding: .utf8)
        try "0123456789abcdefghij\n".write(toFile: dir + "/token", atomically: true, encoding: .utf8)
        // lease-ms 50 is invalid, so the daemon stops at validation and names the value it got.
        try "srp-key-file = \(dir)/keys\nadmin-token-file = \(dir)/token\nlease-ms = 50\n".write(toFile: dir + "/node.conf", atomically: true, encoding: .utf8)
        func leaseSeen(_ arguments: [String], _ environment: [String: String] = [:]) -> String {
            var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("BRAMBLE_") }
            env.merge(environment) { $1 }
            do {
                _ = try runCommand(TestCluster.bin + "/bramble-server", arguments, environment: env)
                return "started"
            } catch let failed as CommandFailed {
                return failed.output.firstMatch(of: /got (\d+)/).map { String($0.1) } ?? failed.output
            } catch { return "\(error)" }
        }
        XCTAssertEqual(leaseSeen(["--config", dir + "/node.conf"]), "50")
        XCTAssertEqual(leaseSeen([], ["BRAMBLE_CONFIG": dir + "/node.conf"]), "50")
        XCTAssertEqual(leaseSeen(["--config", dir + "/node.conf"], ["BRAMBLE_LEASE_MS": "70"]), "70")
        XCTAssertEqual(leaseSeen(["--config", dir + "/node.conf", "--lease-ms", "90"], ["BRAMBLE_LEASE_MS": "70"]), "90")

        try "srp-key-file = \(dir)/keys\nlease = 5\n".write(toFile: dir + "/bad.conf", atomically: true, encoding: .utf8)
        XCTAssertTrue(leaseSeen(["--config", dir + "/bad.conf"]).contains("bad.conf: line 2: unknown setting 'lease'"))
        XCTAssertTrue(leaseSeen(["--config", dir + "/missing.conf"]).contains("cannot read the settings file"))
    }
}
