import HummingbirdCore
import NIOConcurrencyHelpers
import NIOCore

/// Caps the connections one HTTP listener holds, in all and per source address: a
/// connection past either is closed as soon as it is accepted. Thousands of idle sockets
/// then cost the process at most `max` connections' worth of memory (an idle timeout
/// closes those it holds), and one address cannot take every place.
public final class ConnectionCap: Sendable {
    public let max: Int
    public let maxPerSource: Int
    private struct Held { var all = 0; var bySource: [String: Int] = [:] }
    private let held = NIOLockedValueBox(Held())
    private let onRefused: @Sendable () -> Void

    public init(max: Int, maxPerSource: Int, onRefused: @escaping @Sendable () -> Void = {}) {
        self.max = max
        self.maxPerSource = maxPerSource
        self.onRefused = onRefused
    }

    /// The connections held now.
    public var current: Int { held.withLockedValue { $0.all } }

    /// A handler for one connection's pipeline (Hummingbird's `additionalChannelHandlers`).
    public func handler() -> any RemovableChannelHandler { Handler(cap: self) }

    fileprivate func take(_ source: String) -> Bool {
        held.withLockedValue { h in
            guard h.all < max, h.bySource[source, default: 0] < maxPerSource else { return false }
            h.all += 1
            h.bySource[source, default: 0] += 1
            return true
        }
    }

    fileprivate func release(_ source: String) {
        held.withLockedValue { h in
            h.all -= 1
            let left = h.bySource[source, default: 1] - 1
            h.bySource[source] = left > 0 ? left : nil
        }
    }

    private final class Handler: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = NIOAny
        let cap: ConnectionCap
        private var source: String?

        init(cap: ConnectionCap) { self.cap = cap }

        func handlerAdded(context: ChannelHandlerContext) {
            let address = context.channel.remoteAddress?.ipAddress ?? "-"
            if cap.take(address) {
                source = address
                return
            }
            cap.onRefused()
            // Closed from the loop, outside the pipeline's set-up.
            let channel = context.channel
            channel.eventLoop.execute { channel.close(promise: nil) }
        }

        func handlerRemoved(context: ChannelHandlerContext) {
            if let source { cap.release(source) }
            source = nil
        }
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 as every Bramble listener serves it: at most `maxConnections` held at once
    /// and `maxPerSource` from one address (past either, a connection is closed when
    /// accepted), and a connection idle for `idleTimeout` closed. Request bodies are
    /// bounded by the request context (Hummingbird's `maxUploadSize`, 2 MiB).
    public static func bounded(maxConnections: Int = 1_024, maxPerSource: Int = 256, idleTimeout: TimeAmount = .seconds(60),
                               onRefused: @escaping @Sendable () -> Void = {}) -> HTTPServerBuilder {
        let cap = ConnectionCap(max: maxConnections, maxPerSource: maxPerSource, onRefused: onRefused)
        return .http1(configuration: .init(additionalChannelHandlers: [cap.handler()], idleTimeout: idleTimeout))
    }
}
