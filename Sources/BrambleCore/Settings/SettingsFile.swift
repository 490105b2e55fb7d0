/// A daemon's settings file. The daemons read their settings through swift-configuration
/// (BrambleNet's `DaemonSettings`): flags, then the environment (`BRAMBLE_` + the key in
/// upper case, '-' as '_'), then this file, then the default. Every key is a long
/// option's name without its dashes (`db-host`), so the sources name a setting the same
/// way and `--help` documents them all.
///
/// File syntax, one setting per line: `key = value`. Blank lines and lines starting with
/// '#' are ignored; a value may be wrapped in double quotes to keep leading or trailing
/// spaces. The parser is bounded (size, line length) and fails with `SettingsError`.
public enum SettingsFile {
    public static let maxBytes = 64 * 1024
    public static let maxLineBytes = 4096

    public struct Setting: Equatable, Sendable {
        public var key: String
        public var value: String
        public var line: Int
        public init(key: String, value: String, line: Int) {
            self.key = key
            self.value = value
            self.line = line
        }
    }

    public static func parse(_ text: String) throws(SettingsError) -> [Setting] {
        guard text.utf8.count <= maxBytes else { throw .tooLarge(limit: maxBytes) }
        var settings: [Setting] = []
        var seen: [String: Int] = [:]
        for (index, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let number = index + 1
            guard raw.utf8.count <= maxLineBytes else { throw .lineTooLong(line: number) }
            let line = raw.trimmingSpaces()
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let equals = line.firstIndex(of: "=") else { throw .syntax(line: number, reason: "expected 'key = value'") }
            let key = line[..<equals].trimmingSpaces()
            guard isKey(key) else { throw .syntax(line: number, reason: "'\(key)' is not a setting name (lower-case letters, digits, '-')") }
            var value = line[line.index(after: equals)...].trimmingSpaces()
            if value.hasPrefix("\"") {
                guard value.count >= 2, value.hasSuffix("\"") else { throw .syntax(line: number, reason: "unterminated quoted value") }
                value = value.dropFirst().dropLast()
            }
            guard !value.contains(where: { $0.isNewline || $0 == "\0" }) else { throw .syntax(line: number, reason: "control character in value") }
            if let first = seen[String(key)] { throw .duplicate(key: String(key), line: number, firstLine: first) }
            seen[String(key)] = number
            settings.append(Setting(key: String(key), value: String(value), line: number))
        }
        return settings
    }

    /// The environment variable of a setting: `db-host` → `BRAMBLE_DB_HOST` (the naming of
    /// swift-configuration's `EnvironmentVariablesProvider` under the prefix `bramble`).
    public static func environmentName(_ key: String) -> String {
        "BRAMBLE_" + key.uppercased().replacingOccurrences(of: "-", with: "_")
    }

    /// The setting a `BRAMBLE_` variable would name: `BRAMBLE_DB_HOST` → `db-host`.
    public static func key(forEnvironmentName name: String) -> String {
        String(name.dropFirst("BRAMBLE_".count)).lowercased().replacingOccurrences(of: "_", with: "-")
    }

    static func isKey(_ s: Substring) -> Bool {
        (1...64).contains(s.count) && s.first!.isLetter
            && s.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-") }
    }
}

public enum SettingsError: Error, Equatable, CustomStringConvertible {
    case tooLarge(limit: Int)
    case lineTooLong(line: Int)
    case syntax(line: Int, reason: String)
    case duplicate(key: String, line: Int, firstLine: Int)
    case unknownKey(key: String, origin: String)
    /// `expected` says what the setting takes ("an integer"); `origin` where the value
    /// came from ("/etc/bramble/bramble-server.conf: line 3", "environment variable …").
    case badValue(key: String, expected: String, value: String, origin: String)

    public var description: String {
        switch self {
        case .tooLarge(let limit): "the settings file is larger than \(limit) bytes"
        case .lineTooLong(let line): "line \(line) is longer than \(SettingsFile.maxLineBytes) bytes"
        case .syntax(let line, let reason): "line \(line): \(reason)"
        case .duplicate(let key, let line, let first): "line \(line): '\(key)' was already set on line \(first)"
        case .unknownKey(let key, let origin): "\(origin): unknown setting '\(key)' (see --help for the settings)"
        case .badValue(let key, let expected, let value, let origin): "\(origin): '\(key)' takes \(expected), got '\(value)'"
        }
    }
}

extension Substring {
    fileprivate func trimmingSpaces() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s = s.dropLast() }
        return s
    }
}
