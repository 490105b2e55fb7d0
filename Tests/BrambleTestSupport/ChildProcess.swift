import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Starts a program with posix_spawn, its output appended to `logPath`; waits with
/// waitpid. (Foundation's Process.waitUntilExit can hang inside async tests.)
private func spawn(_ executable: String, _ arguments: [String], logPath: String, environment: [String: String]? = nil) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    let env = ProcessInfo.processInfo.environment.merging(environment ?? [:]) { _, new in new }.map { "\($0.key)=\($0.value)" }
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    let envp = env.map { strdup($0) } + [nil]
    defer { (argv + envp).forEach { free($0) } }
    // The child starts with no signal blocked, as from a shell: the test runner's threads
    // block most signals, and a daemon that never unblocks them (Dovecot) would ignore SIGTERM.
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var noSignals = sigset_t()
    sigemptyset(&noSignals)
    posix_spawnattr_setsigmask(&attributes, &noSignals)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
    guard rc == 0 else { throw SetupError("cannot start \(executable): \(String(cString: strerror(rc)))") }
    return pid
}

/// Reaps `pid`; nil if it is still running and `block` is false.
@discardableResult
private func reap(_ pid: pid_t, block: Bool) -> Int32? {
    var status: Int32 = 0
    let r = waitpid(pid, &status, block ? 0 : WNOHANG)
    guard r == pid else { return r == -1 ? -1 : nil }
    return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
}

/// A process a test started: its output goes to a log file; it is stopped by PID.
final class ChildProcess: @unchecked Sendable {
    let name: String
    let logPath: String
    let pid: pid_t
    private var exited = false
    /// Its exit status once it exited by itself and was reaped (128 + N: killed by signal N).
    private(set) var exitStatus: Int32?

    init(name: String, executable: String, arguments: [String], logPath: String, environment: [String: String]? = nil) throws {
        self.name = name
        self.logPath = logPath
        pid = try spawn(executable, arguments, logPath: logPath, environment: environment)
    }

    var isRunning: Bool {
        if exited { return false }
        if let status = reap(pid, block: false) { (exited, exitStatus) = (true, status) }
        return !exited
    }

    /// SIGKILL: the process gets no chance to clean up (a crash, a power cut).
    func kill() {
        guard isRunning else { return }
        Glibc.kill(pid, SIGKILL)
        reap(pid, block: true)
        exited = true
    }

    /// SIGSTOP: the process freezes (a long GC pause, a hung VM) until `resume()`.
    func pause() { if isRunning { Glibc.kill(pid, SIGSTOP) } }

    /// SIGCONT.
    func resume() { if isRunning { Glibc.kill(pid, SIGCONT) } }

    /// SIGTERM, then SIGKILL after `seconds`.
    func stop(seconds: Double = 5) {
        guard isRunning else { return }
        Glibc.kill(pid, SIGCONT)  // a paused process cannot act on SIGTERM
        Glibc.kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(seconds)
        while isRunning && Date() < deadline { usleep(20_000) }
        kill()
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
}

/// Runs a command to completion and returns its output; throws if it fails.
/// Output goes through a file, not a pipe: a daemon the command starts (pg_ctl's
/// postmaster) may hold a pipe open long after the command has exited.
@discardableResult
func runCommand(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws -> String {
    let outputPath = NSTemporaryDirectory() + "bramble-cmd-" + UUID().uuidString
    defer { try? FileManager.default.removeItem(atPath: outputPath) }
    let pid = try spawn(executable, arguments, logPath: outputPath, environment: environment)
    let status = reap(pid, block: true) ?? -1
    let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
    guard status == 0 else {
        throw CommandFailed(command: ([executable] + arguments).joined(separator: " "), status: status, output: text)
    }
    return text
}

struct CommandFailed: Error, CustomStringConvertible {
    let command: String
    let status: Int32
    let output: String
    var description: String { "`\(command)` exited \(status):\n\(output)" }
}
