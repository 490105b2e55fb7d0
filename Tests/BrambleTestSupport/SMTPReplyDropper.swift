import BrambleNet
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// A one-connection SMTP forwarder on loopback that loses the server's reply to the final
/// dot: plaintext toward the client, TLS toward the server (the mail host speaks only TLS),
/// bytes copied both ways until the client's data ends ("\r\n.\r\n"). That line goes on
/// to the server; the server's next reply is read and dropped, and both connections close,
/// so the client sees the connection end after its dot, with no reply (RFC 1047's window).
final class SMTPReplyDropper: Sendable {
    let address: HostPort
    private let task: Task<Void, any Error>
    /// Set once the final dot went to the server.
    private let dotForwarded: NIOLockedValueBox<Bool>

    private init(address: HostPort, task: Task<Void, any Error>, dotForwarded: NIOLockedValueBox<Bool>) {
        (self.address, self.task, self.dotForwarded) = (address, task, dotForwarded)
    }

    var forwardedTheFinalDot: Bool { dotForwarded.withLockedValue { $0 } }

    static func start(forwardingTo target: HostPort, tls: NIOSSLContext) async throws -> SMTPReplyDropper {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0) { child in
                child.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: child) }
            }
        guard let port = server.channel.localAddress?.port else { throw SetupError("the reply dropper has no port") }
        let dotForwarded = NIOLockedValueBox(false)
        let task = Task {
            try await server.executeThenClose { clients in
                for try await client in clients {
                    try await relay(client, to: target, tls: tls, dotForwarded: dotForwarded)
                    return
                }
            }
        }
        return SMTPReplyDropper(address: HostPort(host: "127.0.0.1", port: port), task: task, dotForwarded: dotForwarded)
    }

    func stop() { task.cancel() }

    private static func relay(_ client: NIOAsyncChannel<ByteBuffer, ByteBuffer>, to target: HostPort, tls: NIOSSLContext,
                              dotForwarded: NIOLockedValueBox<Bool>) async throws {
        let upstream = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: target.host, port: target.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.addTLSClient(tls, host: target.host)
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        try await client.executeThenClose { fromClient, toClient in
            try await upstream.executeThenClose { fromServer, toServer in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        var tail: [UInt8] = []
                        for try await chunk in fromClient {
                            let bytes = tail + Array(chunk.readableBytesView)
                            let end: [UInt8] = Array("\r\n.\r\n".utf8)
                            let ends = bytes.count >= end.count && (0...(bytes.count - end.count)).contains { bytes[$0..<($0 + end.count)].elementsEqual(end) }
                            if ends { dotForwarded.withLockedValue { $0 = true } }  // before the write: its reply may come at once
                            try await toServer.write(chunk)
                            if ends { return }
                            tail = Array(bytes.suffix(end.count - 1))
                        }
                    }
                    group.addTask {
                        for try await chunk in fromServer {
                            // The reply to the dot (Postfix's 250) is read, not forwarded; then both close.
                            if dotForwarded.withLockedValue({ $0 }) { return }
                            try await toClient.write(chunk)
                        }
                    }
                    try await group.waitForAll()
                }
            }
        }
    }
}
