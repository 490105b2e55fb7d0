import BrambleCore
import Configuration
import Foundation
import Logging

/// A daemon's settings, read through swift-configuration. A setting is looked up in, in
/// falling precedence:
/// 1. the flags given: ArgumentParser parses the command line and writes `--help`, its
///    options declared optional with no default; the given ones are the first provider;
/// 2. the environment: `BRAMBLE_<KEY>`, the key in upper case, '-' as '_'
///    (`EnvironmentVariablesProvider` under the prefix `bramble`);
/// 3. the settings file, `--config FILE` or `BRAMBLE_CONFIG` (`SettingsFileProvider`);
/// 4. the default the read passes, which `--help` states.
///
/// Reads are fetches, which throw: a value that does not convert is an error naming the
/// key and where the value came from, never a silent fall-back to the default. A key in
/// the file, or a `BRAMBLE_` variable, that names no setting of the daemon is an error
/// naming the line or the variable. Secrets come only from files (`SecretFile`), through
/// a reader of their own, marked secret. Every read goes to the access log
/// (`logReads(to:)`, debug level) and to the library's `CONFIG_ACCESS_LOG_FILE`; both
/// print secrets as `<REDACTED>`.
public struct DaemonSettings: Sendable {
    /// `BRAMBLE_` variables that Bramble's other programs and scripts read (the CLI, the
    /// bench, `deploy/cluster` and the tests): a daemon inherits them from its starter and
    /// ignores them. Any other `BRAMBLE_` variable must name a setting of the daemon.
    public static let otherProgramsVariables: Set<String> = [
        "BRAMBLE_CONFIG", "BRAMBLE_URL", "BRAMBLE_TOKEN", "BRAMBLE_STATUS",
        "BRAMBLE_ROOT", "BRAMBLE_RUN_DIR", "BRAMBLE_BIN", "BRAMBLE_BUILD", "BRAMBLE_RELAY_ARGS",
        "BRAMBLE_DEPLOY_HOSTS", "BRAMBLE_DEPLOY_PREFIX", "BRAMBLE_DEPLOY_NET", "BRAMBLE_DEPLOY_TLS", "BRAMBLE_TLS_DIR",
        "BRAMBLE_ETCD_PORT", "BRAMBLE_PG_PORT", "BRAMBLE_PATRONI_PORT",
        "BRAMBLE_RELAY_DEVICE_PORT", "BRAMBLE_RELAY_SRP_PORT", "BRAMBLE_RELAY_HTTP_PORT",
        "BRAMBLE_NODE_HTTP_PORT", "BRAMBLE_NODE_B_HTTP_PORT", "BRAMBLE_SUPERVISE_DELAY", "BRAMBLE_SUPERVISE_LIMIT",
        "BRAMBLE_SMTP_PORT", "BRAMBLE_IMAP_PORT", "BRAMBLE_LMTP_PORT", "BRAMBLE_SUBMISSION_PORT", "BRAMBLE_MAIL_EXTRA_USERS", "BRAMBLE_MAIL_NOTIFY_URLS",
        "BRAMBLE_CA_FILE", "BRAMBLE_PLAINTEXT",
    ]

    /// The settings file read, if any.
    public let configFile: String?
    private let keys: Set<String>
    private let secretFiles: [String: SecretFile]
    private let environment: [String: String]
    private let settings: ConfigReader
    private let secrets: ConfigReader
    private let accessLog = SettingsAccessLog()

