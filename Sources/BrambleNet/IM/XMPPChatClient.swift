import BrambleCore
import Foundation
import NIOConcurrencyHelpers
import NIOSSL

/// A plain XMPP chat client, as a desktop user's: the drills' and benchmarks' sender on the
/// client host, and the tests' other party. It logs in with a password, announces its
/// presence, sends messages — `send` returns once the server has routed the message (a
/// ping after it is answered: a session's stanzas are handled in order), so what it
/// returns for is what the IM server accepted — and collects what it receives.
public final class XMPPChatClient: Sendable {
    public struct Received: Sendable, Equatable {
        public var from: String
        public var id: String
        public var body: String
        public init(from: String, id: String, body: String) { (self.from, self.id, self.body) = (from, id, body) }
    }

    public let jid: String
    private let domain: String
    private let state = NIOLockedValueBox<State>(State())
    private struct State {
        var connection: XMPPConnection?
        var received: [Received] = []
        var presence: [String: IMPresence] = [:]
        var bounced: [String: String] = [:]
        var next = 0
        var ended = false
        var task: Task<Void, Never>?
    }

    private let waiters = XMPPIQWaiters()

    private init(jid: String) {
        self.jid = IMAddress.bare(jid)
        domain = IMAddress.domain(jid)
    }

    /// Logs in (SCRAM-SHA-1 with `password`), binds `resource`, sends initial presence.
    public static func connect(to address: HostPort, tls: NIOSSLContext?, jid: String, password: String,
                               resource: String = "desk-\(UInt32.random(in: 0...UInt32.max))", timeoutMs: Int = 10_000) async throws -> XMPPChatClient {
        let client = XMPPChatClient(jid: jid)
        let ready = NIOLockedValueBox<CheckedContinuation<Void, any Error>?>(nil)
        let started = NIOLockedValueBox<Result<Void, any Error>?>(nil)
        @Sendable func signal(_ r: Result<Void, any Error>) {
            let c = ready.withLockedValue { c -> CheckedContinuation<Void, any Error>? in defer { c = nil }; return c }
            started.withLockedValue { if $0 == nil { $0 = r } }
            c?.resume(with: r)
        }
        let task = Task.detached {
            do {
                try await XMPPClient.session(to: address, tls: tls, login: .init(jid: jid, credential: .password(password), resource: resource)) { _, connection, inbound in
                    client.state.withLockedValue { $0.connection = connection }
                    try await connection.send(XMPPStanzas.presence(.available))
                    signal(.success(()))
                    while let event = try await inbound.next() {
                        guard case .stanza(let e) = event else { if case .closed = event { return }; continue }
                        client.handle(e)
                    }
                }
                signal(.failure(XMPPClient.Failure.closed))
            } catch {
                signal(.failure(error))
            }
            client.ended()
        }
        client.state.withLockedValue { $0.task = task }
        do {
            try await withDeadline(ms: timeoutMs) {
                try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                    if let r = started.withLockedValue({ $0 }) { c.resume(with: r) } else {
                        ready.withLockedValue { $0 = c }
                        if let r = started.withLockedValue({ $0 }) { signal(r) }
                    }
                }
            }
        } catch {
            task.cancel()
            throw error
        }
        return client
    }

    private func handle(_ e: XMPPElement) {
        switch e.localName {
        case "iq":
            if e[attribute: "type"] == "result" || e[attribute: "type"] == "error" {
                waiters.resolve(e)
            } else if e.child("ping", xmlns: XMPPStanzas.pingNS) != nil {
                let reply = XMPPStanzas.iqResult(to: e)
                if let c = state.withLockedValue({ $0.connection }) { Task { try? await c.send(reply) } }
            }
        case "message":
            if let bounce = XMPPStanzas.bounce(e) { state.withLockedValue { $0.bounced[bounce.id] = bounce.condition }; return }
            guard let m = XMPPStanzas.incoming(e, user: jid) else { return }
            state.withLockedValue { $0.received.append(Received(from: m.from, id: m.id, body: m.body)) }
        case "presence":
            guard let p = XMPPStanzas.contactPresence(e, user: jid) else { return }
            state.withLockedValue { $0.presence[p.jid] = p.presence }
        default:
            break
        }
    }

    private func ended() {
        state.withLockedValue { s in
            s.ended = true
            s.connection = nil
        }
        waiters.endAll()
    }

    public var isConnected: Bool { state.withLockedValue { !$0.ended && $0.connection != nil } }

    /// Sends a chat message; returns once the server has routed it. Throws if the session
    /// ended first, or if the server bounced it.
    public func send(to: String, body: String, id: String) async throws {
        guard let connection = state.withLockedValue({ $0.connection }) else { throw XMPPClient.Failure.closed }
        try await connection.send(XMPPStanzas.message(to: to, id: id, body: body))
        try await ping()
        if let condition = state.withLockedValue({ $0.bounced.removeValue(forKey: id) }) { throw XMPPClient.Failure.streamError("bounced: \(condition)") }
    }

    public func setPresence(_ p: IMPresence) async throws {
        guard let connection = state.withLockedValue({ $0.connection }) else { throw XMPPClient.Failure.closed }
        try await connection.send(XMPPStanzas.presence(p))
        try await ping()
    }

    /// A round trip to the server (XEP-0199).
    public func ping(timeoutMs: Int = 10_000) async throws {
        let id = state.withLockedValue { $0.next += 1; return "p\($0.next)" }
        guard let connection = state.withLockedValue({ $0.connection }) else { throw XMPPClient.Failure.closed }
        _ = try await waiters.request(XMPPStanzas.ping(id: id, to: domain), timeoutMs: timeoutMs) { try await connection.send($0) }
    }

    /// Everything received so far.
    public var received: [Received] { state.withLockedValue { $0.received } }
    /// The last presence heard from each contact.
    public var presence: [String: IMPresence] { state.withLockedValue { $0.presence } }

    public func close() async {
        let (connection, task) = state.withLockedValue { ($0.connection, $0.task) }
        if let connection {
            try? await connection.send(XMPPStanzas.presence(.offline))
            connection.closeStream()
        }
        try? await Task.sleep(for: .milliseconds(50))
        task?.cancel()
    }
}
