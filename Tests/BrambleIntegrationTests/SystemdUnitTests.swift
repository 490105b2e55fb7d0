import Foundation
@testable import BrambleTestSupport
import Testing

/// The systemd units in deploy/systemd pass `systemd-analyze verify` without a single
/// warning, and say what the Controller needs: notify and watchdog, restarts on failure,
/// at most 10 a day. `verify` checks that ExecStart exists, so it runs on a copy whose
/// ExecStart names the binary this build made (`make test` builds it first).
@Suite struct SystemdUnitTests {
    static let units = ["bramble-server", "bramble-relay"]
    static let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// The units, copied to a temp dir with ExecStart pointing at the built binaries.
    func copies() throws -> (dir: String, files: [String]) {
        let dir = NSTemporaryDirectory() + "bramble-units-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var files: [String] = []
        for unit in Self.units {
            let text = try String(contentsOfFile: TestCluster.root + "/deploy/systemd/\(unit).service", encoding: .utf8)
            let binary = TestCluster.bin + "/" + unit
            #expect(FileManager.default.isExecutableFile(atPath: binary), "\(binary) is built (make test builds it)")
            let copy = text.replacingOccurrences(of: "ExecStart=/usr/local/bin/\(unit)", with: "ExecStart=\(binary)")
            #expect(copy != text, "\(unit).service starts /usr/local/bin/\(unit)")
            let path = dir + "/\(unit).service"
            try copy.write(toFile: path, atomically: true, encoding: .utf8)
            files.append(path)
        }
        return (dir, files)
    }

    @Test func systemdAnalyzeVerifiesBothUnitsWithoutAWarning() throws {
        let analyze = try #require(Self.analyze, "systemd-analyze is installed (make deps installs the systemd package)")
        let (dir, files) = try copies()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let output: String
        do {
            output = try runCommand(analyze, ["verify"] + files)
        } catch let failure as CommandFailed {
            Issue.record("systemd-analyze verify failed (\(failure.status)):\n\(failure.output)")
            return
        }
        // verify exits 0 even when it ignores a line it cannot parse: every line it prints
        // about these units is a finding.
        let findings = output.split(separator: "\n").filter { line in
            line.contains(dir) || Self.units.contains { line.contains("\($0).service") }
        }
        #expect(findings.isEmpty, "systemd-analyze verify warns about the units:\n\(findings.joined(separator: "\n"))")
    }

    @Test func bothUnitsAreNotifyServicesWithAWatchdogAndBESsRestartLimit() throws {
        for unit in Self.units {
            let text = try String(contentsOfFile: TestCluster.root + "/deploy/systemd/\(unit).service", encoding: .utf8)
            var sections: [String: [String: String]] = [:]
            var section = ""
            for line in text.split(separator: "\n").map({ $0.trimmingCharacters(in: .whitespaces) }) where !line.hasPrefix("#") && !line.isEmpty {
                if line.hasPrefix("[") { section = line; continue }
                let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
                sections[section, default: [:]][parts[0]] = parts.count > 1 ? parts[1] : ""
            }
            let service = sections["[Service]"] ?? [:], unitSection = sections["[Unit]"] ?? [:]
            #expect(service["Type"] == "notify", "\(unit): Type=notify")
            #expect(service["NotifyAccess"] == "main", "\(unit): NotifyAccess=main")
            #expect(service["WatchdogSec"] == "10s", "\(unit): WatchdogSec=10s")
            #expect(service["Restart"] == "on-failure", "\(unit): Restart=on-failure (which includes the watchdog)")
            #expect(unitSection["StartLimitBurst"] == "10" && unitSection["StartLimitIntervalSec"] == "1d", "\(unit): at most 10 starts a day")
            #expect(Int(service["LimitNOFILE"] ?? "") ?? 0 >= 65536, "\(unit): LimitNOFILE raised")
        }
    }
}
