import BrambleCore
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A client connection that speaks frames: `reader()` yields inbound frames in order,
/// one at a time or in the bursts they arrived in; `send` writes and flushes from any
/// thread. Reading ends when the peer closes, and fails with the `WireError` when the
/// peer sends a malformed frame, or with the error given to `close(failing:)`.
public final class FrameConnection: Sendable {
    private let batches: AsyncThrowingStream<[Frame], any Error>
    private let continuation: AsyncThrowingStream<[Frame], any Error>.Continuation
    private let channel: any Channel
    private let heard: NIOLockedValueBox<UInt64>

    private init(channel: any Channel, batches: AsyncThrowingStream<[Frame], any Error>,
                 continuation: AsyncThrowingStream<[Frame], any Error>.Continuation, heard: NIOLockedValueBox<UInt64>) {
        self.channel = channel
        self.batches = batches
        self.continuation = continuation
        self.heard = heard
    }

    /// Monotonic ms when the peer last sent anything (or when the connection opened),
    /// as the network saw it, however far behind the reader is.
    public var lastHeardMs: UInt64 { heard.withLockedValue { $0 } }

    /// The inbound frames. Read them from one task only.
    public func reader() -> FrameReader { FrameReader(batches: batches.makeAsyncIterator()) }

    public static func connect(
        to address: HostPort, connectTimeout: TimeAmount = .seconds(2),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> FrameConnection {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: [Frame].self)
        let heard = NIOLockedValueBox(Monotonic.nowMs())
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addFrameCodec()
                    try channel.pipeline.syncOperations.addHandler(FrameStreamHandler(continuation: continuation, heard: heard))
                }
            }
            .connect(host: address.host, port: address.port).get()
        heard.withLockedValue { $0 = Monotonic.nowMs() }
        return FrameConnection(channel: channel, batches: stream, continuation: continuation, heard: heard)
    }

    public func send(_ frame: Frame) { channel.writeAndFlush(frame, promise: nil) }

    public func send(_ frames: [Frame]) {
        guard !frames.isEmpty else { return }
        for frame in frames { channel.write(frame, promise: nil) }
        channel.flush()
    }

    public func close() { channel.close(promise: nil) }

    /// Closes the connection and makes the reader fail with `error` (a watchdog's
    /// verdict, say) instead of ending as if the peer had closed.
    public func close(failing error: any Error) {
        continuation.finish(throwing: error)
        channel.close(promise: nil)
    }

}

/// Inbound frames of one connection.
public struct FrameReader {
    var batches: AsyncThrowingStream<[Frame], any Error>.AsyncIterator
    var pending: ArraySlice<Frame> = []

    /// The next frame, or nil once the peer has closed.
    public mutating func next() async throws -> Frame? {
        while pending.isEmpty {
            guard let batch = try await batches.next() else { return nil }
            pending = batch[...]
        }
        return pending.popFirst()
    }

    /// Every frame that arrived in the next read burst (at least one), or nil once the
    /// peer has closed: lets a reader acknowledge or persist once per burst.
    public mutating func nextBatch() async throws -> [Frame]? {
        if !pending.isEmpty { defer { pending = [] }; return Array(pending) }
        return try await batches.next()
    }
}

/// Collects the frames of one read burst and hands them over together.
final class FrameStreamHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    let continuation: AsyncThrowingStream<[Frame], any Error>.Continuation
    let heard: NIOLockedValueBox<UInt64>
    private var burst: [Frame] = []

    init(continuation: AsyncThrowingStream<[Frame], any Error>.Continuation, heard: NIOLockedValueBox<UInt64>) {
        self.continuation = continuation
        self.heard = heard
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        burst.append(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        heard.withLockedValue { $0 = Monotonic.nowMs() }
        if !burst.isEmpty {
            continuation.yield(burst)
            burst.removeAll(keepingCapacity: true)
        }
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !burst.isEmpty { continuation.yield(burst); burst.removeAll() }
        continuation.finish()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !burst.isEmpty { continuation.yield(burst); burst.removeAll() }
        continuation.finish(throwing: error)
        context.close(promise: nil)
    }
}
