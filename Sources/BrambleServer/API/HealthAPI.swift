import BrambleCore
import BrambleNet
import Foundation
import Hummingbird

/// `/health`, `/health/live`, `/health/ready`, `/primary`, `/standby` and `/metrics`: open
/// to monitors and load balancers without the token, as Patroni's are.
struct HealthAPI {
    let node: String
    let pair: String
    let srpID: String
    let relay: String
    let store: ConfigStore
    let ha: HAController
    let link: SRPRouter.Status
    let metrics: NodeMetrics

    struct Health: ResponseEncodable {
        struct Database: Encodable { var reachable: Bool; var error: String? }
        struct Relay: Encodable {
            var address: String
            /// This node's SRP link (only a primary holds one).
            var srp_link_up: Bool
            var srp_link_error: String?
            /// A standby's probe of the relay's SRP listener.
            var reachable: Bool
            var detail: String
        }
        struct Peer: Encodable { var node: String; var score: Int; var heartbeat_age_ms: Int64?; var requests_lease: Bool }
        var node: String
        var pair: String
        var srp_id: String
        var role: String
        var epoch: UInt64?
        var lease_valid: Bool
        var score: Int
        var failover_threshold: Int
        var promotion_threshold: Int
        var requests_lease: Bool
        var parameters: [HealthCheck]
        var database: Database
        var relay: Relay
        var peer: Peer?
    }

    func register(on router: Router<BasicRequestContext>) {
        router.get("/health") { _, _ -> Health in health() }
        router.get("/health/live") { _, _ in ["status": "live"] }
        router.get("/health/ready") { _, _ -> Response in
            let s = ha.snapshot
            let ready: Bool
            let reason: String
            switch s.role {
            case "primary":
                ready = s.servesWithValidLease && link.snapshot.up
                reason = ready ? "primary with a valid lease and the SRP link up" : "primary, but the lease or the SRP link is not there"
            case "standby":
                ready = s.databaseError == nil && s.score >= s.thresholds.promotion
                reason = ready ? "standby able to take over" : "standby scoring \(s.score), below the promotion threshold \(s.thresholds.promotion)"
            default:
                ready = false
                reason = s.role
            }
            return json(ready ? .ok : .serviceUnavailable, ["ready": ready ? "true" : "false", "role": s.role, "reason": reason])
        }
        router.get("/primary") { _, _ -> Response in
            let s = ha.snapshot
            return json(s.servesWithValidLease ? .ok : .serviceUnavailable, ["node": node, "role": s.role])
        }
        router.get("/standby") { _, _ -> Response in
            let s = ha.snapshot
            return json(s.role == "standby" ? .ok : .serviceUnavailable, ["node": node, "role": s.role])
        }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(bytes: metrics.registry.emitToBuffer())))
        }
    }

    private func health() -> Health {
        let s = ha.snapshot
        let l = link.snapshot
        return Health(
            node: node, pair: pair, srp_id: srpID, role: s.role, epoch: s.epoch, lease_valid: s.servesWithValidLease,
            score: s.score, failover_threshold: s.thresholds.failover, promotion_threshold: s.thresholds.promotion,
            requests_lease: s.requestingLease, parameters: s.checks,
            database: .init(reachable: s.databaseError == nil, error: s.databaseError),
            relay: .init(address: relay, srp_link_up: l.up, srp_link_error: l.up ? nil : l.lastError,
                         reachable: l.up || s.relayReachable, detail: l.up ? "SRP link registered at epoch \(l.epoch ?? 0)" : s.relayDetail),
            peer: s.peer.map { .init(node: $0.node, score: $0.score, heartbeat_age_ms: s.peerAgeMs, requests_lease: $0.requestsLease) })
    }

    private func json(_ status: HTTPResponse.Status, _ body: [String: String]) -> Response {
        let data = (try? JSONEncoder().encode(body)) ?? Data()
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
