import BrambleCore
import Logging
import NIOCore

/// One device or SRP connection: hands each decoded frame to the hub. A malformed
/// frame (a `WireError` from the decoder) gets an error frame and a close. A peer that
/// stops reading is closed once the bytes waiting for it pass `maxPendingOutboundBytes`.
final class RelayConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame

    typealias Listener = RelayCore.Listener

    /// Bytes the relay holds for one peer beyond what its socket took. A reading peer
    /// never gets near it: a node keeps at most 5 items (≤ 256 KiB each) in flight per
    /// device, and what flows to a node is acknowledgements and presence; at 256 kbit/s
    /// 4 MiB is two minutes of backlog. Only a peer that stopped reading fills it (the
    /// kernel's socket buffers come on top of it).
    static let maxPendingOutboundBytes = 4 << 20

    private let hub: RelayHub
    private let listener: Listener
    private let logger: Logger
    private var conn: ConnectionID?

    init(hub: RelayHub, listener: Listener, logger: Logger) {
        self.hub = hub
        self.listener = listener
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // NIO stops counting the channel writable above `high`; we close it there.
        let mark = ChannelOptions.Types.WriteBufferWaterMark(low: Self.maxPendingOutboundBytes / 2, high: Self.maxPendingOutboundBytes)
        try? context.channel.syncOptions?.setOption(.writeBufferWaterMark, value: mark)
    }

    func channelActive(context: ChannelHandlerContext) {
        let conn = hub.add(context.channel)
        self.conn = conn
        // Caps count connections per source address (the port is the peer's own choice).
        let source = context.remoteAddress?.ipAddress ?? "-"
        hub.connected(conn, listener: listener, source: source)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let conn else { return }
        hub.metrics.framesRouted.increment()
        hub.received(unwrapInboundIn(data), on: conn)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // Fired (on this channel's loop) as a write takes the pending bytes past the high
        // mark: closing here caps what the relay holds for this peer at one frame above it.
        if !context.channel.isWritable {
            hub.metrics.slowPeersClosed.increment()
            logger.warning("peer stopped reading, closing connection", metadata: [
                "peer": "\(context.remoteAddress?.description ?? "?")", "listener": "\(listener)",
                "pending_bytes.max": "\(Self.maxPendingOutboundBytes)"])
            context.close(promise: nil)
        }
        context.fireChannelWritabilityChanged()
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

