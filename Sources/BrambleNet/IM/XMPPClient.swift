import BrambleCore
import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// An XMPP client session (RFC 6120/6121) for the Collaboration Service and the drills:
/// TLS from the first byte (XEP-0368, as the IM host's c2s listener), SASL SCRAM-SHA-1
/// with a password or with the keys a previous login derived (so a cached session logs
/// back in without the password and without PBKDF2), resource binding. Every byte the
/// server sends goes through `XMPPStreamParser`, bounded and typed.
///
/// `XMPPClient.session(…)` negotiates, then runs `body` for the session's whole life and
/// closes the connection however it ends. `body` reads events from `XMPPInbound` and
/// sends with `XMPPConnection` (which other tasks may share).
public enum XMPPClient {
    public static let streamsNS = "http://etherx.jabber.org/streams"
    public static let saslNS = "urn:ietf:params:xml:ns:xmpp-sasl"
    public static let bindNS = "urn:ietf:params:xml:ns:xmpp-bind"

    public struct Login: Sendable {
        /// The bare JID (`user@domain`); the stream goes `to` its domain.
        public var jid: String
        public var credential: SCRAMCredential
        public var resource: String
        public init(jid: String, credential: SCRAMCredential, resource: String) {
            (self.jid, self.credential, self.resource) = (jid, credential, resource)
        }
    }

    public struct Established: Sendable {
        /// The full JID the server bound.
        public var jid: String
        /// What a later login may use instead of the password.
        public var keys: SCRAMKeys
    }

    public enum Failure: Error, CustomStringConvertible, Equatable {
        /// SASL failure: a wrong user ID or password (or a user the server does not have).
        case notAuthorized(String)
        /// The server's SCRAM exchange failed our checks (its signature, its nonce…), or
        /// the keys cached were derived with another salt (the password changed).
        case scram(SCRAMError)
        case streamError(String)
        case protocolViolation(String)
        case closed

        public var description: String {
            switch self {
            case .notAuthorized(let c): "not authorized (\(c))"
            case .scram(let e): "SCRAM: \(e)"
            case .streamError(let c): "stream error: \(c)"
            case .protocolViolation(let r): "protocol violation: \(r)"
            case .closed: "the IM server closed the connection"
            }
        }
    }

    /// The event loop every XMPP session runs on: one thread of its own, so a thousand
    /// sessions logging in at once (TLS handshakes, parsing) never delay the node's
    /// database connections, whose lease renewals have a deadline of half a second.
    public static let eventLoops = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    /// Well above the IM server's own stanza limit (Prosody's c2s_stanza_size_limit, 256 KiB
    /// on the IM host): a message at its limit arrives larger (the server adds `from` and
    /// a stanza-id, an archive result wraps it), and must not end the session.
    public static let limits = XMPPStreamParser.Limits(maxStanzaBytes: 1 << 20, maxDepth: 32, maxAttributes: 64, maxNameBytes: 256)

