import BrambleNet
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A TCP forwarder on loopback between one node and the relay, so a test can cut that
/// node's SRP link (and its relay probes) without touching anything else: `cut()` closes
/// every forwarded connection and refuses new ones until `restore()`.
final class LinkCutter: Sendable {
    let port: Int
    private let target: HostPort
    typealias State = NIOLockedValueBox<(cut: Bool, channels: [any Channel])>
    private let state: State
    private let server: NIOLockedValueBox<(any Channel)?>

    private init(port: Int, target: HostPort, state: State, server: any Channel) {
        self.port = port
        self.target = target
        self.state = state
        self.server = NIOLockedValueBox(server)
    }

    static func start(forwardingTo target: HostPort) async throws -> LinkCutter {
        let port = try TestCluster.freePorts(1)[0]
        let state = State((false, []))
        return LinkCutter(port: port, target: target, state: state, server: try await listen(port: port, target: target, state: state))
    }

    /// Closes every forwarded connection; new connections are refused.
    func cut() async {
        let (channels, listener) = (state.withLockedValue { s in defer { s = (true, []) }; return s.channels },
                                    server.withLockedValue { s in defer { s = nil }; return s })
        try? await listener?.close()
        for channel in channels { try? await channel.close() }
    }

    /// Accepts and forwards again.
    func restore() async throws {
        state.withLockedValue { $0.cut = false }
        let listener = try await Self.listen(port: port, target: target, state: state)
        server.withLockedValue { $0 = listener }
    }

    func stop() async { await cut() }

    private static func listen(port: Int, target: HostPort, state: State) async throws -> any Channel {
        try await try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { inbound in
                ClientBootstrap(group: inbound.eventLoop)
                    .channelOption(.autoRead, value: false)
                    .connect(host: target.host, port: target.port)
                    .flatMap { outbound in
                        let tracked = state.withLockedValue { s -> Bool in
                            guard !s.cut else { return false }
                            s.channels += [inbound, outbound]
                            return true
                        }
                        guard tracked else {
                            outbound.close(promise: nil)
                            return inbound.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
                        }
                        return inbound.pipeline.addHandler(Glue(partner: outbound)).flatMap {
                            outbound.pipeline.addHandler(Glue(partner: inbound))
                        }.map {
                            inbound.read()
                            outbound.read()
                        }
                    }
            }
            .bind(host: "127.0.0.1", port: port).get()
    }
}

/// Copies bytes to the partner channel; when either side closes, so does the other.
private final class Glue: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    let partner: any Channel

    init(partner: any Channel) { self.partner = partner }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partner.writeAndFlush(unwrapInboundIn(data), promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) { context.read() }

    func channelInactive(context: ChannelHandlerContext) {
        partner.close(promise: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}
