import NIOConcurrencyHelpers
import NIOCore

/// Caps the connections one HTTP listener holds: a connection past `max` is closed as soon
/// as it is accepted, so thousands of idle sockets cost the process at most `max`
/// connections' worth of memory (an idle timeout closes the ones it holds).
public final class ConnectionCap: Sendable {
    public let max: Int
    private let open = NIOLockedValueBox(0)
    private let onRefused: @Sendable () -> Void

    public init(max: Int, onRefused: @escaping @Sendable () -> Void = {}) {
        self.max = max
        self.onRefused = onRefused
    }

    /// The connections held now.
    public var current: Int { open.withLockedValue { $0 } }

    /// A handler for one connection's pipeline (Hummingbird's `additionalChannelHandlers`).
    public func handler() -> any RemovableChannelHandler { Handler(cap: self) }

    fileprivate func take() -> Bool {
        open.withLockedValue { n in
            guard n < max else { return false }
            n += 1
            return true
        }
    }

    fileprivate func release() { open.withLockedValue { $0 -= 1 } }

    private final class Handler: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = NIOAny
        let cap: ConnectionCap
        private var held = false

        init(cap: ConnectionCap) { self.cap = cap }

        func handlerAdded(context: ChannelHandlerContext) {
            held = cap.take()
            guard !held else { return }
            cap.onRefused()
            // Closed from the loop, outside the pipeline's set-up.
            let channel = context.channel
            channel.eventLoop.execute { channel.close(promise: nil) }
        }

        func handlerRemoved(context: ChannelHandlerContext) {
            if held { cap.release() }
            held = false
        }
    }
}
