import BrambleNet
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// SystemdNotifier against a real AF_UNIX datagram socket bound by the test, as systemd
/// binds `$NOTIFY_SOCKET`: what arrives is what systemd would read.
@Suite struct SystemdNotifierTests {
    /// A datagram socket bound to a file path, or to an abstract name (`abstract: true`).
    final class NotifySocket {
        let fd: Int32
        let environmentValue: String
        private let path: String?

        init(abstract: Bool = false) throws {
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw Failure("socket: \(String(cString: strerror(errno)))") }
            let name = "bramble-notify-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            let bytes: [UInt8]
            if abstract {
                path = nil
                environmentValue = "@" + name
                bytes = [0] + Array(name.utf8)
            } else {
                path = NSTemporaryDirectory() + name + ".sock"
                environmentValue = path!
                bytes = Array(path!.utf8)
            }
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: bytes) }
            let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count)
            let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
            guard rc == 0 else { close(fd); throw Failure("bind \(environmentValue): \(String(cString: strerror(errno)))") }
            // Reads must not block the test forever when nothing was sent.
            var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }

        deinit {
            close(fd)
            if let path { unlink(path) }
        }

        /// The next datagram, or nil when none arrives within 200 ms.
        func receive() -> String? {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buffer, buffer.count, 0)
            return n < 0 ? nil : String(decoding: buffer[0..<n], as: UTF8.self)
        }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    @Test func readyStatusAndStoppingReachASocketFile() throws {
        let socket = try NotifySocket()
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": socket.environmentValue])
        #expect(notifier.isEnabled)
        #expect(notifier.notify(.ready, .status("serving on 10.0.0.20:4101")))
        #expect(socket.receive() == "READY=1\nSTATUS=serving on 10.0.0.20:4101\n")
        #expect(notifier.notify(.stopping))
        #expect(socket.receive() == "STOPPING=1\n")
        #expect(notifier.notify(.status("two\nlines")))
        #expect(socket.receive() == "STATUS=two lines\n", "a status is one line")
    }

    @Test func anAbstractSocketNamedWithAnAtSignWorks() throws {
        let socket = try NotifySocket(abstract: true)
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": socket.environmentValue])
        #expect(notifier.address == .abstract(String(socket.environmentValue.dropFirst())))
        #expect(notifier.notify(.ready))
        #expect(socket.receive() == "READY=1\n")
    }

    @Test func theWatchdogIntervalIsHalfOfWatchdogUsecForThisProcessOnly() {
        let env = ["NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": "10000000"]
        #expect(SystemdNotifier(environment: env, pid: 42).watchdogInterval == .seconds(5))
        #expect(SystemdNotifier(environment: env.merging(["WATCHDOG_PID": "42"]) { $1 }, pid: 42).watchdogInterval == .seconds(5))
        #expect(SystemdNotifier(environment: env.merging(["WATCHDOG_PID": "43"]) { $1 }, pid: 42).watchdogInterval == nil,
                "the watchdog belongs to another process")
        #expect(SystemdNotifier(environment: env.merging(["WATCHDOG_USEC": "soon"]) { $1 }, pid: 42).watchdogInterval == nil)
        #expect(SystemdNotifier(environment: env.merging(["WATCHDOG_USEC": "0"]) { $1 }, pid: 42).watchdogInterval == nil)
    }

    @Test func withoutSystemdNothingIsSentAndNothingFails() throws {
        let notifier = SystemdNotifier(environment: [:])
        #expect(!notifier.isEnabled && notifier.watchdogInterval == nil)
        #expect(!notifier.notify(.ready))
        var checked = false
        #expect(!notifier.watchdog(ifAlive: { checked = true; return true }))
        #expect(!checked, "no liveness check runs when there is no watchdog")
        #expect(SystemdNotifier(environment: ["NOTIFY_SOCKET": "relative/path"]).address == nil, "a relative path is not a socket address")
    }

    @Test func theWatchdogIsPingedOnlyWhileTheLivenessChecksPass() throws {
        let socket = try NotifySocket()
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": socket.environmentValue, "WATCHDOG_USEC": "2000000"])
        #expect(notifier.watchdog(ifAlive: { true }))
        #expect(socket.receive() == "WATCHDOG=1\n")
        #expect(!notifier.watchdog(ifAlive: { false }))
        #expect(socket.receive() == nil, "a failed check sends no ping")
    }

    @Test func aPingerPingsAtMostOncePerIntervalAndNotWhileTheChecksFail() throws {
        let socket = try NotifySocket()
        var pinger = WatchdogPinger(notifier: SystemdNotifier(
            environment: ["NOTIFY_SOCKET": socket.environmentValue, "WATCHDOG_USEC": "2000000"]))  // interval 1 s
        let t0 = ContinuousClock.now
        #expect(pinger.pingIfDue(now: t0) { true }, "the first tick pings")
        #expect(socket.receive() == "WATCHDOG=1\n")
        #expect(!pinger.pingIfDue(now: t0 + .milliseconds(400)) { true }, "not due yet")
        #expect(!pinger.pingIfDue(now: t0 + .milliseconds(1100)) { false }, "due, but the loop is not alive")
        #expect(socket.receive() == nil)
        #expect(pinger.pingIfDue(now: t0 + .milliseconds(1200)) { true })
        #expect(socket.receive() == "WATCHDOG=1\n")
        #expect(!pinger.pingIfDue(now: t0 + .milliseconds(1700)) { true }, "the interval counts from the last ping")
    }

    @Test func aSocketNobodyListensOnIsNotAnError() {
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": NSTemporaryDirectory() + "bramble-no-such-socket"])
        #expect(notifier.isEnabled)
        #expect(!notifier.notify(.ready), "the send fails, quietly")
    }
}
