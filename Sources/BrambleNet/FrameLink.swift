import BrambleCore
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// A client connection that speaks frames (the Router's SRP link, a device's link, the
/// relay probe), on `NIOAsyncChannel`: inbound frames arrive in the bursts they were read
/// in, with back-pressure (a reader that falls behind stops the socket being read instead
/// of buffering), and outbound writes wait while the socket is not writable. Reading ends
/// when the peer closes and fails with the `WireError` when it sends a malformed frame.
public struct FrameLink: Sendable {
    /// Writes frames; a write waits while the peer is not reading.
    public let outbound: NIOAsyncChannelOutboundWriter<Frame>
    private let heard: NIOLockedValueBox<UInt64>
    private let channel: any Channel

    /// Monotonic ms when the peer last sent anything (or when the connection opened), as
    /// the network saw it, however far behind the reader is.
    public var lastHeardMs: UInt64 { heard.withLockedValue { $0 } }

    /// Closes the connection: the reader ends and writes fail.
    public func close() { channel.close(promise: nil) }

    /// Bursts of inbound frames queued before the reader must take some (back-pressure).
    static let inboundBursts = NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark(lowWatermark: 2, highWatermark: 8)

    /// Connects, runs `body` with the link and its reader, and closes the connection when
    /// `body` returns or throws. With `tls`, the link is TLS and the peer's certificate is
    /// verified for `address` (the first read fails if it does not verify).
    /// `clock` stamps `lastHeardMs`.
    public static func connect<T: Sendable>(
        to address: HostPort, tls: NIOSSLContext? = nil, connectTimeout: TimeAmount = .seconds(2), clock: any NodeClock = SystemClock(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        _ body: (FrameLink, inout FrameReader) async throws -> T
    ) async throws -> T {
        let heard = NIOLockedValueBox(clock.nowMs())
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connect(host: address.host, port: address.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.addTLSClient(tls, host: address.host)
                    try channel.pipeline.syncOperations.addFrameCodec()
                    try channel.pipeline.syncOperations.addHandler(FrameBurstHandler(heard: heard, clock: clock))
                    return try NIOAsyncChannel<[Frame], Frame>(
                        wrappingChannelSynchronously: channel, configuration: .init(backPressureStrategy: inboundBursts))
                }
            }
        heard.withLockedValue { $0 = clock.nowMs() }
        return try await channel.executeThenClose { inbound, outbound in
            var reader = FrameReader(bursts: inbound.makeAsyncIterator())
            return try await body(FrameLink(outbound: outbound, heard: heard, channel: channel.channel), &reader)
        }
    }

    /// Opens a connection to `address` and closes it once the peer has said something (its
    /// challenge): is the relay there, and, with `tls`, does its certificate verify?
    public static func probe(_ address: HostPort, tls: NIOSSLContext?, timeoutMs: UInt64, clock: any NodeClock) async throws {
        try await withDeadline(ms: Int(timeoutMs), clock: clock) {
            try await connect(to: address, tls: tls, connectTimeout: .milliseconds(Int64(timeoutMs)), clock: clock) { _, reader in
                guard try await reader.next() != nil else { throw ProbeError.closed }
            }
        }
    }

    enum ProbeError: Error, CustomStringConvertible {
        case closed
        var description: String { "the peer closed the connection without a word" }
    }
}

/// Inbound frames of one connection. Read them from one task only.
public struct FrameReader {
    var bursts: NIOAsyncChannelInboundStream<[Frame]>.AsyncIterator
    var pending: ArraySlice<Frame> = []

    /// The next frame, or nil once the peer has closed.
    public mutating func next() async throws -> Frame? {
        while pending.isEmpty {
            guard let burst = try await bursts.next() else { return nil }
            pending = burst[...]
        }
        return pending.popFirst()
    }

    /// Every frame that arrived in the next read burst (at least one), or nil once the
    /// peer has closed: lets a reader acknowledge or persist once per burst.
    public mutating func nextBatch() async throws -> [Frame]? {
        if !pending.isEmpty { defer { pending = [] }; return Array(pending) }
        return try await bursts.next()
    }
}

/// Collects the frames of one read burst and passes them on together, stamping when the
/// peer was last heard.
final class FrameBurstHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias InboundOut = [Frame]
    let heard: NIOLockedValueBox<UInt64>
    let clock: any NodeClock
    private var burst: [Frame] = []

    init(heard: NIOLockedValueBox<UInt64>, clock: any NodeClock) { (self.heard, self.clock) = (heard, clock) }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        burst.append(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        let now = clock.nowMs()
        heard.withLockedValue { $0 = now }
        flush(context)
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        flush(context)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        flush(context)
        context.fireErrorCaught(error)
    }

    private func flush(_ context: ChannelHandlerContext) {
        guard !burst.isEmpty else { return }
        context.fireChannelRead(wrapInboundOut(burst))
        burst.removeAll(keepingCapacity: true)
    }
}
