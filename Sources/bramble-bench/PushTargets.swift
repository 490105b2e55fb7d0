import AsyncHTTPClient
import BrambleNet
import NIOConcurrencyHelpers
import NIOCore

/// The nodes an application with every node's URL pushes to: each push goes to the next
/// node in turn, and a node that fails a push is skipped for `skipFor`.
struct PushTargets: Sendable {
    struct Node: Sendable {
        var name: String
        var url: String
    }

    let nodes: [Node]
    let token: String
    let http: HTTPClient
    let skipFor: Duration
    let timeout: TimeAmount
    private let downUntil = NIOLockedValueBox<[String: ContinuousClock.Instant]>([:])

    init(nodes: [Node], token: String, http: HTTPClient, skipFor: Duration, timeout: TimeAmount) {
        self.nodes = nodes
        self.token = token
        self.http = http
        self.skipFor = skipFor
        self.timeout = timeout
    }

    /// The API client of one of the nodes.
    func client(_ node: Node) -> AdminClient { AdminClient(baseURL: node.url, token: token, http: http) }

    /// Push number `n`: the id and the node that accepted it, or nil if no node did.
    func push(_ n: Int, to: String, subject: String, body: String) async -> (id: String, node: String)? {
        for attempt in 0..<nodes.count {
            let node = nodes[(n + attempt) % nodes.count]
            if let until = downUntil.withLockedValue({ $0[node.name] }), until > .now { continue }
            if let id = try? await client(node).push(to: to, subject: subject, body: body, timeout: timeout).id {
                return (id, node.name)
            }
            downUntil.withLockedValue { $0[node.name] = .now + skipFor }
        }
        return nil
    }
}
