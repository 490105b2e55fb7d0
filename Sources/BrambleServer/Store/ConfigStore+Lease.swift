import BrambleAPI
import BrambleCore
import Foundation
import PostgresNIO

/// The HA pair's lease and heartbeats, all times on the database clock. The HA manager
/// (`HAStateMachine`) decides; these statements make its decisions safe: taking the lease
/// is one conditional UPDATE on the epoch, so of two nodes racing exactly one wins.
extension ConfigStore: PairStore {
    /// The LISTEN/NOTIFY channel: `lease|PAIR` when a lease is taken or released,
    /// `heartbeat|PAIR` when a node's heartbeat changed what its peer acts on (see
    /// `announceHeartbeat`), `outbound|NODE|PIN:FIRST-LAST,…` when pushes are committed
    /// (see `commitPushes`).
    public static let notificationChannel = "bramble"

    public struct FencedError: Error, CustomStringConvertible {
        public let epoch: UInt64
        public var description: String { "the lease no longer holds epoch \(epoch): this node is fenced" }
    }

    /// The pair's failover and promotion thresholds (positions in the health parameter
    /// list); the defaults hold until an operator sets them (`bramble pair thresholds`).
    public struct Thresholds: Sendable, Equatable, Codable {
        public var failover: Int
        public var promotion: Int
        public static let defaults = Thresholds(failover: 2, promotion: 3)
        public init(failover: Int, promotion: Int) {
            self.failover = failover
            self.promotion = promotion
        }
    }

    /// The pair as one heartbeat sees it: the database clock, the lease, the thresholds,
    /// and the peer's heartbeat (`node` is this node; the peer is any other node of the pair).
    public func readPair(_ pair: String, node: String) async throws -> PairView {
        var view = try await leaseAndThresholds(pair)
        for try await (name, score, written, requests) in try await client.query("""
            SELECT node, score, (extract(epoch FROM written_at) * 1000)::bigint, requests_lease
            FROM heartbeats WHERE pair = \(pair) AND node <> \(node) ORDER BY written_at DESC LIMIT 1
            """, logger: logger).decode((String, Int, Int64, Bool).self) {
            view.peer = .init(node: name, score: score, writtenAtMs: UInt64(written), requestsLease: requests)
        }
        return view
    }

    /// The pair's thresholds (the defaults until an operator sets them).
    public func thresholds(_ pair: String) async throws -> Thresholds {
        try await leaseAndThresholds(pair).thresholds
    }

    /// The database clock, the lease and the thresholds in one statement (no peer). A
    /// standby database answers reads too, so the statement also says whether this host
    /// is in recovery, and a standby's answer is refused as `StoreError.readOnly`.
    private func leaseAndThresholds(_ pair: String) async throws -> PairView {
        var view = PairView(nowMs: 0, lease: nil, peer: nil, thresholds: .defaults)
        for try await (inRecovery, n, holder, epoch, expires, handover, failover, promotion) in try await client.query("""
            SELECT pg_is_in_recovery(), (extract(epoch FROM now()) * 1000)::bigint, l.holder, l.epoch,
                   (extract(epoch FROM l.expires_at) * 1000)::bigint, l.handover_to,
                   p.failover_threshold, p.promotion_threshold
            FROM (SELECT 1) AS one LEFT JOIN lease l ON l.pair = \(pair) LEFT JOIN pairs p ON p.pair = \(pair)
            """, logger: logger).decode((Bool, Int64, String?, Int64?, Int64?, String?, Int?, Int?).self) {
            if inRecovery { throw StoreError.readOnly }
            view.nowMs = UInt64(n)
            if let epoch, let expires {
                view.lease = .init(holder: holder, epoch: UInt64(epoch), expiresAtMs: UInt64(max(0, expires)), handoverTo: handover)
            }
            if let failover, let promotion { view.thresholds = Thresholds(failover: failover, promotion: promotion) }
        }
        return view
    }

