import Logging

/// One-line-per-event logs on standard error, level from `--log-level` or
/// `BRAMBLE_LOG_LEVEL`. Callers put data in metadata, never keys or passwords.
public enum BrambleLogging {
    public static func bootstrap(level: String?) {
        let env = level ?? ProcessInfoLite.environment("BRAMBLE_LOG_LEVEL") ?? "info"
        let parsed = Logger.Level(rawValue: env) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = parsed
            return handler
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

enum ProcessInfoLite {
    static func environment(_ name: String) -> String? {
        guard let v = getenv(name) else { return nil }
        return String(cString: v)
    }
}
