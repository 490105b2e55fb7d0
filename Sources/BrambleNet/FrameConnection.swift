import BrambleCore
import NIOCore
import NIOPosix

/// A client connection that speaks frames: inbound frames arrive on `frames`, in order;
/// `send` writes and flushes from any thread. The stream ends when the peer closes,
/// and fails with the `WireError` when the peer sends a malformed frame.
public final class FrameConnection: Sendable {
    public let frames: AsyncThrowingStream<Frame, any Error>
    private let channel: any Channel

    private init(channel: any Channel, frames: AsyncThrowingStream<Frame, any Error>) {
        self.channel = channel
        self.frames = frames
    }

    public static func connect(
        to address: HostPort, connectTimeout: TimeAmount = .seconds(2),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> FrameConnection {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: Frame.self)
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addFrameCodec()
                    try channel.pipeline.syncOperations.addHandler(FrameStreamHandler(continuation: continuation))
                }
            }
            .connect(host: address.host, port: address.port).get()
        return FrameConnection(channel: channel, frames: stream)
    }

    public func send(_ frame: Frame) { channel.writeAndFlush(frame, promise: nil) }

    public func send(_ frames: [Frame]) {
        guard !frames.isEmpty else { return }
        for frame in frames { channel.write(frame, promise: nil) }
        channel.flush()
    }

    public func close() { channel.close(promise: nil) }

    public var isActive: Bool { channel.isActive }
}

final class FrameStreamHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    let continuation: AsyncThrowingStream<Frame, any Error>.Continuation

    init(continuation: AsyncThrowingStream<Frame, any Error>.Continuation) { self.continuation = continuation }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        continuation.yield(unwrapInboundIn(data))
    }

    func channelInactive(context: ChannelHandlerContext) {
        continuation.finish()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        continuation.finish(throwing: error)
        context.close(promise: nil)
    }
}
