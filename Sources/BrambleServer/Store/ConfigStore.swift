import BrambleCore
@preconcurrency import Crypto
import Foundation
import Logging
import PostgresNIO

/// The configuration database: every query the node runs lives in this type and its
/// extensions, so the SQL can be read in one place.
public struct ConfigStore: Sendable {
    public let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public func migrate() async throws {
        try await Migrations.apply(on: client, logger: logger)
    }

    /// The next epoch for this SRP ID; every start of a serving node takes a new one, so
    /// the relay lets it displace its predecessor and refuses the predecessor afterwards.
    public func nextEpoch(srpID: String) async throws -> UInt64 {
        let rows = try await client.query("""
            INSERT INTO srp_epoch (srp_id, epoch) VALUES (\(srpID), 1)
            ON CONFLICT (srp_id) DO UPDATE SET epoch = srp_epoch.epoch + 1
            RETURNING epoch
            """, logger: logger)
        for try await epoch in rows.decode(Int64.self) { return UInt64(epoch) }
        throw StoreError.notFound("epoch row for \(srpID)")
    }

    public func recordEvent(node: String, kind: String, epoch: UInt64?, detail: String) async throws {
        let e = epoch.map { Int64($0) }
        try await client.query(
            "INSERT INTO events (node, kind, epoch, detail) VALUES (\(node), \(kind), \(e), \(detail))", logger: logger)
    }

    /// The master key of an active device, or nil.
    public func deviceKey(_ pin: PIN) async throws -> SymmetricKey? {
        let rows = try await client.query(
            "SELECT master_key FROM devices WHERE pin = \(Int64(pin.value)) AND status = 'active'", logger: logger)
        for try await key in rows.decode(String.self) { return SymmetricKey(base64: key) }
        return nil
    }

    public func ping() async throws {
        try await client.query("SELECT 1", logger: logger)
    }
}
