import BrambleCore
import Foundation
import PostgresNIO

/// The HA pair's lease and heartbeats, all times on the database clock. The HA manager
/// (`HAStateMachine`) decides; these statements make its decisions safe: taking the lease
/// is one conditional UPDATE on the epoch, so of two nodes racing exactly one wins.
extension ConfigStore {
    public struct FencedError: Error, CustomStringConvertible {
        public let epoch: UInt64
        public var description: String { "the lease no longer holds epoch \(epoch): this node is fenced" }
    }

    /// The pair as one heartbeat sees it: the database clock, the lease, and the peer's
    /// heartbeat (`node` is this node; the peer is any other node of the pair).
    public func readPair(_ pair: String, node: String) async throws -> (nowMs: UInt64, lease: HAStateMachine.Lease?, peer: HAStateMachine.PeerHeartbeat?) {
        var now: UInt64 = 0
        var lease: HAStateMachine.Lease?
        for try await (n, holder, epoch, expires, handover) in try await client.query("""
            SELECT (extract(epoch FROM now()) * 1000)::bigint, l.holder, l.epoch,
                   (extract(epoch FROM l.expires_at) * 1000)::bigint, l.handover_to
            FROM (SELECT 1) AS one LEFT JOIN lease l ON l.pair = \(pair)
            """, logger: logger).decode((Int64, String?, Int64?, Int64?, String?).self) {
            now = UInt64(n)
            if let epoch, let expires {
                lease = .init(holder: holder, epoch: UInt64(epoch), expiresAtMs: UInt64(max(0, expires)), handoverTo: handover)
            }
        }
        var peer: HAStateMachine.PeerHeartbeat?
        for try await (name, score, written, requests) in try await client.query("""
            SELECT node, score, (extract(epoch FROM written_at) * 1000)::bigint, requests_lease
            FROM heartbeats WHERE pair = \(pair) AND node <> \(node) ORDER BY written_at DESC LIMIT 1
            """, logger: logger).decode((String, Int, Int64, Bool).self) {
            peer = .init(node: name, score: score, writtenAtMs: UInt64(written), requestsLease: requests)
        }
        return (now, lease, peer)
    }

    /// Takes the lease if its epoch is still `expectedEpoch`; returns the new epoch
    /// (`expectedEpoch + 1`), or nil when another node got there first.
    public func takeLease(_ pair: String, node: String, expectedEpoch: UInt64, durationMs: Int) async throws -> UInt64? {
        try await client.query("INSERT INTO lease (pair) VALUES (\(pair)) ON CONFLICT DO NOTHING", logger: logger)
        for try await epoch in try await client.query("""
            UPDATE lease SET holder = \(node), epoch = epoch + 1, handover_to = NULL,
                   expires_at = now() + \(durationMs) * interval '1 millisecond'
            WHERE pair = \(pair) AND epoch = \(Int64(expectedEpoch))
            RETURNING epoch
            """, logger: logger).decode(Int64.self) { return UInt64(epoch) }
        return nil
    }

    /// Extends the lease this node holds at `epoch`; false if it is no longer ours.
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
            """, logger: logger)
    }

    public func writeHeartbeat(pair: String, node: String, role: String, epoch: UInt64?, score: Int, requestsLease: Bool) async throws {
        try await client.query("""
            INSERT INTO heartbeats (node, pair, role, epoch, score, requests_lease, written_at)
            VALUES (\(node), \(pair), \(role), \(epoch.map { Int64($0) }), \(score), \(requestsLease), now())
            ON CONFLICT (node) DO UPDATE SET pair = EXCLUDED.pair, role = EXCLUDED.role, epoch = EXCLUDED.epoch,
                score = EXCLUDED.score, requests_lease = EXCLUDED.requests_lease, written_at = now()
            """, logger: logger)
    }

    /// Runs `body` in a transaction that first re-checks, under a share lock on the lease
    /// row, that this node still holds `epoch`; throws `FencedError` (committing nothing)
    /// if not. Every state-changing transaction of the serving role goes through here.
    public func fenced<T>(_ pair: String, node: String, epoch: UInt64, _ body: (PostgresConnection) async throws -> sending T) async throws -> sending T {
        do {
            return try await fencedTransaction(pair, node: node, epoch: epoch, body)
        } catch let error as PostgresTransactionError {
            // The rollback went through: say plainly that we are fenced.
            if let fenced = error.closureError as? FencedError, error.rollbackError == nil { throw fenced }
            throw error
        }
    }

    private func fencedTransaction<T>(_ pair: String, node: String, epoch: UInt64, _ body: (PostgresConnection) async throws -> sending T) async throws -> sending T {
        try await client.withTransaction(logger: logger) { conn in
            var holds = false
            for try await _ in try await conn.query("""
                SELECT 1 FROM lease WHERE pair = \(pair) AND holder = \(node) AND epoch = \(Int64(epoch)) FOR SHARE
                """, logger: logger) { holds = true }
            guard holds else { throw FencedError(epoch: epoch) }
            return try await body(conn)
        }
    }
}
