import ArgumentParser
import BrambleAPI
import BrambleNet
import Foundation

struct IMCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "im", abstract: "Instant messaging: the pair's session limits and the cached sessions.",
        subcommands: [Settings.self, Sessions.self])

    struct Settings: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show or change the pair's IM limits.",
            discussion: """
                --max-sessions N: the most IM sessions the pair holds at once (none: no maximum;
                then this server's own limit, the nodes' im-session-limit, applies and a login past
                it gets "Failed"). At the maximum a login gets "Server Busy", unless an idle timeout
                is set: then sessions idle past it, and those of devices out of coverage, are logged
                out to make room first.
                --idle-timeout D: a session with no request from its device for D (30s, 15m, 2h,
                1d; none: never) is logged out, and its device told so.
                Without options, shows the limits.
                """)
        @OptionGroup var connection: Connection
        @Option(help: "N (1 or more), or none.") var maxSessions: String?
        @Option(help: "A duration (30s, 15m, 2h, 1d), or none.") var idleTimeout: String?

        func validate() throws { _ = try change() }

        func change() throws -> IMSettingsChange? {
            guard maxSessions != nil || idleTimeout != nil else { return nil }
            var c = IMSettingsChange()
            if let maxSessions {
                if maxSessions == "none" { c.clear_max_sessions = true } else {
                    guard let n = Int(maxSessions), n >= 1 else { throw ValidationError("--max-sessions must be a number of sessions (1 or more) or none") }
                    c.max_sessions = n
                }
            }
            if let idleTimeout {
                if idleTimeout == "none" { c.clear_idle_timeout = true } else {
                    guard let ms = Self.milliseconds(idleTimeout), ms >= 1_000 else {
                        throw ValidationError("--idle-timeout must be a duration of at least 1s (30s, 15m, 2h, 1d) or none")
                    }
                    c.idle_timeout_ms = ms
                }
            }
            return c
        }

        static func milliseconds(_ text: String) -> Int? {
            let units: [Character: Int] = ["s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000]
            guard let unit = text.last, let scale = units[unit], let n = Int(text.dropLast()), n > 0, n <= 30 * 86_400_000 / scale else { return nil }
            return n * scale
        }

        func run() async throws {
            let status = if let change = try change() {
                try await connection.call(.PATCH, AdminAPI.im, body: change, as: IMStatus.self)
            } else {
                try await connection.call(.GET, AdminAPI.im, as: IMStatus.self)
            }
            try connection.show(status) { s in
                "IM: maximum \(s.max_sessions.map { "\($0) sessions" } ?? "none"), idle timeout "
                    + "\(s.idle_timeout_ms.map { "\($0 / 1000) s" } ?? "none"), \(s.sessions.count) sessions cached"
            }
        }
    }

    struct Sessions: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the cached IM sessions: device, JID, presence, since, last activity.")
        @OptionGroup var connection: Connection

        func run() async throws {
            let status = try await connection.call(.GET, AdminAPI.im, as: IMStatus.self)
            try connection.show(status) { s in
                s.sessions.isEmpty ? "no IM sessions" : s.sessions.map { "\($0.pin)  \($0.jid)  \($0.presence)  since \($0.since.formatted(.iso8601))  last activity \($0.last_activity.formatted(.iso8601))" }
                    .joined(separator: "\n")
            }
        }
    }
}