    public func setThresholds(_ pair: String, _ thresholds: Thresholds) async throws {
        try await client.query("""
            INSERT INTO pairs (pair, failover_threshold, promotion_threshold)
            VALUES (\(pair), \(thresholds.failover), \(thresholds.promotion))
            ON CONFLICT (pair) DO UPDATE SET failover_threshold = EXCLUDED.failover_threshold,
                promotion_threshold = EXCLUDED.promotion_threshold
            """, logger: logger)
    }

    /// Takes the lease if its epoch is still `expectedEpoch`; returns the new epoch
    /// (`expectedEpoch + 1`), or nil when another node got there first. The row is locked
    /// FOR UPDATE first, which waits for every fenced transaction in flight (they hold it
    /// FOR KEY SHARE, see `fenced`): no write of the old epoch commits after the new one
    /// begins. (The UPDATE alone would not wait: it changes no key column.)
    public func takeLease(_ pair: String, node: String, expectedEpoch: UInt64, durationMs: Int) async throws -> UInt64? {
        try await client.query("INSERT INTO lease (pair) VALUES (\(pair)) ON CONFLICT DO NOTHING", logger: logger)
        for try await epoch in try await client.query("""
            WITH locked AS (SELECT pair FROM lease WHERE pair = \(pair) FOR UPDATE)
            UPDATE lease SET holder = \(node), epoch = lease.epoch + 1, handover_to = NULL,
                   expires_at = now() + \(durationMs) * interval '1 millisecond'
            FROM locked WHERE lease.pair = locked.pair AND lease.epoch = \(Int64(expectedEpoch))
            RETURNING lease.epoch, pg_notify(\(Self.notificationChannel), 'lease|' || lease.pair)
            """, logger: logger).decode((Int64, String).self) { return UInt64(epoch.0) }
        return nil
    }

    /// Extends the lease this node holds at `epoch`; false if it is no longer ours. A
    /// plain UPDATE of a non-key column: it does not wait for this node's own fenced
    /// transactions (FOR KEY SHARE), so a burst of slow writes — commits waiting for a
    /// synchronous standby that has just rejoined — cannot starve the renewal and lose
    /// the lease.
    public func renewLease(_ pair: String, node: String, epoch: UInt64, durationMs: Int) async throws -> Bool {
        for try await _ in try await client.query("""
            UPDATE lease SET expires_at = now() + \(durationMs) * interval '1 millisecond'
            WHERE pair = \(pair) AND holder = \(node) AND epoch = \(Int64(epoch))
            RETURNING epoch
            """, logger: logger) { return true }
        return false
    }

    /// Gives the lease up (on demotion), to `handoverTo` when set; the epoch stays, so
    /// the next holder's epoch is higher than every one before it.
    public func releaseLease(_ pair: String, node: String, epoch: UInt64, handoverTo: String?) async throws {
        try await client.query("""
            UPDATE lease SET holder = NULL, expires_at = now(), handover_to = \(handoverTo)
            WHERE pair = \(pair) AND holder = \(node) AND epoch = \(Int64(epoch))
            RETURNING pg_notify(\(Self.notificationChannel), 'lease|' || pair)
            """, logger: logger)
    }

    /// Rewrites this node's heartbeat row; the health checks go in as JSON, for
    /// `bramble status`.
    public func writeHeartbeat(_ h: Heartbeat) async throws {
        let parameters = (try? String(decoding: JSONEncoder().encode(h.parameters), as: UTF8.self)) ?? "[]"
        try await client.query("""
            INSERT INTO heartbeats (node, pair, role, epoch, score, requests_lease, api_url, parameters, written_at)
            VALUES (\(h.node), \(h.pair), \(h.role.rawValue), \(h.epoch.map { Int64($0) }), \(h.score), \(h.requestsLease), \(h.apiURL),
                    \(parameters), now())
            ON CONFLICT (node) DO UPDATE SET pair = EXCLUDED.pair, role = EXCLUDED.role, epoch = EXCLUDED.epoch,
                score = EXCLUDED.score, requests_lease = EXCLUDED.requests_lease, api_url = EXCLUDED.api_url,
                parameters = EXCLUDED.parameters, written_at = now()
            """, logger: logger)
    }

