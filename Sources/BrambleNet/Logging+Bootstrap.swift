import Foundation
import Logging

/// One-line-per-event logs on standard error, level from `--log-level` or
/// `BRAMBLE_LOG_LEVEL`. Callers put data in metadata, never keys or passwords.
public enum BrambleLogging {
    public static func bootstrap(level: String?) {
        let name = level ?? ProcessInfo.processInfo.environment["BRAMBLE_LOG_LEVEL"] ?? "info"
        let parsed = Logger.Level(rawValue: name) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = parsed
            return handler
        }
    }
}
