import ArgumentParser
import BrambleCore
import BrambleNet
import Foundation

// MARK: Shapes of the pair's answers

struct PairStatus: Decodable {
    struct Lease: Decodable { var holder: String?; var epoch: Int; var expires_in_ms: Int; var handover_to: String? }
    struct Check: Decodable { var name: String; var healthy: Bool; var detail: String }
    struct Node: Decodable {
        var node: String
        var role: String
        var epoch: Int?
        var score: Int
        var requests_lease: Bool
        var heartbeat_age_ms: Int
        var api_url: String
        var parameters: [Check]
    }
    struct Database: Decodable { var reachable: Bool; var error: String? }
    struct Relay: Decodable { var address: String; var reachable: Bool; var detail: String }
    var pair: String
    var answered_by: String
    var lease: Lease?
    var failover_threshold: Int
    var promotion_threshold: Int
    var nodes: [Node]
    var database: Database
    var relay: Relay
}

struct Thresholds: Codable { var failover: Int?; var promotion: Int? }

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
        rows.append([n.node, n.role + (n.requests_lease ? " (asks for the lease)" : ""), n.epoch.map(String.init) ?? "-",
                     "\(n.score)", age, n.api_url])
    }
    let widths = header.indices.map { i in rows.map { $0[i].count }.max()! }
    for row in rows {
        lines.append(row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  "))
    }
    for n in s.nodes {
        for c in n.parameters where !c.healthy { lines.append("  \(n.node): \(c.name) unhealthy: \(c.detail)") }
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
        let reply = try await connection.send(.GET, "/admin/pair")
        try connection.show(reply, as: PairStatus.self, expect: 200, human: describe)
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
        let status = try await connection.send(.GET, "/admin/pair")
        guard status.status == 200 else { throw Failure(status: status.status, message: status.errorMessage) }
        let pair = try status.decode(PairStatus.self)
        guard let primary = pair.nodes.first(where: { $0.role == "primary" || $0.role == "primary_degraded" }) else {
            throw Failure(status: 0, message: "pair \(pair.pair) has no primary right now; nothing to switch over")
        }
        let token = try connection.clients()[0]
        let started = Date()
        struct Body: Encodable { var to: String? }
        let reply = try await AdminClient(baseURL: primary.api_url, token: token.token).send(.POST, "/admin/failover", json: Body(to: to), timeout: .seconds(10))
        guard reply.status == 200 else { throw Failure(status: reply.status, message: reply.errorMessage) }
        if connection.json { print(String(decoding: reply.body, as: UTF8.self)); return }
        // Wait for the new primary to show in the heartbeats.
        while Date().timeIntervalSince(started) < 10 {
            if let now = try? await connection.send(.GET, "/admin/pair"), let s = try? now.decode(PairStatus.self),
               let next = s.nodes.first(where: { $0.role == "primary" && $0.node != primary.node }) {
                let ms = Int(Date().timeIntervalSince(started) * 1000)
                print("switched over: \(primary.node) → \(next.node) at epoch \(next.epoch ?? 0) (heartbeat seen after \(ms) ms)")
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
            let reply = try await connection.send(.GET, "/admin/pair/events?limit=\(limit)")
            try connection.show(reply, as: PairEventLog.self, expect: 200) { log in
                let time = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
                let lines = log.events.map { e in
                    let at = Date(timeIntervalSince1970: Double(e.atUnixMs) / 1000).formatted(time)
                    return [at, e.node, e.kind, e.epoch.map { "epoch \($0)" } ?? "-", e.detail].joined(separator: "  ")
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
            let reply = failover == nil && promotion == nil
                ? try await connection.send(.GET, "/admin/pair/thresholds")
                : try await connection.send(.PUT, "/admin/pair/thresholds", json: Thresholds(failover: failover, promotion: promotion))
            try connection.show(reply, as: Thresholds.self, expect: 200) { "failover \($0.failover ?? 0), promotion \($0.promotion ?? 0)" }
        }
    }
}
