import BrambleNet
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A Postfix policy service (the delegation protocol: `name=value` lines, an empty line,
/// then `action=…`) the mail host's submission service asks at the end of each message,
/// before it answers the final dot (`BRAMBLE_MAIL_SUBMISSION_POLICY`). Its answers follow
/// `plan` in order (then DUNNO at once): a test holds the answer to the dot to kill a
/// node while the node's mail is in doubt, and may then let it through or refuse it.
final class SubmissionPolicy: Sendable {
    /// One answer: after `holdMs`, `action` ("DUNNO": accept; "REJECT …": refuse).
    struct Answer: Sendable {
        var holdMs: Int
        var action: String
    }

    let address: HostPort
    private let task: Task<Void, any Error>
    private let asked: NIOLockedValueBox<Int>

    /// `inet:127.0.0.1:PORT`, as scripts/mail-private takes it.
    var postfixAddress: String { "inet:\(address.host):\(address.port)" }
    /// How many messages the service was asked about so far.
    var requests: Int { asked.withLockedValue { $0 } }

    private init(address: HostPort, task: Task<Void, any Error>, asked: NIOLockedValueBox<Int>) {
        (self.address, self.task, self.asked) = (address, task, asked)
    }

    static func start(plan: [Answer]) async throws -> SubmissionPolicy {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0) { child in
                child.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: child) }
            }
        guard let port = server.channel.localAddress?.port else { throw SetupError("the policy service has no port") }
        let asked = NIOLockedValueBox(0)
        let task = Task {
            try await server.executeThenClose { connections in
                try await withThrowingDiscardingTaskGroup { group in
                    for try await connection in connections {
                        group.addTask { try? await serve(connection, plan: plan, asked: asked) }
                    }
                }
            }
        }
        return SubmissionPolicy(address: HostPort(host: "127.0.0.1", port: port), task: task, asked: asked)
    }

    func stop() { task.cancel() }

    /// Postfix keeps a connection open for many requests: each ends with an empty line.
    private static func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, plan: [Answer], asked: NIOLockedValueBox<Int>) async throws {
        try await connection.executeThenClose { inbound, outbound in
            var pending: [UInt8] = []
            for try await chunk in inbound {
                pending += chunk.readableBytesView
                while let end = pending.indices.first(where: { pending[$0...].starts(with: [10, 10]) }) {
                    pending.removeSubrange(...(end + 1))
                    let n = asked.withLockedValue { $0 += 1; return $0 }
                    let answer = n <= plan.count ? plan[n - 1] : Answer(holdMs: 0, action: "DUNNO")
                    if answer.holdMs > 0 { try await Task.sleep(for: .milliseconds(answer.holdMs)) }
                    try await outbound.write(ByteBuffer(string: "action=\(answer.action)\n\n"))
                }
            }
        }
    }
}
