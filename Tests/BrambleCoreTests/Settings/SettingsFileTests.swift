import BrambleCore
import Testing

@Suite("The settings file parser")
struct SettingsFileTests {
    @Test("Parses keys, values, comments and quoted values")
    func parsesKeysValuesCommentsAndQuotes() throws {
        let text = """
            # a comment
            db-host = 10.0.0.1:5432,10.0.0.2:5432

              lease-ms=1000\r
            node = "  spaced  "
            empty =
            """
        #expect(try SettingsFile.parse(text) == [
            .init(key: "db-host", value: "10.0.0.1:5432,10.0.0.2:5432", line: 2),
            .init(key: "lease-ms", value: "1000", line: 4),
            .init(key: "node", value: "  spaced  ", line: 5),
            .init(key: "empty", value: "", line: 6),
        ])
    }

    @Test("Rejects a malformed file, naming the line")
    func rejectsMalformedFilesWithTheirLine() {
        #expect(throws: SettingsError.syntax(line: 2, reason: "expected 'key = value'")) { try SettingsFile.parse("node = a\nno equals here") }
        #expect(throws: SettingsError.duplicate(key: "node", line: 3, firstLine: 1)) { try SettingsFile.parse("node = a\n\nnode = b") }
        #expect(throws: SettingsError.tooLarge(limit: SettingsFile.maxBytes)) { try SettingsFile.parse(String(repeating: "# x\n", count: 20_000)) }
        #expect(throws: SettingsError.lineTooLong(line: 1)) { try SettingsFile.parse("node = " + String(repeating: "x", count: 5000)) }
        for text in ["Node = a", "node = \"a"] {
            let error = #expect(throws: SettingsError.self) { try SettingsFile.parse(text) }
            guard case .syntax(line: 1, _)? = error else { Issue.record("\(text): \(String(describing: error))"); continue }
        }
    }

    @Test("Names a setting's environment variable, and the setting of a variable")
    func namesEnvironmentVariables() {
        #expect(SettingsFile.environmentName("db-password-file") == "BRAMBLE_DB_PASSWORD_FILE")
        #expect(SettingsFile.environmentName("srp-id") == "BRAMBLE_SRP_ID")
        #expect(SettingsFile.key(forEnvironmentName: "BRAMBLE_LEASE_MS") == "lease-ms")
    }

    @Test("An unknown key and a bad value name where they came from")
    func errorsNameTheirOrigin() {
        #expect(SettingsError.unknownKey(key: "lease", origin: "node.conf: line 7").description
            == "node.conf: line 7: unknown setting 'lease' (see --help for the settings)")
        #expect(SettingsError.badValue(key: "lease-ms", expected: "an integer", value: "soon", origin: "environment variable BRAMBLE_LEASE_MS").description
            == "environment variable BRAMBLE_LEASE_MS: 'lease-ms' takes an integer, got 'soon'")
    }
}
