import Configuration
import Logging
import Synchronization

/// The access log of a daemon's settings: every read, with the provider that answered and
/// the value (secrets as `<REDACTED>`, rendered by the library), logged at debug level.
/// Reads made before logging is bootstrapped (the log level itself) are kept and logged
/// once a logger is attached.
final class SettingsAccessLog: AccessReporter, Sendable {
    private struct State {
        var logger: AccessLogger?
        var pending: [AccessEvent] = []
    }

    private let state = Mutex(State())

    func report(_ event: AccessEvent) {
        let logger = state.withLock { state in
            if state.logger == nil { state.pending.append(event) }
            return state.logger
        }
        logger?.report(event)
    }

    func attach(_ logger: Logger) {
        let accessLogger = AccessLogger(logger: logger, level: .debug, message: "setting read")
        let pending = state.withLock { state in
            state.logger = accessLogger
            defer { state.pending = [] }
            return state.pending
        }
        for event in pending { accessLogger.report(event) }
    }
}
