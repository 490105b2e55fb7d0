import BrambleAPI
import BrambleCore
import Foundation
import Hummingbird

/// The pair's administration: `bramble status`, `bramble failover`, `bramble pair
/// thresholds` and `bramble pair events` (token-protected like the rest of /admin).
struct PairRoutes {
    let pair: String
    let node: String
    let relay: String
    let store: ConfigStore
    let inbox: HAInbox
    let snapshot: HASnapshotBox

    func register(on router: Router<BasicRequestContext>) {
        router.get(RouterPath(AdminAPI.pair)) { _, _ -> PairStatus in
            let s = snapshot.value
            let relayState = PairStatus.Relay(address: relay, reachable: s.checks.first?.healthy ?? false,
                                              detail: s.checks.first?.detail ?? "not checked yet")
            do {
                let (nodes, lease, thresholds) = try await store.pairStatus(pair)
                return PairStatus(pair: pair, answered_by: node, lease: lease, failover_threshold: thresholds.failover,
                                  promotion_threshold: thresholds.promotion, nodes: nodes,
                                  database: .init(reachable: true, error: nil), relay: relayState)
            } catch {
                // Without the database only this node's own view is left.
                let own = PairStatus.Node(node: node, role: s.role, epoch: s.epoch, score: s.score, requests_lease: s.requestingLease,
                                          heartbeat_age_ms: 0, api_url: "", parameters: s.checks)
                return PairStatus(pair: pair, answered_by: node, lease: nil, failover_threshold: s.thresholds.failover,
                                  promotion_threshold: s.thresholds.promotion, nodes: [own],
                                  database: .init(reachable: false, error: "\(error)"), relay: relayState)
            }
        }
        router.get(RouterPath(AdminAPI.thresholds)) { _, _ -> Thresholds in
            let t = try await store.thresholds(pair)
            return Thresholds(failover: t.failover, promotion: t.promotion)
        }
        router.put(RouterPath(AdminAPI.thresholds)) { request, context -> Thresholds in
            let body = try await request.decodeJSON(Thresholds.self, context: context)
            guard body.failover != nil || body.promotion != nil else { throw APIErrorBody(.badRequest, "give 'failover', 'promotion' or both") }
            let count = HealthParameter.allCases.count
            for (name, value) in [("failover", body.failover), ("promotion", body.promotion)] {
                if let value, !(0...count).contains(value) {
                    throw APIErrorBody(.badRequest, "'\(name)' must be a position from 0 to \(count) in the health parameter list")
                }
            }
            var t = try await store.thresholds(pair)
            t.failover = body.failover ?? t.failover
            t.promotion = body.promotion ?? t.promotion
            try await store.setThresholds(pair, t)
            try? await store.recordEvent(.init(node: node, kind: .thresholds, detail: "failover \(t.failover), promotion \(t.promotion)"))
            return Thresholds(failover: t.failover, promotion: t.promotion)
        }
        // ?since_ms=UNIX_MS (default: all) &limit=N (default 100, at most 10000): the newest
        // `limit` events since then, oldest first.
        router.get("/admin/pair/events") { request, _ -> PairEventLog in
            let since = try request.uri.queryParameters["since_ms"].map { text -> Int64 in
                guard let value = Int64(text), value >= 0 else { throw APIErrorBody(.badRequest, "'since_ms' must be Unix milliseconds") }
                return value
            } ?? 0
            let limit = try request.uri.queryParameters["limit"].map { text -> Int in
                guard let value = Int(text), (1...10_000).contains(value) else { throw APIErrorBody(.badRequest, "'limit' must be 1…10000") }
                return value
            } ?? 100
            return PairEventLog(pair: pair, events: try await store.pairEvents(pair, sinceUnixMs: since, limit: limit))
        }
        router.post(RouterPath(AdminAPI.failover)) { request, context -> FailoverDone in
            let body = request.headers[.contentLength] == "0" ? FailoverRequest()
                : try await request.decodeJSON(FailoverRequest.self, context: context)
            switch await inbox.requestFailover(to: body.to) {
            case .handedOver(let epoch, let to):
                return FailoverDone(pair: pair, from: node, epoch: epoch, to: to)
            case .refused(.notPrimary(let role)):
                throw APIErrorBody(.notPrimary, "\(node) is \(role.rawValue), not the primary; ask the primary (bramble status shows it)")
            case .refused(let refusal):
                throw APIErrorBody(.failoverRefused, refusal.message)
            case .unavailable(let why):
                throw APIErrorBody(.unavailable, why)
            }
        }
    }
}
