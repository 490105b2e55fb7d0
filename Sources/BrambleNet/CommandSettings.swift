import BrambleCore
import Foundation

/// The shell around `SettingsFile` for a daemon's `main`: finds `--config FILE` (or
/// `BRAMBLE_CONFIG`), reads the file, and returns the command line to parse, with the
/// file's and the environment's settings ahead of the real flags.
public enum CommandSettings {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// `command` is a default instance of the parsable command: its stored properties
    /// (ArgumentParser's `_name` wrappers) give the known keys.
    public static func commandLine(for command: Any, arguments: [String] = Array(CommandLine.arguments.dropFirst()),
                                   environment: [String: String] = ProcessInfo.processInfo.environment) throws -> [String] {
        var rest: [String] = []
        var path = environment["BRAMBLE_CONFIG"].flatMap { $0.isEmpty ? nil : $0 }
        var i = 0
        while i < arguments.count {
            let arg = arguments[i]
            if arg == "--config" {
                guard i + 1 < arguments.count else { throw Failure(description: "--config needs a file") }
                path = arguments[i + 1]
                i += 2
                continue
            }
            if arg.hasPrefix("--config=") { path = String(arg.dropFirst("--config=".count)); i += 1; continue }
            if arg == "--" { rest.append(contentsOf: arguments[i...]); break }
            rest.append(arg)
            i += 1
        }
        // --help needs nothing else to be right.
        if rest.contains(where: { $0 == "--help" || $0 == "-h" }) { return rest }
        var known = Set<String>()
        var flags = Set<String>()
        for child in Mirror(reflecting: command).children {
            guard let label = child.label, label.hasPrefix("_") else { continue }
            let key = SettingsFile.key(forProperty: label)
            guard key != "config" else { continue }
            known.insert(key)
            if String(describing: type(of: child.value)).hasPrefix("Flag<") { flags.insert(key) }
        }
        var file: [SettingsFile.Setting] = []
        if let path {
            guard let data = FileManager.default.contents(atPath: path) else { throw Failure(description: "cannot read the settings file \(path)") }
            guard let text = String(data: data, encoding: .utf8) else { throw Failure(description: "\(path) is not UTF-8 text") }
            do { file = try SettingsFile.parse(text) } catch { throw Failure(description: "\(path): \(error)") }
        }
        do {
            return try SettingsFile.arguments(file: file, environment: environment, arguments: rest, known: known, flags: flags)
        } catch {
            // Errors about a file line name the file; those about a variable stand alone.
            let fromFile = if case .unknownKey(_, let origin) = error { origin.hasPrefix("line") } else { true }
            throw Failure(description: fromFile ? "\(path ?? "settings"): \(error)" : "\(error)")
        }
    }
}
