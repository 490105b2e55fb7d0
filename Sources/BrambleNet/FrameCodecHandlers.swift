import BrambleCore
import NIOCore

/// Turns bytes into `Frame`s with the core decoder; a malformed frame closes the
/// connection with a typed `WireError` (the pipeline's error path), never a crash.
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = Frame
    public let maxLength: Int

    public init(maxLength: Int = Frame.defaultMaxLength) { self.maxLength = maxLength }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try Frame.decode(from: &buffer, maxLength: maxLength) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}

public struct FrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = Frame
    public init() {}
    public func encode(data: Frame, out: inout ByteBuffer) throws { data.encode(into: &out) }
}

extension ChannelPipeline.SynchronousOperations {
    /// Adds the length-prefixed frame codec (decoder and encoder).
    public func addFrameCodec(maxLength: Int = Frame.defaultMaxLength) throws {
        try addHandler(ByteToMessageHandler(FrameDecoder(maxLength: maxLength)))
        try addHandler(MessageToByteHandler(FrameEncoder()))
    }
}

public typealias FrameChannel = NIOAsyncChannel<Frame, Frame>
