import BrambleCore
import NIOCore
import NIOSSL
import NIOPosix

/// An IMAP client session (the Messaging Agent's, and the tests'), on `NIOAsyncChannel`
/// with `IMAPResponseDecoder` as its bounded, typed decoder: `IMAPSession.with(to:)` opens
/// it for a closure and closes it after. One command at a time: each is tagged, and its
/// answer is the untagged responses before its tagged completion.
public struct IMAPSession {
    /// A command's answer.
    public struct Answer: Sendable {
        public var untagged: [IMAPUntagged]
        public var status: IMAPStatus
        public var code: IMAPResponseCode?
        public var text: String
    }

    /// The server said NO or BAD, or ended the session.
    public struct Refused: Error, CustomStringConvertible {
        public var command: String
        public var status: IMAPStatus
        public var text: String
        public init(command: String, status: IMAPStatus, text: String) { (self.command, self.status, self.text) = (command, status, text) }
        public var description: String { "IMAP \(command) answered \(status.rawValue): \(text)" }
    }

    /// What `SELECT` (or `EXAMINE`) tells: the mailbox's watermarks.
    public struct Selected: Sendable, Equatable {
        public var uidValidity: UInt64?
        public var uidNext: UInt64?
        public var exists: UInt32
        public var highestModSeq: UInt64?
    }

    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private var responses: NIOAsyncChannelInboundStream<IMAPResponse>.AsyncIterator
    private var tag = 0
    /// The server's greeting.
    public let greeting: IMAPUntagged

    /// Connects, reads the greeting (an `OK` or `PREAUTH`; a `BYE` is refused), runs `body`,
    /// and closes the connection however `body` ends. With `tls`, the connection is TLS
    /// from its first byte (IMAPS, RFC 8314) and the server's certificate is verified; a
    /// STARTTLS upgrade is not offered, so nothing is ever read in the clear. Without it,
    /// the session is plaintext (only where an operator asked for that).
    public static func with<T: Sendable>(to address: HostPort, tls: NIOSSLContext?, connectTimeout: TimeAmount = .seconds(2),
                                         limits: IMAPResponseDecoder.Limits = .init(),
                                         _ body: (inout IMAPSession) async throws -> T) async throws -> T {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(connectTimeout)
            .connect(host: address.host, port: address.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.addTLSClient(tls, host: address.host)
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(IMAPFrameDecoder(limits: limits)))
                    return try NIOAsyncChannel<IMAPResponse, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            var iterator = inbound.makeAsyncIterator()
            guard case .untagged(let greeting)? = try await iterator.next() else {
                throw Refused(command: "greeting", status: .bye, text: "no greeting")
            }
            if case .status(.bye, _, let text) = greeting { throw Refused(command: "greeting", status: .bye, text: text) }
            var session = IMAPSession(outbound: outbound, responses: iterator, greeting: greeting)
            return try await body(&session)
        }
    }

    private init(outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>, responses: NIOAsyncChannelInboundStream<IMAPResponse>.AsyncIterator,
                 greeting: IMAPUntagged) {
        (self.outbound, self.responses, self.greeting) = (outbound, responses, greeting)
    }

    /// The most untagged responses one command may bring (each bounded by the decoder).
    public static let maxUntaggedPerCommand = 100_000

    /// Sends `command` (without tag or CRLF; use `IMAPSession.astring` for its arguments)
    /// and collects its answer; throws `Refused` for NO, BAD or BYE.
    @discardableResult
    public mutating func run(_ command: String) async throws -> Answer {
        tag += 1
        let tag = "B\(tag)"
        try await outbound.write(ByteBuffer(string: "\(tag) \(command)\r\n"))
        let verb = String(command.prefix { $0 != " " })
        var untagged: [IMAPUntagged] = []
        while let response = try await responses.next() {
            switch response {
            case .untagged(.status(.bye, _, let text)) where verb != "LOGOUT":
                throw Refused(command: verb, status: .bye, text: text)
            case .untagged(let u):
                // Bounded: a server cannot make one command's answer grow without end.
                guard untagged.count < Self.maxUntaggedPerCommand else {
                    throw Refused(command: verb, status: .bad, text: "more than \(Self.maxUntaggedPerCommand) responses to one command")
                }
                untagged.append(u)
            case .continuation:
                continue
            case .tagged(let t, let status, let code, let text) where t == tag:
                guard status == .ok else { throw Refused(command: verb, status: status, text: text) }
                return Answer(untagged: untagged, status: status, code: code, text: text)
            case .tagged:
                continue
            }
        }
        throw Refused(command: verb, status: .bye, text: "the server closed the connection")
    }

    /// `LOGIN user password` (a master user: `user*master`).
    public mutating func login(user: String, password: String) async throws {
        try await run("LOGIN \(Self.astring(user)) \(Self.astring(password))")
    }

    /// `SELECT` (or `EXAMINE`, `readOnly`) `mailbox`, a name as the user reads it (sent in
    /// modified UTF-7, `MailboxName`), and its watermarks.
    public mutating func select(_ mailbox: String, readOnly: Bool = false) async throws -> Selected {
        Self.selected(from: try await run("\(readOnly ? "EXAMINE" : "SELECT") \(Self.mailbox(mailbox))").untagged)
    }

    /// The watermarks in a SELECT's untagged responses.
    static func selected(from untagged: [IMAPUntagged]) -> Selected {
        var selected = Selected(exists: 0)
        for u in untagged {
            switch u {
            case .exists(let n): selected.exists = n
            case .status(.ok, let code?, _):
                switch code.name {
                case "UIDVALIDITY": selected.uidValidity = code.number
                case "UIDNEXT": selected.uidNext = code.number
                case "HIGHESTMODSEQ": selected.highestModSeq = code.number
                default: break
                }
            default: break
            }
        }
        return selected
    }

    /// A mailbox name as a command argument: modified UTF-7, then an astring.
    static func mailbox(_ name: String) -> String { astring(MailboxName.encode(name)) }

    /// `UID FETCH set (items)`: each message's attributes, by UID.
    public mutating func uidFetch(_ set: String, _ items: String) async throws -> [(uid: UInt64, attributes: [IMAPFetchAttribute])] {
        try await run("UID FETCH \(set) (\(items))").untagged.compactMap {
            guard case .fetch(_, let attributes) = $0, let uid = attributes["UID"]?.number else { return nil }
            return (uid, attributes)
        }
    }

    public mutating func logout() async {
        _ = try? await run("LOGOUT")
    }

    /// An argument as IMAP's astring: quoted when every byte may be, else a synchronizing-
    /// free literal (`{n+}`, LITERAL+, which Dovecot offers).
    public static func astring(_ s: String) -> String {
        let bytes = Array(s.utf8)
        if !bytes.isEmpty, bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) {
            return "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        return "{\(bytes.count)+}\r\n" + s
    }
}

/// `IMAPResponseDecoder` in a channel pipeline.
struct IMAPFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = IMAPResponse
    let limits: IMAPResponseDecoder.Limits

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let response = try IMAPResponseDecoder.decode(from: &buffer, limits: limits) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(response))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}
