import BrambleCore
import Configuration
import Foundation

/// A settings file (`SettingsFile`: `key = value` lines) as a swift-configuration
/// provider. Its values stay the strings the file holds and are converted when read, to
/// the type the reader asks for; a value that does not convert is a `SettingsError`
/// naming the file, the line and the key. (`InMemoryProvider` is strictly typed: a
/// string read as an int fails without saying where.)
public struct SettingsFileProvider: Sendable {
    public let path: String
    /// The settings in file order.
    public let settings: [SettingsFile.Setting]
    private let byKey: [String: SettingsFile.Setting]

    public init(path: String, settings: [SettingsFile.Setting]) {
        self.path = path
        self.settings = settings
        byKey = Dictionary(settings.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// Reads and parses the file; errors name it.
    public init(contentsOf path: String) throws(SettingsFailure) {
        guard let data = FileManager.default.contents(atPath: path) else { throw SettingsFailure("cannot read the settings file \(path)") }
        guard let text = String(data: data, encoding: .utf8) else { throw SettingsFailure("\(path) is not UTF-8 text") }
        do { self.init(path: path, settings: try SettingsFile.parse(text)) } catch { throw SettingsFailure("\(path): \(error)") }
    }

    /// Where a setting's value came from, as errors say it: "FILE: line N".
    public func origin(of setting: SettingsFile.Setting) -> String { "\(path): line \(setting.line)" }

    func convert(_ setting: SettingsFile.Setting, to type: ConfigType) throws(SettingsError) -> ConfigContent {
        let raw = setting.value
        func bad(_ expected: String) -> SettingsError {
            .badValue(key: setting.key, expected: expected, value: raw, origin: origin(of: setting))
        }
        switch type {
        case .string: return .string(raw)
        case .int:
            guard let value = Int(raw) else { throw bad("an integer") }
            return .int(value)
        case .double:
            guard let value = Double(raw) else { throw bad("a number") }
            return .double(value)
        case .bool:
            switch raw {
            case "true": return .bool(true)
            case "false": return .bool(false)
            default: throw bad("true or false")
            }
        case .stringArray:
            return .stringArray(raw.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        case .bytes, .intArray, .doubleArray, .boolArray, .byteChunkArray:
            throw bad("a \(type) value, which a settings file cannot hold")
        }
    }
}

extension SettingsFileProvider: ConfigSnapshot {
    public var providerName: String { "settings file \(path)" }

    public func value(forKey key: AbsoluteConfigKey, type: ConfigType) throws -> LookupResult {
        let name = key.components.joined(separator: ".")
        guard let setting = byKey[name] else { return LookupResult(encodedKey: name, value: nil) }
        return LookupResult(encodedKey: name, value: ConfigValue(try convert(setting, to: type), isSecret: false))
    }
}

// The file is read once, at start: a watch sees its one value.
extension SettingsFileProvider: ReadOnceConfigProvider {
    public func fetchValue(forKey key: AbsoluteConfigKey, type: ConfigType) async throws -> LookupResult {
        try value(forKey: key, type: type)
    }

}

/// A provider whose values are read once, at start (the settings file, the secret files):
/// it is its own snapshot, and a watch sees its one value.
public protocol ReadOnceConfigProvider: ConfigProvider, ConfigSnapshot {}

extension ReadOnceConfigProvider {
    public func snapshot() -> any ConfigSnapshot { self }

    public nonisolated(nonsending) func watchValue<Return: ~Copyable>(
        forKey key: AbsoluteConfigKey, type: ConfigType,
        updatesHandler: nonisolated(nonsending) (_ updates: ConfigUpdatesAsyncSequence<Result<LookupResult, any Error>, Never>) async throws -> Return
    ) async throws -> Return {
        try await watchValueFromValue(forKey: key, type: type, updatesHandler: updatesHandler)
    }

    public nonisolated(nonsending) func watchSnapshot<Return: ~Copyable>(
        updatesHandler: nonisolated(nonsending) (_ updates: ConfigUpdatesAsyncSequence<any ConfigSnapshot, Never>) async throws -> Return
    ) async throws -> Return {
        try await watchSnapshotFromSnapshot(updatesHandler: updatesHandler)
    }
}
