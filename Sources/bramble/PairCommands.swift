import ArgumentParser
import BrambleAPI
import BrambleCore
import BrambleNet
import Foundation

func describe(_ s: PairStatus) -> String {
    var lines: [String] = []
    let lease: String
    if let l = s.lease, let holder = l.holder {
        lease = "held by \(holder) at epoch \(l.epoch), " + (l.expires_in_ms >= 0 ? "expires in \(l.expires_in_ms) ms" : "expired \(-l.expires_in_ms) ms ago")
    } else if let l = s.lease {
        lease = "free at epoch \(l.epoch)" + (l.handover_to.map { ", handed over to \($0)" } ?? "")
    } else {
        lease = "unknown"
    }
    lines.append("pair \(s.pair): lease \(lease); thresholds failover \(s.failover_threshold), promotion \(s.promotion_threshold)")
    let header = ["NODE", "ROLE", "EPOCH", "SCORE", "HEARTBEAT", "URL"]
    var rows = [header]
    for n in s.nodes {
        let age = n.heartbeat_age_ms > 60_000 ? "\(n.heartbeat_age_ms / 1000) s ago" : "\(n.heartbeat_age_ms) ms ago"
        rows.append([n.node, n.role.rawValue + (n.requests_lease ? " (asks for the lease)" : ""), n.epoch.map(String.init) ?? "-",
                     "\(n.score)", age, n.api_url])
    }
    let widths = header.indices.map { i in rows.map { $0[i].count }.max()! }
    for row in rows {
        lines.append(row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  "))
    }
    for n in s.nodes {
        for c in n.parameters where !c.healthy { lines.append("  \(n.node): \(c.parameter.rawValue) unhealthy: \(c.detail)") }
    }
    lines.append("database: " + (s.database.reachable ? "reachable" : "unreachable: \(s.database.error ?? "?")") + " (as \(s.answered_by) sees it)")
    lines.append("relay \(s.relay.address): \(s.relay.detail)")
    return lines.joined(separator: "\n")
}

// MARK: Commands

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the pair: each node's role, epoch, score and heartbeat age; the lease; the database; the relay.",
        discussion: "Any node answers from the heartbeats in the configuration database; unhealthy parameters are listed under the table.")
    @OptionGroup var connection: Connection

    func run() async throws {
        try connection.show(try await connection.call(.GET, AdminAPI.pair, as: PairStatus.self), human: describe)
    }
}

struct FailoverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "failover",
        abstract: "Planned switchover: the primary hands the lease to the standby.",
        discussion: """
            The primary closes its SRP link first, stops delivering, records the event and releases the lease to the standby, which promotes at the next epoch, registers with the relay and resends every unacknowledged item. Nothing accepted is lost and devices show nothing twice. Refused when the standby is not running or scores below the promotion threshold. Waits up to 10 s for the new primary and says how long the switch took.
            """)
    @OptionGroup var connection: Connection
    @Option(help: "The node to hand over to (default: the pair's standby).") var to: String?

    func run() async throws {
        let before = try await connection.call(.GET, AdminAPI.pair, as: PairStatus.self)
        guard let primary = before.primary else {
            throw Failure(status: 0, message: "pair \(before.pair) has no primary right now; nothing to switch over")
        }
        let started = Date()
        // Asked of each node given (never of a URL read from the database): only the
        // primary hands over; a standby answers not_primary and the next node is asked.
        let done = try await connection.call(.POST, AdminAPI.failover, body: FailoverRequest(to: to), as: FailoverDone.self,
                                             retryElsewhere: [.notPrimary])
        if connection.json { return try connection.show(done) { _ in "" } }
        // Wait for the new primary to show in the heartbeats.
        while Date().timeIntervalSince(started) < 10 {
            if let now = try? await connection.call(.GET, AdminAPI.pair, as: PairStatus.self),
               let next = now.nodes.first(where: { $0.role == .primary && $0.node != done.from }) {
                let ms = Int(Date().timeIntervalSince(started) * 1000)
                print("switched over: \(done.from) → \(next.node) at epoch \(next.epoch ?? 0) (heartbeat seen after \(ms) ms)")
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw Failure(status: 0, message: "\(primary.node) released the lease, but no new primary showed within 10 s; see `bramble status`")
    }
}

struct PairCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pair", abstract: "Configure the HA pair, or read its event log.", subcommands: [ThresholdsCommand.self, EventsCommand.self])

    struct EventsCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "events",
            abstract: "Show the pair's event log: promotions, demotions (with their reasons), threshold changes.",
            discussion: "Oldest first, times in UTC from the configuration database's clock. Each promotion names the lease epoch the node served at; no two nodes ever promote at the same epoch.")
        @OptionGroup var connection: Connection
        @Option(help: "How many of the newest events to show, 1–10000.") var limit = 20

        func validate() throws {
            guard (1...10_000).contains(limit) else { throw ValidationError("--limit must be 1…10000") }
        }

        func run() async throws {
            let log = try await connection.call(.GET, AdminAPI.events(limit: limit), as: PairEventLog.self)
            try connection.show(log) { log in
                let time = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
                let lines = log.events.map { e in
                    let at = Date(timeIntervalSince1970: Double(e.atUnixMs) / 1000).formatted(time)
                    return [at, e.node, e.kind.rawValue, e.epoch.map { "epoch \($0)" } ?? "-", e.detail].joined(separator: "  ")
                }
                return lines.isEmpty ? "pair \(log.pair): no events yet" : lines.joined(separator: "\n")
            }
        }
    }

    struct ThresholdsCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "thresholds",
            abstract: "Show or set the failover and promotion thresholds.",
            discussion: """
                Thresholds are positions in the health parameter list (1 wireless_network, 2 dispatcher, 3 configuration_database, 4 messaging_agent, 5 user_accounts_started, 6 messaging_server_reachable, 7 at_least_one_user, 8 collaboration, 9 mds, 10 attachment, 11 policy, 12 synchronization). The primary demotes itself when its score falls below the failover threshold and the standby asks for the lease; the standby promotes only while its own score reaches the promotion threshold. Both nodes pick a change up at their next heartbeat. Without options, shows them.
                """)
        @OptionGroup var connection: Connection
        @Option(help: "Failover threshold, 0–12.") var failover: Int?
        @Option(help: "Promotion threshold, 0–12.") var promotion: Int?

        func run() async throws {
            let thresholds = failover == nil && promotion == nil
                ? try await connection.call(.GET, AdminAPI.thresholds, as: Thresholds.self)
                : try await connection.call(.PUT, AdminAPI.thresholds, body: Thresholds(failover: failover, promotion: promotion), as: Thresholds.self)
            try connection.show(thresholds) { "failover \($0.failover ?? 0), promotion \($0.promotion ?? 0)" }
        }
    }
}
