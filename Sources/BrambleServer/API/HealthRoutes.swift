import BrambleAPI
import BrambleCore
import BrambleNet
import Foundation
import Hummingbird
import Prometheus

/// `/health`, `/health/live`, `/health/ready`, `/primary`, `/standby` and `/metrics`: open
/// to monitors and load balancers without the token, as Patroni's are.
struct HealthRoutes {
    let node: String
    let pair: String
    let srpID: String
    let relay: String
    let snapshot: HASnapshotBox
    let link: LinkStatus
    let relayProbe: RelayProbe
    let registry: PrometheusCollectorRegistry
    let clock: any NodeClock

    func register(on router: Router<BasicRequestContext>) {
        router.get(RouterPath(HealthAPI.health)) { _, _ -> NodeHealth in health() }
        router.get(RouterPath(HealthAPI.live)) { _, _ in ["status": "live"] }
        router.get(RouterPath(HealthAPI.ready)) { _, _ -> Response in
            let s = snapshot.value
            let (ready, reason): (Bool, String)
            switch s.role {
            case .primary:
                ready = s.servesWithValidLease(nowMs: clock.nowMs()) && link.snapshot.up
                reason = ready ? "primary with a valid lease and the SRP link up" : "primary, but the lease or the SRP link is not there"
            case .standby:
                ready = s.databaseError == nil && s.score >= s.thresholds.promotion
                reason = ready ? "standby able to take over" : "standby scoring \(s.score), below the promotion threshold \(s.thresholds.promotion)"
            case .promoting, .primaryDegraded, .stopped:
                (ready, reason) = (false, s.role.rawValue)
            }
            return jsonResponse(ready ? .ok : .serviceUnavailable, Readiness(ready: ready, role: s.role, reason: reason))
        }
        router.get(RouterPath(HealthAPI.primary)) { _, _ -> Response in
            let s = snapshot.value
            return jsonResponse(s.servesWithValidLease(nowMs: clock.nowMs()) ? .ok : .serviceUnavailable, RoleAnswer(node: node, role: s.role))
        }
        router.get(RouterPath(HealthAPI.standby)) { _, _ -> Response in
            let s = snapshot.value
            return jsonResponse(s.role == .standby ? .ok : .serviceUnavailable, RoleAnswer(node: node, role: s.role))
        }
        router.get(RouterPath(HealthAPI.metrics)) { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
    }

    private func health() -> NodeHealth {
        let s = snapshot.value
        let l = link.snapshot
        let probe = relayProbe.result
        return NodeHealth(
            node: node, pair: pair, srp_id: srpID, role: s.role, epoch: s.epoch, lease_valid: s.servesWithValidLease(nowMs: clock.nowMs()),
            score: s.score, failover_threshold: s.thresholds.failover, promotion_threshold: s.thresholds.promotion,
            requests_lease: s.requestingLease, parameters: s.checks,
            database: .init(reachable: s.databaseError == nil, error: s.databaseError),
            relay: .init(address: relay, srp_link_up: l.up, srp_link_error: l.up ? nil : l.lastError, reachable: l.up || probe.reachable,
                         detail: l.up ? "SRP link registered at epoch \(link.epoch ?? 0)" : probe.detail),
            peer: s.peer.map { .init(node: $0.node, score: $0.score, heartbeat_age_ms: s.peerAgeMs, requests_lease: $0.requestsLease) })
    }
}
