import Configuration
import Foundation

/// A secret a daemon reads from a file (mode 0600), never from a flag, the environment or
/// the settings file: those hold only the file's path, under `pathKey`.
public struct SecretFile: Sendable {
    /// The key the secret is read under (`secret.admin-token`).
    public var key: String
    /// The setting naming the file (`admin-token-file`).
    public var pathKey: String
    /// What the file holds, for messages ("admin token").
    public var what: String
    /// Whether surrounding white space and newlines are dropped (a token, a password); a
    /// file of lines (the SRP key file) is served as it is, so its errors name the line.
    public var trimmed: Bool

    public init(key: String, pathKey: String, what: String, trimmed: Bool = true) {
        self.key = key
        self.pathKey = pathKey
        self.what = what
        self.trimmed = trimmed
    }
}

/// Serves each `SecretFile`'s key as the contents of the file its path setting names, read
/// when the key is read, through `settings` (the flags, environment and settings file).
/// Every value is marked secret, so the configuration library's access logs and
/// descriptions print `<REDACTED>` for it. An unreadable or empty file is an error that
/// names the file, never its contents.
public struct SecretFilesProvider: Sendable {
    let files: [String: SecretFile]
    let settings: ConfigReader

    public init(_ files: [SecretFile], settings: ConfigReader) {
        self.files = Dictionary(files.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
        self.settings = settings
    }

    func lookup(_ key: AbsoluteConfigKey, type: ConfigType, path: (SecretFile) throws -> String?) throws -> LookupResult {
        let name = key.components.joined(separator: ".")
        guard let file = files[name], let path = try path(file) else { return LookupResult(encodedKey: name, value: nil) }
        guard type == .string else { throw SettingsFailure("the \(file.what) is read as a string, not as \(type)") }
        return LookupResult(encodedKey: name, value: ConfigValue(.string(try Self.read(file, at: path)), isSecret: true))
    }

    static func read(_ file: SecretFile, at path: String) throws(SettingsFailure) -> String {
        let bytes: [UInt8]
        do { bytes = try SecretFilePermissions.read(path, what: file.what) } catch { throw SettingsFailure("\(error)") }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw SettingsFailure("the \(file.what) file \(path) is not UTF-8 text")
        }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw SettingsFailure("the \(file.what) file \(path) is empty") }
        return file.trimmed ? trimmed : text
    }
}

extension SecretFilesProvider: ConfigSnapshot {
    public var providerName: String { "secret files" }

    public func value(forKey key: AbsoluteConfigKey, type: ConfigType) throws -> LookupResult {
        try lookup(key, type: type) { settings.string(forKey: ConfigKey($0.pathKey)) }
    }
}

// Secrets are read once, at start: a watch sees the one value.
extension SecretFilesProvider: ReadOnceConfigProvider {
    public func fetchValue(forKey key: AbsoluteConfigKey, type: ConfigType) async throws -> LookupResult {
        let name = key.components.joined(separator: ".")
        guard let file = files[name] else { return LookupResult(encodedKey: name, value: nil) }
        // The path read can fail (a bad value); a fetch surfaces that instead of ignoring it.
        let path = try await settings.fetchString(forKey: ConfigKey(file.pathKey))
        return try lookup(key, type: type) { _ in path }
    }

}