    /// Wakes the pair's nodes to read the heartbeats now rather than at their next
    /// interval: a primary's score crossing the failover threshold, or a standby asking
    /// for the lease, is then acted on in a round trip.
    public func announceHeartbeat(pair: String) async throws {
        try await client.query("SELECT pg_notify(\(Self.notificationChannel), \("heartbeat|" + pair))", logger: logger)
    }

    /// How long ago (database clock) a running `node` last wrote its heartbeat; nil if it
    /// never did or said it stopped.
    public func heartbeatAgeMs(node: String) async throws -> Int64? {
        for try await age in try await client.query("""
            SELECT (extract(epoch FROM now() - written_at) * 1000)::bigint FROM heartbeats
            WHERE node = \(node) AND role <> 'stopped'
            """, logger: logger).decode(Int64.self) { return age }
        return nil
    }

    /// Every node's last heartbeat, the lease and the thresholds, ages on the database clock.
    public func pairStatus(_ pair: String) async throws -> (nodes: [PairStatus.Node], lease: PairStatus.Lease?, thresholds: Thresholds) {
        let view = try await leaseAndThresholds(pair)
        var nodes: [PairStatus.Node] = []
        for try await (name, role, epoch, score, requests, age, url, parameters) in try await client.query("""
            SELECT node, role, epoch, score, requests_lease,
                   (extract(epoch FROM now() - written_at) * 1000)::bigint, api_url, parameters
            FROM heartbeats WHERE pair = \(pair) ORDER BY node
            """, logger: logger).decode((String, String, Int64?, Int, Bool, Int64, String, String).self) {
            let checks = (try? JSONDecoder().decode([HealthCheck].self, from: Data(parameters.utf8))) ?? []
            nodes.append(PairStatus.Node(node: name, role: NodeRole(rawValue: role) ?? .stopped, epoch: epoch.map { UInt64($0) }, score: score, requests_lease: requests,
                                    heartbeat_age_ms: age, api_url: url, parameters: checks))
        }
        let lease = view.lease.map {
            PairStatus.Lease(holder: $0.holder, epoch: $0.epoch, expires_in_ms: Int64($0.expiresAtMs) - Int64(view.nowMs), handover_to: $0.handoverTo)
        }
        return (nodes, lease, view.thresholds)
    }

    public func suspect(_ error: any Error) { database.suspect(error) }

    /// Runs `body` in a transaction that first re-checks, under a key-share lock on the
    /// lease row, that this node still holds `epoch`; throws `FencedError` (committing
    /// nothing) if not. Every state-changing transaction of the serving role goes through
    /// here. The lock conflicts with `takeLease`'s FOR UPDATE (a new epoch waits for the
    /// writes in flight) but not with `renewLease` (the holder's renewal never waits for
    /// its own writes).
    public func fenced<T: Sendable>(_ pair: String, node: String, epoch: UInt64, _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await fencedTransaction(pair, node: node, epoch: epoch, body)
        } catch let failure as TransactionFailure {
            // Say plainly that we are fenced.
            if let fenced = failure.underlying as? FencedError { throw fenced }
            throw failure
        }
    }

    private func fencedTransaction<T: Sendable>(_ pair: String, node: String, epoch: UInt64, _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await client.withConnection { [logger] connection in try await connection.transaction(logger: logger) { conn in
            var holds = false
            for try await _ in try await conn.query("""
                SELECT 1 FROM lease WHERE pair = \(pair) AND holder = \(node) AND epoch = \(Int64(epoch)) FOR KEY SHARE
                """, logger: logger) { holds = true }
            guard holds else { throw FencedError(epoch: epoch) }
            return try await body(conn)
        } }
    }
}
