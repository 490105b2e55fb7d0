import BrambleCore
import NIOCore
import NIOPosix

/// A client connection that speaks frames: `reader()` yields inbound frames in order,
/// one at a time or in the bursts they arrived in; `send` writes and flushes from any
/// thread. Reading ends when the peer closes, and fails with the `WireError` when the
/// peer sends a malformed frame.
public final class FrameConnection: Sendable {
    private let batches: AsyncThrowingStream<[Frame], any Error>
    private let channel: any Channel

    private init(channel: any Channel, batches: AsyncThrowingStream<[Frame], any Error>) {
        self.channel = channel
        self.batches = batches
    }

    /// The inbound frames. Read them from one task only.
    public func reader() -> FrameReader { FrameReader(batches: batches.makeAsyncIterator()) }

    public static func connect(
        to address: HostPort, connectTimeout: TimeAmount = .seconds(2),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> FrameConnection {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: [Frame].self)
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addFrameCodec()
                    try channel.pipeline.syncOperations.addHandler(FrameStreamHandler(continuation: continuation))
                }
            }
            .connect(host: address.host, port: address.port).get()
        return FrameConnection(channel: channel, batches: stream)
    }

    public func send(_ frame: Frame) { channel.writeAndFlush(frame, promise: nil) }

    public func send(_ frames: [Frame]) {
        guard !frames.isEmpty else { return }
        for frame in frames { channel.write(frame, promise: nil) }
        channel.flush()
    }

    public func close() { channel.close(promise: nil) }

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
    private var burst: [Frame] = []

    init(continuation: AsyncThrowingStream<[Frame], any Error>.Continuation) { self.continuation = continuation }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        burst.append(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
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
