import BrambleNet
import NIOCore
import NIOPosix
import NIOSSL

/// Puts arbitrary bytes on a TCP connection and collects what comes back until the peer
/// closes: for feeding servers input no well-behaved client would send.
enum RawTCP {
    static func exchange(_ bytes: ByteBuffer, with address: HostPort, tls: NIOSSLContext? = nil) async throws -> ByteBuffer {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: address.host, port: address.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: nil)) }
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(bytes)
            var received = ByteBuffer()
            for try await var chunk in inbound { received.writeBuffer(&chunk) }
            return received
        }
    }
}
