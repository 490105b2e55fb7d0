import BrambleCore
import BrambleNet
@preconcurrency import Crypto
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Plays the relay's SRP side on a loopback port for the Router's tests: challenges each
/// connection, checks the proof, answers the registration as `answer` says, then echoes
/// pongs (unless `silent`) and records the data frames it gets.
final class ScriptedRelay: Sendable {
    enum Answer: Sendable {
        case register
        case refuse(Frame)
    }
    struct State {
        var answer = Answer.register
        var silent = false
        var connections = 0
        var registrations: [UInt64] = []
        var received: [DataFrame] = []
        var open = 0
    }
    let state = NIOLockedValueBox(State())
    let key: SymmetricKey
    let srpID: String
    private let server: NIOAsyncChannel<NIOAsyncChannel<Frame, Frame>, Never>
    let address: HostPort

    private init(key: SymmetricKey, srpID: String, server: NIOAsyncChannel<NIOAsyncChannel<Frame, Frame>, Never>) {
        (self.key, self.srpID, self.server) = (key, srpID, server)
        address = HostPort(host: "127.0.0.1", port: server.channel.localAddress!.port!)
    }

    /// Listens, runs `body` while it serves, then closes everything.
    static func with<T>(key: SymmetricKey, srpID: String = "bramble", _ body: (ScriptedRelay) async throws -> T) async throws -> T {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addFrameCodec()
                    return try NIOAsyncChannel<Frame, Frame>(wrappingChannelSynchronously: channel)
                }
            }
        let relay = ScriptedRelay(key: key, srpID: srpID, server: server)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await relay.accept() }
            defer { group.cancelAll() }
            return try await body(relay)
        }
    }

    private func accept() async throws {
        try await server.executeThenClose { connections in
            try await withThrowingDiscardingTaskGroup { group in
                for try await connection in connections {
                    state.withLockedValue { $0.connections += 1; $0.open += 1 }
                    group.addTask {
                        defer { self.state.withLockedValue { $0.open -= 1 } }
                        try? await self.serve(connection)
                    }
                }
            }
        }
    }

    private func serve(_ connection: NIOAsyncChannel<Frame, Frame>) async throws {
        try await connection.executeThenClose { inbound, outbound in
            let nonce = (0..<Frame.nonceLength).map { _ in UInt8.random(in: 0...255) }
            try await outbound.write(.challenge(nonce: nonce))
            for try await frame in inbound {
                let silent = state.withLockedValue { $0.silent }
                switch frame {
                case .register(let id, let epoch, let proof):
                    guard SRPProof.verify(proof, key: key, nonce: nonce, srpID: id, epoch: epoch) else {
                        try await outbound.write(.error(code: .authenticationFailed, message: "bad proof"))
                        return
                    }
                    switch state.withLockedValue({ $0.answer }) {
                    case .register:
                        state.withLockedValue { $0.registrations.append(epoch) }
                        try await outbound.write(.registered(srpID: id, epoch: epoch))
                    case .refuse(let answer):
                        try await outbound.write(answer)
                        return
                    }
                case .ping(let n) where !silent: try await outbound.write(.pong(n))
                case .data(let d): state.withLockedValue { $0.received.append(d) }
                default: break
                }
            }
        }
    }
}
