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

    private let channel: any Channel
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private var replies: NIOAsyncChannelInboundStream<SMTPReply>.AsyncIterator
    /// The server's reply to EHLO.
    public private(set) var ehlo = SMTPReply(code: 250, lines: [])

    /// The extensions EHLO offered: upper-cased keyword → its parameters ("" for none),
    /// e.g. `SIZE` → "52428800", `AUTH` → "PLAIN LOGIN".
    public var extensions: [String: String] {
        var result: [String: String] = [:]
        for line in ehlo.lines.dropFirst() {
            let keyword = line.prefix { $0 != " " }.uppercased()
            guard !keyword.isEmpty else { continue }
            result[keyword] = line.drop { $0 != " " }.trimmingCharacters(in: .whitespaces)
        }
        return result
    }

    /// The largest message the server takes (EHLO SIZE, RFC 1870); nil when it named none
    /// (no SIZE, or SIZE 0: no fixed limit).
    public var sizeLimit: Int? {
        guard let value = extensions["SIZE"].flatMap({ Int($0) }), value > 0 else { return nil }
        return value
    }

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
            var session = SMTPSession(channel: channel.channel, outbound: outbound, replies: inbound.makeAsyncIterator())
            try await session.expect("greeting", { $0.isPositive })
            session.ehlo = try await session.command("EHLO \(helo)")
            let result = try await body(&session)
            _ = try? await session.command("QUIT", accept: { _ in true })
            return result
        }
    }

    private init(channel: any Channel, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>,
                 replies: NIOAsyncChannelInboundStream<SMTPReply>.AsyncIterator) {
        (self.channel, self.outbound, self.replies) = (channel, outbound, replies)
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
        for address in [sender] + recipients where !Self.isSafeAddress(address) {
            throw Refused(command: "MAIL", reply: Self.unsafeAddressReply(address))
        }
        try await command("MAIL FROM:<\(sender)>")
        for recipient in recipients { try await command("RCPT TO:<\(recipient)>") }
        try await command("DATA", accept: { $0.code == 354 })
        try await outbound.write(ByteBuffer(bytes: SMTPData.encode(message)))
        return try await expect("DATA", { $0.isPositive })
    }

    /// Submits one message, telling apart what can be retried from what may have been
    /// queued (RFC 1047's window), for a sender that must send exactly once:
    /// 1. `MAIL FROM:<sender>`, with ` SIZE=n` when the server offers SIZE (n: the data's
    ///    bytes as sent, before the final dot); a message over the offered limit is refused
    ///    here, before MAIL, with a reply made up as the server's would be (552 5.3.4).
    /// 2. `RCPT TO` for each recipient, then `DATA`. A refusal at any of these sends RSET
    ///    (nothing is queued) and returns `.refused(stage, reply)`.
    /// 3. The message without its final ".\r\n", then `beforeFinalDot()`: the caller
    ///    checks its deadline there. If it throws, the connection is closed without the
    ///    dot (the server drops the message) and the result is `.notSent`.
    /// 4. The final ".\r\n", and the server's reply: `.accepted` (Postfix's text names
    ///    its queue id) or `.refused(.finalDot, reply)`.
    ///
    /// `message` is the RFC 5322 message as bytes (8-bit parts need not be UTF-8), not yet
    /// in DATA's form: its lines are made CRLF and dot-stuffed here (`SMTPData.body`), so no
    /// line of it can end the data early. A connection error before the final dot is
    /// `.notSent`; after it (the dot may have arrived), a lost connection, a failed read or
    /// a cancelled task is `.unknown`: IN DOUBT, the server may have queued the message.
    /// Nothing here times out by itself: bound the wait by cancelling the task. An address
    /// with a space, a control character or an angle bracket is refused before anything is
    /// sent (501, as `send` does); with no recipients, nothing is sent either (554). After
    /// `.notSent` or `.unknown` the session is unusable: close it.
    public mutating func submit(from sender: String, to recipients: [String], message: [UInt8],
                                beforeFinalDot: () throws -> Void) async -> SubmissionResult {
        guard Self.isSafeAddress(sender) else { return .refused(.mail, Self.unsafeAddressReply(sender)) }
        if let unsafe = recipients.first(where: { !Self.isSafeAddress($0) }) {
            return .refused(.rcpt(unsafe), Self.unsafeAddressReply(unsafe))
        }
        guard !recipients.isEmpty else { return .refused(.rcpt(""), SMTPReply(code: 554, lines: ["5.5.1 no recipients (not sent)"])) }
        let data = SMTPData.body(message)
        var mail = "MAIL FROM:<\(sender)>"
        if extensions["SIZE"] != nil {
            if let limit = sizeLimit, data.count > limit {
                return .refused(.mail, SMTPReply(code: 552, lines: ["5.3.4 the message (\(data.count) bytes) is larger than the server's SIZE limit of \(limit) bytes (not sent)"]))
            }
            mail += " SIZE=\(data.count)"
        }
        do {
            let accepted = try await command(mail, accept: { _ in true })
            guard accepted.isPositive else { return await reset(after: .mail, accepted) }
            for recipient in recipients {
                let reply = try await command("RCPT TO:<\(recipient)>", accept: { _ in true })
                guard reply.isPositive else { return await reset(after: .rcpt(recipient), reply) }
            }
            let go = try await command("DATA", accept: { _ in true })
            guard go.code == 354 else { return await reset(after: .data, go) }
            try await outbound.write(ByteBuffer(bytes: data))
        } catch {
            return .notSent("before the final dot: \(error)")
        }
        do {
            try beforeFinalDot()
        } catch {
            try? await channel.close().get()
            return .notSent("stopped before the final dot, connection closed: \(error)")
        }
        // A connection the server closed already cannot have taken the dot.
        guard channel.isActive else { return .notSent("the server closed the connection before the final dot") }
        do {
            try await outbound.write(ByteBuffer(bytes: SMTPData.end))
            guard let reply = try await replies.next() else {
                return .unknown("the server closed the connection after the final dot, before its reply")
            }
            return reply.isPositive ? .accepted(reply) : .refused(.finalDot, reply)
        } catch {
            return .unknown("after the final dot, no reply: \(error)")
        }
    }

    /// RSET after a refusal (its own answer does not matter: the transaction is over).
    private mutating func reset(after stage: SubmissionStage, _ reply: SMTPReply) async -> SubmissionResult {
        _ = try? await command("RSET", accept: { _ in true })
        return .refused(stage, reply)
    }

    /// A space, a control character or an angle bracket in an address would let it add to
    /// or end the command line it goes into: such an address is never sent.
    static func isSafeAddress(_ address: String) -> Bool {
        !address.unicodeScalars.contains { $0.value <= 0x20 || $0.value == 0x7F || $0 == "<" || $0 == ">" }
    }

    static func unsafeAddressReply(_ address: String) -> SMTPReply {
        SMTPReply(code: 501, lines: ["\(address.debugDescription): a space, a control character or an angle bracket in an address (not sent)"])
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

/// What became of a message given to `SMTPSession.submit`.
public enum SubmissionResult: Sendable, Equatable {
    /// The server took it; its reply to the final dot (Postfix names its queue id there).
    case accepted(SMTPReply)
    /// The server refused it at `stage` (or it was refused before being sent, with a reply
    /// made up in the server's style); nothing was queued. `SubmissionFailure.classify`
    /// tells a temporary refusal from a permanent one.
    case refused(SubmissionStage, SMTPReply)
    /// Not sent: the connection failed, or the caller stopped, before the final dot;
    /// nothing was queued, and it may be sent again.
    case notSent(String)
    /// IN DOUBT: the final dot was written and no reply came. The server may have queued the
    /// message: look for it before sending it again.
    case unknown(String)
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
