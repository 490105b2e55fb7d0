import BrambleCore
import XCTest

final class SettingsFileTests: XCTestCase {
    func testParsesKeysValuesCommentsAndQuotes() throws {
        let text = """
            # a comment
            db-host = 10.0.0.1:5432,10.0.0.2:5432

              lease-ms=1000\r
            node = "  spaced  "
            empty =
            """
        XCTAssertEqual(try SettingsFile.parse(text), [
            .init(key: "db-host", value: "10.0.0.1:5432,10.0.0.2:5432", line: 2),
            .init(key: "lease-ms", value: "1000", line: 4),
            .init(key: "node", value: "  spaced  ", line: 5),
            .init(key: "empty", value: "", line: 6),
        ])
    }

    func testRejectsMalformedFilesWithTheirLine() {
        XCTAssertThrowsError(try SettingsFile.parse("node = a\nno equals here")) { XCTAssertEqual($0 as? SettingsError, .syntax(line: 2, reason: "expected 'key = value'")) }
        XCTAssertThrowsError(try SettingsFile.parse("Node = a")) { guard case .syntax(1, _)? = $0 as? SettingsError else { return XCTFail("\($0)") } }
        XCTAssertThrowsError(try SettingsFile.parse("node = \"a")) { guard case .syntax(1, _)? = $0 as? SettingsError else { return XCTFail("\($0)") } }
        XCTAssertThrowsError(try SettingsFile.parse("node = a\n\nnode = b")) { XCTAssertEqual($0 as? SettingsError, .duplicate(key: "node", line: 3, firstLine: 1)) }
        XCTAssertThrowsError(try SettingsFile.parse(String(repeating: "# x\n", count: 20_000))) { XCTAssertEqual($0 as? SettingsError, .tooLarge(limit: SettingsFile.maxBytes)) }
        XCTAssertThrowsError(try SettingsFile.parse("node = " + String(repeating: "x", count: 5000))) { XCTAssertEqual($0 as? SettingsError, .lineTooLong(line: 1)) }
    }

    func testFlagsBeatEnvironmentBeatsFile() throws {
        let file = try SettingsFile.parse("lease-ms = 1000\nnode = a\nverbose = true")
        let args = try SettingsFile.arguments(
            file: file, environment: ["BRAMBLE_LEASE_MS": "2000", "BRAMBLE_TOKEN": "not a setting", "BRAMBLE_DB_HOST": "h"],
            arguments: ["--lease-ms", "3000"], known: ["lease-ms", "node", "db-host", "verbose"], flags: ["verbose"])
        // A parser with last-one-wins options sees the file first, the flags last.
        XCTAssertEqual(args, ["--lease-ms", "1000", "--node", "a", "--verbose", "--db-host", "h", "--lease-ms", "2000", "--lease-ms", "3000"])
    }

    func testUnknownKeysAndBadBooleansAreErrors() throws {
        XCTAssertThrowsError(try SettingsFile.arguments(file: [.init(key: "lease", value: "1", line: 7)], environment: [:], arguments: [], known: ["lease-ms"])) {
            XCTAssertEqual($0 as? SettingsError, .unknownKey(key: "lease", origin: "line 7"))
        }
        XCTAssertThrowsError(try SettingsFile.arguments(file: [], environment: ["BRAMBLE_VERBOSE": "yes"], arguments: [], known: ["verbose"], flags: ["verbose"])) {
            XCTAssertEqual($0 as? SettingsError, .badBoolean(key: "verbose", origin: "environment variable BRAMBLE_VERBOSE"))
        }
    }

    func testPropertyNamesBecomeOptionNames() {
        XCTAssertEqual(SettingsFile.key(forProperty: "_srpKeyFile"), "srp-key-file")
        XCTAssertEqual(SettingsFile.key(forProperty: "_srpID"), "srp-id")
        XCTAssertEqual(SettingsFile.key(forProperty: "_advertiseURL"), "advertise-url")
        XCTAssertEqual(SettingsFile.key(forProperty: "_patroniApi"), "patroni-api")
        XCTAssertEqual(SettingsFile.key(forProperty: "node"), "node")
        XCTAssertEqual(SettingsFile.environmentName("db-password-file"), "BRAMBLE_DB_PASSWORD_FILE")
    }
}
