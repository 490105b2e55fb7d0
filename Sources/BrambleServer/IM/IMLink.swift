import BrambleCore
import BrambleNet
import Foundation
import NIOConcurrencyHelpers

/// One device's XMPP session as the Collaboration Service holds it: the connection to
/// send on, the iq requests waiting for their answers, the archive queries under way and
/// the message errors the server bounced. The session's own task reads the stream and
/// resolves them.
final class IMLink: Sendable {
    let pin: PIN
    /// The user's bare JID.
    let jid: String
    let resource: String

    private struct State {
        var connection: XMPPConnection?
        /// Queries whose results are looked at (by query id); results of others are dropped.
        var archiveQueries: [String: ArchiveQuery] = [:]
        var bounced: [String: String] = [:]
        /// The device's messages handed over and not yet settled: id → recipient (a bounce
        /// counts only from there, or from the server).
        var expected: [String: String] = [:]
        /// The archive caught up: live messages move the watermark from now on.
        var caughtUp = false
        var task: Task<Void, Never>?
        var closing = false
        var ended = false
    }

    /// What an archive query collects: every result's id, and the messages for the device
    /// (delivered by the reader as they come) — or, for a search, the messages found.
    enum ArchiveQuery: Sendable {
        /// Catch-up: results are delivered.
        case deliver
        /// The newest archive id (nothing delivered).
        case probe
        /// Looking for one of the device's own messages by id.
        case search(id: String)
    }

    private let state = NIOLockedValueBox(State())
    private let waiters = XMPPIQWaiters()
    private let found = NIOLockedValueBox<Set<String>>([])

    init(pin: PIN, jid: String) {
        (self.pin, self.jid) = (pin, jid)
        resource = "bramble-\(pin)"
    }

    func attach(_ connection: XMPPConnection) { state.withLockedValue { $0.connection = connection } }

    func setTask(_ task: Task<Void, Never>) { state.withLockedValue { $0.task = task } }

    var isCaughtUp: Bool { state.withLockedValue { $0.caughtUp } }
    func markCaughtUp() { state.withLockedValue { $0.caughtUp = true } }
    var isClosing: Bool { state.withLockedValue { $0.closing } }
    var hasEnded: Bool { state.withLockedValue { $0.ended } }

    /// A request id no one else can guess (an answer is matched by it).
    func newID(_ prefix: String) -> String {
        "\(prefix)-\(UInt64.random(in: 0...UInt64.max))"
    }

    func send(_ element: XMPPElement) async throws {
        guard let connection = state.withLockedValue({ $0.closing ? nil : $0.connection }) else { throw XMPPClient.Failure.closed }
        try await connection.send(element)
    }

    /// Sends an iq and waits for its result (an `error` answer throws), at most `timeoutMs`.
    func iq(_ element: XMPPElement, timeoutMs: Int = 10_000) async throws -> XMPPElement {
        let answer = try await waiters.request(element, timeoutMs: timeoutMs) { [self] in try await send($0) }
        if answer[attribute: "type"] == "error" {
            throw IMRefusal(condition: XMPPStanzas.condition(of: answer.child("error")))
        }
        return answer
    }

    /// An iq answer: resumes its waiter (true), or none waits (false). Only the user's own
    /// account or server answers (no `from`, the user's JID, or the domain): a contact
    /// cannot end a catch-up early with a forged result.
    func resolve(_ answer: XMPPElement) -> Bool {
        if let from = answer[attribute: "from"] {
            let bare = IMAddress.bare(from)
            guard bare == jid || bare == IMAddress.domain(jid) else { return false }
        }
        return waiters.resolve(answer)
    }

    func beginArchiveQuery(_ queryID: String, _ kind: ArchiveQuery) { state.withLockedValue { $0.archiveQueries[queryID] = kind } }
    func endArchiveQuery(_ queryID: String) { state.withLockedValue { _ = $0.archiveQueries.removeValue(forKey: queryID) } }
    func archiveQuery(_ queryID: String) -> ArchiveQuery? { state.withLockedValue { $0.archiveQueries[queryID] } }
    func noteFound(_ id: String) { found.withLockedValue { _ = $0.insert(id) } }
    func wasFound(_ id: String) -> Bool { found.withLockedValue { $0.contains(id) } }

    func expectBounce(id: String, to: String) { state.withLockedValue { $0.expected[id] = to } }
    /// A bounce of one of the device's messages, from its recipient or the server.
    func noteBounce(id: String, condition: String, from: String?) {
        state.withLockedValue { s in
            guard let to = s.expected[id] else { return }
            let sender = IMAddress.bare(from ?? IMAddress.domain(jid))
            guard sender == to || sender == IMAddress.domain(jid) else { return }
            s.bounced[id] = condition
        }
    }
    func bounce(of id: String) -> String? {
        state.withLockedValue { s in
            s.expected.removeValue(forKey: id)
            return s.bounced.removeValue(forKey: id)
        }
    }

    /// The stream ended: every waiter fails.
    func ended() {
        state.withLockedValue { s in
            s.ended = true
            s.connection = nil
        }
        waiters.endAll()
    }

    /// Ends the session from our side: unavailable presence, the stream's end, then the
    /// session's task is cancelled if it has not ended within `graceMs`.
    func close(graceMs: UInt64 = 1_000) async {
        let (connection, task) = state.withLockedValue { s -> (XMPPConnection?, Task<Void, Never>?) in
            let c = s.closing ? nil : s.connection
            s.closing = true
            return (c, s.task)
        }
        if let connection {
            // Bounded: a socket backed up must not hold a demotion.
            _ = try? await withDeadline(ms: 500) { try await connection.send(XMPPStanzas.presence(.offline)) }
            connection.closeStream()
        }
        guard let task else { return }
        let deadline = ContinuousClock.now + .milliseconds(Int(graceMs))
        while !hasEnded, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
        task.cancel()
    }
}

/// The IM server answered an iq with an error.
struct IMRefusal: Error, CustomStringConvertible {
    let condition: String
    var description: String { "the IM server answered \(condition)" }
}
