/// A daemon's settings from three sources, in rising precedence: a settings file, the
/// environment (`BRAMBLE_` + the key in upper case, '-' as '_'), and the command line.
/// Every key is a long option's name without its dashes (`db-host`), so the three
/// sources name a setting the same way and `--help` documents them all.
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

    /// The command line a parser should see: file settings, then environment settings,
    /// then `arguments` (so that, with last-one-wins options, flags beat the environment
    /// and the environment beats the file). `known` holds every key the daemon has;
    /// boolean flags (`flags`) take "true" or "false" instead of a value.
    public static func arguments(file: [Setting], environment: [String: String], arguments: [String],
                                 known: Set<String>, flags: Set<String> = []) throws(SettingsError) -> [String] {
        var result: [String] = []
        func add(_ key: String, _ value: String, origin: String) throws(SettingsError) {
            guard known.contains(key) else { throw .unknownKey(key: key, origin: origin) }
            if flags.contains(key) {
                switch value {
                case "true": result.append("--" + key)
                case "false": break
                default: throw .badBoolean(key: key, origin: origin)
                }
            } else {
                result.append(contentsOf: ["--" + key, value])
            }
        }
        for setting in file { try add(setting.key, setting.value, origin: "line \(setting.line)") }
        for key in known.sorted() {
            let name = environmentName(key)
            if let value = environment[name] { try add(key, value, origin: "environment variable \(name)") }
        }
        return result + arguments
    }

    public static func environmentName(_ key: String) -> String {
        "BRAMBLE_" + key.uppercased().replacingOccurrences(of: "-", with: "_")
    }

    /// The option name a Swift property gets on the command line: `srpKeyFile` →
    /// `srp-key-file`, `srpID` → `srp-id`, `advertiseURL` → `advertise-url`.
    public static func key(forProperty name: String) -> String {
        let chars = Array(name.hasPrefix("_") ? name.dropFirst() : Substring(name))
        var out = ""
        for (i, c) in chars.enumerated() {
            if c.isUppercase, i > 0 {
                let previous = chars[i - 1]
                let nextIsLower = i + 1 < chars.count && chars[i + 1].isLowercase
                if previous.isLowercase || previous.isNumber || (previous.isUppercase && nextIsLower) { out.append("-") }
            }
            out.append(contentsOf: c.lowercased())
        }
        return out
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
    case badBoolean(key: String, origin: String)

    public var description: String {
        switch self {
        case .tooLarge(let limit): "the settings file is larger than \(limit) bytes"
        case .lineTooLong(let line): "line \(line) is longer than \(SettingsFile.maxLineBytes) bytes"
        case .syntax(let line, let reason): "line \(line): \(reason)"
        case .duplicate(let key, let line, let first): "line \(line): '\(key)' was already set on line \(first)"
        case .unknownKey(let key, let origin): "\(origin): unknown setting '\(key)' (see --help for the settings)"
        case .badBoolean(let key, let origin): "\(origin): '\(key)' takes true or false"
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