    /// Connects, negotiates (TLS, SCRAM-SHA-1, bind), runs `body`, closes.
    public static func session<T: Sendable>(to address: HostPort, tls: NIOSSLContext?, login: Login,
                                            connectTimeout: TimeAmount = .seconds(2),
                                            limits: XMPPStreamParser.Limits = XMPPClient.limits,
                                            _ body: (Established, XMPPConnection, inout XMPPInbound) async throws -> T) async throws -> T {
        let channel = try await ClientBootstrap(group: eventLoops)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: address.host, port: address.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.addTLSClient(tls, host: address.host)
                    try channel.pipeline.syncOperations.addHandler(XMPPStreamHandler(limits: limits))
                    return try NIOAsyncChannel<XMPPStreamEvent, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            let connection = XMPPConnection(outbound: outbound)
            var reader = XMPPInbound(iterator: inbound.makeAsyncIterator())
            let established = try await negotiate(login, connection, &reader)
            defer { connection.closeStream() }
            return try await body(established, connection, &reader)
        }
    }

    static func openStream(_ domain: String, _ connection: XMPPConnection) async throws {
        let header = XMPPElement.build("stream:stream", xmlns: "jabber:client",
                                       attributes: [("to", domain), ("xmlns:stream", streamsNS), ("version", "1.0")])
        try await connection.sendRaw("<?xml version='1.0'?>" + header.serializedOpenTag())
    }

    private static func negotiate(_ login: Login, _ connection: XMPPConnection, _ reader: inout XMPPInbound) async throws -> Established {
        let domain = IMAddress.domain(login.jid)
        let user = String(login.jid.split(separator: "@").first ?? "")
        try await openStream(domain, connection)
        var features = try await reader.features()
        guard let mechanisms = features.child("mechanisms", xmlns: saslNS),
              mechanisms.children("mechanism").contains(where: { $0.text == "SCRAM-SHA-1" }) else {
            throw Failure.protocolViolation("the server offers no SCRAM-SHA-1")
        }
        var nonceBytes = [UInt8](repeating: 0, count: 18)
        for i in nonceBytes.indices { nonceBytes[i] = UInt8.random(in: 0...255) }
        var scram = SCRAMClient(username: user, credential: login.credential, clientNonce: Data(nonceBytes).base64EncodedString())
        try await connection.send(XMPPElement.build("auth", xmlns: saslNS, attributes: [("mechanism", "SCRAM-SHA-1")],
                                             text: Data(scram.clientFirstMessage().utf8).base64EncodedString()))
        let challenge = try await reader.stanza()
        try saslFailure(challenge)
        guard challenge.localName == "challenge", let serverFirst = decodeBase64(challenge.text) else {
            throw Failure.protocolViolation("expected a SASL challenge, got <\(challenge.localName)>")
        }
        let final: String
        do { final = try scram.clientFinalMessage(serverFirst: serverFirst) } catch { throw Failure.scram(error) }
        try await connection.send(XMPPElement.build("response", xmlns: saslNS, text: Data(final.utf8).base64EncodedString()))
        let outcome = try await reader.stanza()
        try saslFailure(outcome)
        guard outcome.localName == "success", let serverFinal = decodeBase64(outcome.text) else {
            throw Failure.protocolViolation("expected SASL success, got <\(outcome.localName)>")
        }
        do { try scram.verify(serverFinal: serverFinal) } catch { throw Failure.scram(error) }
        guard let keys = scram.keys else { throw Failure.protocolViolation("no SCRAM keys after the exchange") }
        // The stream restarts after SASL (the parser was reset at <success/>).
        try await openStream(domain, connection)
        features = try await reader.features()
        guard features.child("bind", xmlns: bindNS) != nil else { throw Failure.protocolViolation("the server offers no resource binding") }
        try await connection.send(XMPPElement.build("iq", attributes: [("type", "set"), ("id", "bind-1")], children: [
            XMPPElement.build("bind", xmlns: bindNS, children: [XMPPElement.build("resource", text: login.resource)]),
        ]))
        let bound = try await reader.stanza()
        guard bound.localName == "iq", bound[attribute: "id"] == "bind-1", bound[attribute: "type"] == "result",
              let jid = bound.child("bind", xmlns: bindNS)?.child("jid")?.text, !jid.isEmpty else {
            throw Failure.protocolViolation("resource binding failed: \(MailText.printable(String(bound.serialized().prefix(200))))")
        }
        return Established(jid: jid, keys: keys)
    }

    private static func saslFailure(_ e: XMPPElement) throws {
        guard e.localName == "failure", e.xmlns == saslNS else { return }
        throw Failure.notAuthorized(XMPPStanzas.condition(of: e, fallback: "failure"))
    }

    private static func decodeBase64(_ text: String) -> String? {
        guard let data = Data(base64Encoded: text.trimmingCharacters(in: .whitespaces)) else { return nil }
        return String(data: data, encoding: .utf8)
    }
}

/// Sends on an open XMPP stream; shared by the tasks of one session.
public struct XMPPConnection: Sendable {
    let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>

    public func send(_ element: XMPPElement) async throws {
        try await outbound.write(ByteBuffer(string: element.serialized()))
    }

    public func sendRaw(_ text: String) async throws {
        try await outbound.write(ByteBuffer(string: text))
    }

    /// Ends the stream politely (`</stream:stream>`) and closes our side.
    public func closeStream() {
        let outbound = self.outbound
        Task { try? await outbound.write(ByteBuffer(string: "</stream:stream>")); outbound.finish() }
    }
}

/// Reads an XMPP stream's events.
public struct XMPPInbound {
    var iterator: NIOAsyncChannelInboundStream<XMPPStreamEvent>.AsyncIterator

    /// The next event; nil when the connection ended.
    public mutating func next() async throws -> XMPPStreamEvent? { try await iterator.next() }

    /// The next stanza (a stream error or the stream's end is a `Failure`).
    public mutating func stanza() async throws -> XMPPElement {
        while let event = try await iterator.next() {
            switch event {
            case .opened: continue
            case .closed: throw XMPPClient.Failure.closed
            case .stanza(let e):
                if e.localName == "error", e.name.hasPrefix("stream:") || e.xmlns == XMPPClient.streamsNS {
                    throw XMPPClient.Failure.streamError(e.elements.first?.localName ?? "undefined-condition")
                }
                return e
            }
        }
        throw XMPPClient.Failure.closed
    }

    /// The stream's features (after its header).
    mutating func features() async throws -> XMPPElement {
        let e = try await stanza()
        guard e.localName == "features" else { throw XMPPClient.Failure.protocolViolation("expected stream features, got <\(e.localName)>") }
        return e
    }
}

/// Bytes → `XMPPStreamEvent`s. The parser restarts after SASL success, where RFC 6120
/// §6.4.6 restarts the stream.
final class XMPPStreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = XMPPStreamEvent
    private var parser: XMPPStreamParser
    private var failed = false

    init(limits: XMPPStreamParser.Limits) { parser = XMPPStreamParser(limits: limits) }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        let buffer = unwrapInboundIn(data)
        do {
            for event in try parser.feed(buffer.readableBytesView) {
                context.fireChannelRead(wrapInboundOut(event))
                if case .stanza(let e) = event, e.localName == "success", e.xmlns == XMPPClient.saslNS { parser.reset() }
            }
        } catch {
            failed = true
            context.fireErrorCaught(XMPPClient.Failure.protocolViolation("\(error)"))
            context.close(promise: nil)
        }
    }
}
