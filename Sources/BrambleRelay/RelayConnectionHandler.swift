import BrambleCore
import Logging
import NIOCore

/// One device or SRP connection: hands each decoded frame to the hub. A malformed
/// frame (a `WireError` from the decoder) gets an error frame and a close.
final class RelayConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame

    enum Listener: Sendable { case device, srp }

    private let hub: RelayHub
    private let listener: Listener
    private let logger: Logger
    private var conn: ConnectionID?

    init(hub: RelayHub, listener: Listener, logger: Logger) {
        self.hub = hub
        self.listener = listener
        self.logger = logger
    }

    func channelActive(context: ChannelHandlerContext) {
        let conn = hub.add(context.channel)
        self.conn = conn
        if listener == .srp { hub.serverConnected(conn) }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let conn else { return }
        hub.metrics.framesRouted.increment()
        hub.received(unwrapInboundIn(data), on: conn)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let conn { hub.disconnected(conn) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let wire = error as? WireError {
            hub.metrics.badFrames.increment()
            logger.warning("malformed frame, closing connection",
                           metadata: ["error": "\(wire)", "peer": "\(context.remoteAddress?.description ?? "?")"])
            context.writeAndFlush(wrapOutboundOut(.error(code: .badFrame, message: wire.description)), promise: nil)
        } else {
            logger.debug("connection error", metadata: ["error": "\(error)"])
        }
        context.close(promise: nil)
    }
}

