import BrambleCore
import Foundation
import Hummingbird

/// The pair's administration: `bramble status`, `bramble failover`,
/// `bramble pair thresholds` and `bramble pair events` (token-protected like the rest of
/// /admin).
struct PairAPI {
    let pair: String
    let store: ConfigStore
    let ha: HAController

    struct Status: ResponseEncodable {
        struct Database: Encodable { var reachable: Bool; var error: String? }
        struct Relay: Encodable { var address: String; var reachable: Bool; var detail: String }
        var pair: String
        var answered_by: String
        var lease: ConfigStore.LeaseStatus?
        var failover_threshold: Int
        var promotion_threshold: Int
        var nodes: [ConfigStore.NodeStatus]
        var database: Database
        var relay: Relay
    }

    struct ThresholdsBody: Codable, ResponseEncodable {
        var failover: Int?
        var promotion: Int?
    }

    struct FailoverBody: Decodable { var to: String? }
    struct FailoverDone: ResponseEncodable { var pair: String; var from: String; var epoch: UInt64; var to: String? }

    func register(on router: Router<BasicRequestContext>, node: String, relay: String) {
        let admin = router.group("admin")
        admin.get("pair") { _, _ -> Status in
            let s = ha.snapshot
            let relayState = Status.Relay(address: relay, reachable: s.checks.first?.healthy ?? false,
                                          detail: s.checks.first?.detail ?? "not checked yet")
            do {
                let (nodes, lease, thresholds) = try await store.pairStatus(pair)
                return Status(pair: pair, answered_by: node, lease: lease, failover_threshold: thresholds.failover,
                              promotion_threshold: thresholds.promotion, nodes: nodes,
                              database: .init(reachable: true, error: nil), relay: relayState)
            } catch {
                // Without the database only this node's own view is left.
                let own = ConfigStore.NodeStatus(node: node, role: s.role, epoch: s.epoch, score: s.score, requests_lease: s.requestingLease,
                                                 heartbeat_age_ms: 0, api_url: "", parameters: s.checks)
                return Status(pair: pair, answered_by: node, lease: nil, failover_threshold: s.thresholds.failover,
                              promotion_threshold: s.thresholds.promotion, nodes: [own],
                              database: .init(reachable: false, error: "\(error)"), relay: relayState)
            }
        }
        admin.get("pair/thresholds") { _, _ -> ThresholdsBody in
            let t = try await store.thresholds(pair)
            return ThresholdsBody(failover: t.failover, promotion: t.promotion)
        }
        admin.put("pair/thresholds") { request, context -> ThresholdsBody in
            let body = try await request.decodeJSON(ThresholdsBody.self, context: context)
            guard body.failover != nil || body.promotion != nil else {
                throw APIError(.badRequest, "give 'failover', 'promotion' or both")
            }
            let count = HealthParameter.allCases.count
            for (name, value) in [("failover", body.failover), ("promotion", body.promotion)] {
                if let value, !(0...count).contains(value) {
                    throw APIError(.badRequest, "'\(name)' must be a position from 0 to \(count) in the health parameter list")
                }
            }
            var t = try await store.thresholds(pair)
            t.failover = body.failover ?? t.failover
            t.promotion = body.promotion ?? t.promotion
            try await store.setThresholds(pair, t)
            try? await store.recordEvent(node: node, kind: "thresholds", epoch: nil,
                                         detail: "failover \(t.failover), promotion \(t.promotion)")
            return ThresholdsBody(failover: t.failover, promotion: t.promotion)
        }
        // ?since_ms=UNIX_MS (default: all) &limit=N (default 100, at most 10000): the newest
        // `limit` events since then, oldest first.
        admin.get("pair/events") { request, _ -> PairEventLog in
            let since = try request.uri.queryParameters["since_ms"].map { text -> Int64 in
                guard let value = Int64(text), value >= 0 else { throw APIError(.badRequest, "'since_ms' must be Unix milliseconds") }
                return value
            } ?? 0
            let limit = try request.uri.queryParameters["limit"].map { text -> Int in
                guard let value = Int(text), (1...10_000).contains(value) else { throw APIError(.badRequest, "'limit' must be 1…10000") }
                return value
            } ?? 100
            return PairEventLog(pair: pair, events: try await store.pairEvents(pair, sinceUnixMs: since, limit: limit))
        }
        admin.post("failover") { request, context -> FailoverDone in
            let body = request.headers[.contentLength] == "0" ? FailoverBody(to: nil)
                : try await request.decodeJSON(FailoverBody.self, context: context)
            switch await ha.requestFailover(to: body.to) {
            case .handedOver(let epoch, let to):
                return FailoverDone(pair: pair, from: node, epoch: epoch, to: to)
            case .notPrimary(let role):
                throw APIError(.conflict, "\(node) is \(role), not the primary; ask the primary (bramble status shows it)")
            case .refused(let why):
                throw APIError(.conflict, why)
            }
        }
    }
}

extension PairEventLog: ResponseEncodable {}
