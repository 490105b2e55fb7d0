import BrambleCore
import Foundation
import NIOCore
import NIOSSL
import NIOPosix

/// An SMTP client session (the Messaging Agent's submission and the drills' mail stream),
/// on `NIOAsyncChannel` with `SMTPReplyDecoder`: `SMTPSession.with(to:)` opens it, reads
/// the greeting and says EHLO, runs the closure, then QUIT and closes.
public struct SMTPSession {
    /// A reply that was not the one expected.
    public struct Refused: Error, CustomStringConvertible {
        public var command: String
        public var reply: SMTPReply
        public var description: String { "SMTP \(command) answered \(reply.code) \(reply.text)" }
    }

    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private var replies: NIOAsyncChannelInboundStream<SMTPReply>.AsyncIterator

    /// With `tls`, the connection is TLS from its first byte (submissions-style wrapper
    /// mode, RFC 8314) and the server's certificate is verified; without it, plaintext.
    public static func with<T: Sendable>(to address: HostPort, tls: NIOSSLContext?, helo: String = "bramble",
                                         connectTimeout: TimeAmount = .seconds(2),
                                         _ body: (inout SMTPSession) async throws -> T) async throws -> T {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(connectTimeout)
            .connect(host: address.host, port: address.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.addTLSClient(tls, host: address.host)
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(SMTPFrameDecoder()))
                    return try NIOAsyncChannel<SMTPReply, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            var session = SMTPSession(outbound: outbound, replies: inbound.makeAsyncIterator())
            try await session.expect("greeting", { $0.isPositive })
            try await session.command("EHLO \(helo)")
            let result = try await body(&session)
            _ = try? await session.command("QUIT", accept: { _ in true })
            return result
        }
    }

    private init(outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>, replies: NIOAsyncChannelInboundStream<SMTPReply>.AsyncIterator) {
        (self.outbound, self.replies) = (outbound, replies)
    }

    /// AUTH PLAIN (RFC 4616): `login` with its `password`, acting as `user` (the
    /// authorization identity; nil: as `login` itself). The Messaging Agent submits as the
    /// user through the service account, a Dovecot master user. A refusal names the
    /// command only, never the credentials.
    public mutating func authenticatePlain(as user: String? = nil, login: String, password: String) async throws {
        let token = Data(Array("\(user ?? "")\0\(login)\0\(password)".utf8)).base64EncodedString()
        try await command("AUTH PLAIN \(token)", accept: { $0.code == 235 })
    }

    /// Sends one message; returns the server's 250 reply to the data (Postfix names its
    /// queue id there). `message` is the RFC 5322 text; its lines are made CRLF and
    /// dot-stuffed here (`SMTPData`).
    @discardableResult
    public mutating func send(from sender: String, to recipients: [String], message: String) async throws -> SMTPReply {
        // An address goes into a command line: one with a line break could add commands.
        for address in [sender] + recipients where address.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7F || $0 == "<" || $0 == ">" }) {
            throw Refused(command: "MAIL", reply: SMTPReply(code: 501, lines: ["\(address.debugDescription): a space, a control character or an angle bracket in an address (not sent)"]))
        }
        try await command("MAIL FROM:<\(sender)>")
        for recipient in recipients { try await command("RCPT TO:<\(recipient)>") }
        try await command("DATA", accept: { $0.code == 354 })
        try await outbound.write(ByteBuffer(bytes: SMTPData.encode(message)))
        return try await expect("DATA", { $0.isPositive })
    }

    @discardableResult
    public mutating func command(_ line: String, accept: (SMTPReply) -> Bool = { $0.isPositive }) async throws -> SMTPReply {
        try await outbound.write(ByteBuffer(string: line + "\r\n"))
        return try await expect(String(line.prefix { $0 != " " && $0 != ":" }), accept)
    }

    @discardableResult
    private mutating func expect(_ what: String, _ accept: (SMTPReply) -> Bool) async throws -> SMTPReply {
        guard let reply = try await replies.next() else {
            throw Refused(command: what, reply: SMTPReply(code: 421, lines: ["the server closed the connection"]))
        }
        guard accept(reply) else { throw Refused(command: what, reply: reply) }
        return reply
    }
}

struct SMTPFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = SMTPReply
    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let reply = try SMTPReplyDecoder.decode(from: &buffer) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(reply))
        return .continue
    }
    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}