    /// `flags` holds every setting of the daemon, by key, with the value given on the
    /// command line or nil: its keys are the daemon's settings. `configFile` is `--config`.
    public init(flags: [String: (any SettingsFlagValue)?], configFile: String?, secretFiles: [SecretFile] = [],
                environment: [String: String] = ProcessInfo.processInfo.environment) throws(SettingsFailure) {
        self.environment = environment
        keys = Set(flags.keys)
        self.secretFiles = Dictionary(secretFiles.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
        self.configFile = configFile ?? environment["BRAMBLE_CONFIG"].flatMap { $0.isEmpty ? nil : $0 }
        var file: SettingsFileProvider?
        if let path = self.configFile { file = try SettingsFileProvider(contentsOf: path) }
        try Self.rejectUnknownKeys(file: file, environment: environment, known: keys)

        var given: [AbsoluteConfigKey: ConfigValue] = [:]
        for case let (key, value?) in flags { given[AbsoluteConfigKey([key])] = ConfigValue(value.configContent, isSecret: false) }
        var providers: [any ConfigProvider] = [
            InMemoryProvider(name: "command line", values: given),
            // BRAMBLE_TOKEN is the CLI's; a daemon never reads it, but a description must not show it.
            EnvironmentVariablesProvider(environmentVariables: environment, secretsSpecifier: .specific(["BRAMBLE_TOKEN"]))
                .prefixKeys(with: "bramble"),
        ]
        if let file { providers.append(file) }
        settings = ConfigReader(providers: providers, accessReporter: accessLog)
        secrets = ConfigReader(provider: SecretFilesProvider(secretFiles, settings: settings), accessReporter: accessLog)
    }

    /// Logs every read so far and from now on at debug level (call once logging is bootstrapped).
    public func logReads(to logger: Logger) { accessLog.attach(logger) }

    public func string(_ key: String, default value: String, fileID: String = #fileID, line: UInt = #line) async throws(SettingsFailure) -> String {
        precondition(keys.contains(key), "'\(key)' is not one of the daemon's flags")
        do { return try await settings.fetchString(forKey: ConfigKey([key]), default: value, fileID: fileID, line: line) }
        catch { throw failure(error, key: key, expected: "a string") }
    }

    public func string(_ key: String, fileID: String = #fileID, line: UInt = #line) async throws(SettingsFailure) -> String? {
        precondition(keys.contains(key), "'\(key)' is not one of the daemon's flags")
        do { return try await settings.fetchString(forKey: ConfigKey([key]), fileID: fileID, line: line) }
        catch { throw failure(error, key: key, expected: "a string") }
    }

    public func requiredString(_ key: String, fileID: String = #fileID, line: UInt = #line) async throws(SettingsFailure) -> String {
        guard let value = try await string(key, fileID: fileID, line: line) else { throw Self.missing(key) }
        return value
    }

    public func int(_ key: String, default value: Int, fileID: String = #fileID, line: UInt = #line) async throws(SettingsFailure) -> Int {
        precondition(keys.contains(key), "'\(key)' is not one of the daemon's flags")
        do { return try await settings.fetchInt(forKey: ConfigKey([key]), default: value, fileID: fileID, line: line) }
        catch { throw failure(error, key: key, expected: "an integer") }
    }

    /// An integer setting, nil when it is not set anywhere.
    public func int(_ key: String, fileID: String = #fileID, line: UInt = #line) async throws(SettingsFailure) -> Int? {
        precondition(keys.contains(key), "'\(key)' is not one of the daemon's flags")
        do { return try await settings.fetchInt(forKey: ConfigKey([key]), fileID: fileID, line: line) }
        catch { throw failure(error, key: key, expected: "an integer") }
    }

    /// The contents of a `SecretFile`, nil when its path setting is not set.
    public func secret(_ key: String, fileID: String = #fileID, line: UInt = #line) async throws(SettingsFailure) -> String? {
        precondition(secretFiles[key] != nil, "'\(key)' is not one of the daemon's secret files")
        do { return try await secrets.fetchString(forKey: ConfigKey(key), isSecret: true, fileID: fileID, line: line) }
        catch { throw failure(error, key: key, expected: "a string") }
    }

    /// The contents of a `SecretFile` whose path setting must be set.
    public func requiredSecret(_ key: String, fileID: String = #fileID, line: UInt = #line) async throws(SettingsFailure) -> String {
        guard let value = try await secret(key, fileID: fileID, line: line) else { throw Self.missing(secretFiles[key]?.pathKey ?? key) }
        return value
    }

    static func missing(_ key: String) -> SettingsFailure {
        SettingsFailure("missing setting '\(key)': give --\(key), \(SettingsFile.environmentName(key)) or '\(key) = …' in the settings file")
    }

    /// Our providers throw errors that say where; the library's environment provider names
    /// the variable only. (Flags are typed by ArgumentParser, so they cannot fail here.)
    private func failure(_ error: any Error, key: String, expected: String) -> SettingsFailure {
        switch error {
        case let failure as SettingsFailure: return failure
        case let error as SettingsError: return SettingsFailure(error.description)
        default:
            let name = SettingsFile.environmentName(key)
            guard let value = environment[name] else { return SettingsFailure("cannot read the setting '\(key)': \(error)") }
            return SettingsFailure(SettingsError.badValue(key: key, expected: expected, value: value, origin: "environment variable \(name)").description)
        }
    }

    static func rejectUnknownKeys(file: SettingsFileProvider?, environment: [String: String], known: Set<String>) throws(SettingsFailure) {
        if let file, let setting = file.settings.first(where: { !known.contains($0.key) }) {
            throw SettingsFailure(SettingsError.unknownKey(key: setting.key, origin: file.origin(of: setting)).description)
        }
        let names = Set(known.map(SettingsFile.environmentName))
        for name in environment.keys.sorted() where name.hasPrefix("BRAMBLE_") && !names.contains(name) && !otherProgramsVariables.contains(name) {
            let key = SettingsFile.key(forEnvironmentName: name)
            throw SettingsFailure(SettingsError.unknownKey(key: key, origin: "environment variable \(name)").description)
        }
    }
}

/// A setting that cannot be used. The message names the setting and where its value came
/// from (the file and line, the environment variable), never a secret.
public struct SettingsFailure: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A value ArgumentParser parsed from a flag.
public protocol SettingsFlagValue: Sendable {
    var configContent: ConfigContent { get }
}

extension String: SettingsFlagValue {
    public var configContent: ConfigContent { .string(self) }
}

extension Int: SettingsFlagValue {
    public var configContent: ConfigContent { .int(self) }
}
