import Foundation
import Hummingbird

/// `/health`, `/health/live`, `/health/ready` and `/metrics`.
struct HealthAPI {
    let node: String
    let srpID: String
    let relay: String
    let store: ConfigStore
    let link: SRPRouter.Status
    let metrics: NodeMetrics

    struct Health: ResponseEncodable {
        struct Link: Encodable { var up: Bool; var relay: String; var last_error: String? }
        struct Database: Encodable { var reachable: Bool; var error: String? }
        var node: String
        var srp_id: String
        var role: String
        var epoch: UInt64?
        var srp_link: Link
        var database: Database
    }

    func register(on router: Router<BasicRequestContext>) {
        router.get("/health") { _, _ -> Health in
            let l = link.snapshot
            let db = await databaseState()
            return Health(node: node, srp_id: srpID, role: "primary", epoch: l.epoch,
                          srp_link: .init(up: l.up, relay: relay, last_error: l.lastError),
                          database: .init(reachable: db == nil, error: db))
        }
        router.get("/health/live") { _, _ in ["status": "live"] }
        router.get("/health/ready") { _, _ -> Response in
            let up = link.snapshot.up
            let db = await databaseState()
            let ready = up && db == nil
            let body = try JSONEncoder().encode(["ready": ready ? "true" : "false", "srp_link": up ? "up" : "down", "database": db ?? "ok"])
            return Response(status: ready ? .ok : .serviceUnavailable, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(bytes: metrics.registry.emitToBuffer())))
        }
    }

    /// nil when the database answers within a second, else why not.
    private func databaseState() async -> String? {
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await store.ping() }
                group.addTask { try await Task.sleep(for: .seconds(1)); throw CancellationError() }
                try await group.next()
                group.cancelAll()
            }
            return nil
        } catch is CancellationError {
            return "no answer within 1 s"
        } catch {
            return "\(error)"
        }
    }
}
