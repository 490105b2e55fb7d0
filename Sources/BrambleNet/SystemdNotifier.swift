import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// systemd's readiness and watchdog protocol (sd_notify(3)) without libsystemd: one
/// datagram to the AF_UNIX socket named by `$NOTIFY_SOCKET` (a path, or `@name` for an
/// abstract socket) per notification. A unit with `Type=notify` waits for `READY=1`;
/// with `WatchdogSec=` it expects `WATCHDOG=1` at least that often and restarts the
/// process (`Restart=on-failure`) when the pings stop, so a hung process is restarted as
/// well as a dead one. Outside systemd (no `$NOTIFY_SOCKET`) every call does nothing.
///
/// Ping the watchdog only from a loop that must not hang, and only when its own liveness
/// checks pass: `watchdog(ifAlive:)`, or a `WatchdogPinger` driven by that loop's tick.
public struct SystemdNotifier: Sendable {
    /// One line of a notification.
    public enum Message: Equatable, Sendable {
        /// Start-up finished: the service can serve.
        case ready
        /// Graceful shutdown began.
        case stopping
        /// A one-line status for `systemctl status`.
        case status(String)
        /// The keep-alive ping.
        case watchdog

        var line: String {
            switch self {
            case .ready: "READY=1"
            case .stopping: "STOPPING=1"
            case .status(let text): "STATUS=" + text.replacingOccurrences(of: "\n", with: " ")
            case .watchdog: "WATCHDOG=1"
            }
        }
    }

    /// Where notifications go.
    public enum Address: Equatable, Sendable {
        /// A socket file.
        case path(String)
        /// A socket in the abstract namespace (`$NOTIFY_SOCKET` starting with `@`).
        case abstract(String)
    }

    /// The notification socket, nil outside systemd (then nothing is sent).
    public let address: Address?
    /// How often to ping: half of `$WATCHDOG_USEC` (sd_watchdog_enabled(3)'s advice); nil
    /// when the unit has no watchdog, or `$WATCHDOG_PID` names another process.
    public let watchdogInterval: Duration?

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from `environment`;
    /// `pid` is this process's (the watchdog belongs to the unit's main process).
    public init(environment: [String: String] = ProcessInfo.processInfo.environment, pid: Int32 = getpid()) {
        address = Self.address(environment["NOTIFY_SOCKET"])
        watchdogInterval = Self.watchdogInterval(usec: environment["WATCHDOG_USEC"], watchdogPID: environment["WATCHDOG_PID"], pid: pid)
    }

    /// True when running under systemd with a notification socket.
    public var isEnabled: Bool { address != nil }

    /// Sends the messages as one datagram. Returns false when there is no socket or the
    /// send failed (systemd gone, socket full): a service keeps running either way.
    @discardableResult
    public func notify(_ messages: Message...) -> Bool { notify(messages) }

    @discardableResult
    public func notify(_ messages: [Message]) -> Bool {
        guard let address, !messages.isEmpty else { return false }
        return Self.send(messages.map(\.line).joined(separator: "\n") + "\n", to: address)
    }

    /// Pings the watchdog if the unit has one and `checks()` says the caller is alive;
    /// returns whether a ping was sent. A check that fails sends nothing, so systemd
    /// restarts the process once a whole `WatchdogSec` passes without a ping.
    @discardableResult
    public func watchdog(ifAlive checks: () -> Bool) -> Bool {
        guard watchdogInterval != nil, address != nil, checks() else { return false }
        return notify(.watchdog)
    }

    static func address(_ value: String?) -> Address? {
        guard let value, value.count > 1 else { return nil }
        if value.hasPrefix("@") { return .abstract(String(value.dropFirst())) }
        guard value.hasPrefix("/") else { return nil }
        return .path(value)
    }

    static func watchdogInterval(usec: String?, watchdogPID: String?, pid: Int32) -> Duration? {
        guard let usec, let micros = UInt64(usec), micros > 0 else { return nil }
        if let watchdogPID { guard Int32(watchdogPID) == pid else { return nil } }
        return .microseconds(micros / 2)
    }

    private static func send(_ text: String, to address: Address) -> Bool {
        #if canImport(Glibc)
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
        let fd = socket(AF_UNIX, SOCK_DGRAM, 0)
        #endif
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let name: [UInt8]
        switch address {
        case .path(let path): name = Array(path.utf8)
        case .abstract(let abstract): name = [0] + Array(abstract.utf8)  // a leading NUL marks the abstract namespace
        }
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard name.count < capacity else { return false }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: name)
        }
        // An abstract name is exactly its bytes long; a path may carry its NUL.
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + name.count)
        let bytes = Array(text.utf8)
        let sent = withUnsafePointer(to: &addr) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sockaddrPointer in
                bytes.withUnsafeBytes { buffer in
                    sendto(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL), sockaddrPointer, length)
                }
            }
        }
        return sent == bytes.count
    }
}

/// Pings a systemd watchdog from a loop that ticks more often than the ping interval:
/// at most once per interval, and only when the loop's liveness checks pass. Drive it
/// from the loop itself (`pingIfDue` after each tick), so a hung loop stops the pings.
public struct WatchdogPinger: Sendable {
    public let notifier: SystemdNotifier
    private var lastPing: ContinuousClock.Instant?

    public init(notifier: SystemdNotifier) {
        self.notifier = notifier
    }

    /// Pings when the interval has passed since the last ping (or none was sent yet) and
    /// `checks()` passes; returns whether it pinged. `checks` is not called when no ping
    /// is due or the unit has no watchdog.
    @discardableResult
    public mutating func pingIfDue(now: ContinuousClock.Instant = .now, ifAlive checks: () -> Bool) -> Bool {
        guard let interval = notifier.watchdogInterval else { return false }
        if let lastPing, now - lastPing < interval { return false }
        guard notifier.watchdog(ifAlive: checks) else { return false }
        lastPing = now
        return true
    }
}
