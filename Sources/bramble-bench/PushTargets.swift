import AsyncHTTPClient
import BrambleAPI
import BrambleNet
import Foundation
import NIOConcurrencyHelpers
import NIOCore

/// The nodes an application with every node's URL pushes to: each push goes to the next
/// node in turn, under one Idempotency-Key for all its attempts, and a node that fails a
/// push is skipped for `skipFor`.
struct PushTargets: Sendable {
    struct Node: Sendable {
        var name: String
        var url: String
    }

    /// How a push ended.
    enum Outcome: Sendable {
        case accepted(id: String, node: String)
        /// Every node that was asked said, or showed, that it did not commit it.
        case notAccepted
        /// Some attempt may have committed it (no answer, or `outcome_unknown`), and no
        /// retry under its key settled it.
        case unknown
    }

    let nodes: [Node]
    let token: String
    let http: HTTPClient
    let skipFor: Duration
    let timeout: TimeAmount
    private let downUntil = NIOLockedValueBox<[String: ContinuousClock.Instant]>([:])

    init(nodes: [Node], token: String, http: HTTPClient, skipFor: Duration, timeout: TimeAmount) {
        (self.nodes, self.token, self.http, self.skipFor, self.timeout) = (nodes, token, http, skipFor, timeout)
    }

    /// The API client of one of the nodes.
    func client(_ node: Node) -> BrambleClient { BrambleClient(baseURL: node.url, token: token, http: http) }

    /// Push number `n`, starting with the n-th node in turn.
    func push(_ n: Int, to: String, subject: String, body: String) async -> Outcome {
        let key = UUID().uuidString.lowercased()
        var mayHaveCommitted = false
        for attempt in 0..<nodes.count {
            let node = nodes[(n + attempt) % nodes.count]
            if let until = downUntil.withLockedValue({ $0[node.name] }), until > .now { continue }
            do {
                let accepted = try await client(node).push(PushRequestBody(to: to, subject: subject, body: body), idempotencyKey: key,
                                                           timeout: timeout)
                return .accepted(id: accepted.id, node: node.name)
            } catch {
                switch error {
                case .unreachable: break
                case .api(_, let answer) where answer.code == .notAccepted || answer.code == .unavailable: break
                case .noAnswer, .api, .malformed: mayHaveCommitted = true
                }
            }
            downUntil.withLockedValue { $0[node.name] = .now + skipFor }
        }
        return mayHaveCommitted ? .unknown : .notAccepted
    }
}
