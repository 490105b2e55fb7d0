import BrambleNet
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A TCP forwarder on loopback between one node and the relay, so a test can cut that
/// node's SRP link (and its relay probes) without touching anything else: `cut()` closes
/// every forwarded connection and refuses new ones until `restore()`; `silence()` keeps
/// every connection open and accepts new ones but drops all bytes both ways, as a network
/// partition does, until `restore()`.
final class LinkCutter: Sendable {
    let port: Int
    private let target: HostPort
    typealias State = NIOLockedValueBox<(cut: Bool, silent: Bool, channels: [any Channel])>
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
        let state = State((false, false, []))
        return LinkCutter(port: port, target: target, state: state, server: try await listen(port: port, target: target, state: state))
    }

    /// Closes every forwarded connection; new connections are refused.
    func cut() async {
        let (channels, listener) = (state.withLockedValue { s in defer { s = (true, false, []) }; return s.channels },
                                    server.withLockedValue { s in defer { s = nil }; return s })
        try? await listener?.close()
        for channel in channels { try? await channel.close() }
    }

    /// Drops every byte, both ways, on every connection, old and new; nothing is closed.
    func silence() {
        state.withLockedValue { $0.silent = true }
    }

    /// Accepts and forwards again.
    func restore() async throws {
        let wasCut = state.withLockedValue { s in defer { s.cut = false; s.silent = false }; return s.cut }
        guard wasCut else { return }
        let listener = try await Self.listen(port: port, target: target, state: state)
        server.withLockedValue { $0 = listener }
    }

    func stop() async { await cut() }

    private static func listen(port: Int, target: HostPort, state: State) async throws -> any Channel {
        try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
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
                        return inbound.pipeline.addHandler(Glue(partner: outbound, state: state)).flatMap {
                            outbound.pipeline.addHandler(Glue(partner: inbound, state: state))
                        }.map {
                            inbound.read()
                            outbound.read()
                        }
                    }
            }
            .bind(host: "127.0.0.1", port: port).get()
    }
}

/// Copies bytes to the partner channel (or drops them while silenced); when either side
/// closes, so does the other.
private final class Glue: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    let partner: any Channel
    let state: LinkCutter.State

    init(partner: any Channel, state: LinkCutter.State) {
        self.partner = partner
        self.state = state
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !state.withLockedValue({ $0.silent }) else { return }
        partner.writeAndFlush(unwrapInboundIn(data), promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) { context.read() }

    /// The accepted side may become active only after the glue is in place (its first
    /// `read()` then went nowhere): start reading once it is. A client that speaks first
    /// (a TLS ClientHello) is heard.
    func channelActive(context: ChannelHandlerContext) {
        context.read()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        partner.close(promise: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}
