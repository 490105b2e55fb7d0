import BrambleCore
import NIOConcurrencyHelpers

/// The iq requests of one XMPP session waiting for their answers (RFC 6120 §8.2.3: every
/// get or set is answered by a result or an error with its id). The session's reader
/// hands each answer to `resolve`; when the session ends, `endAll` fails every waiter and
/// any later request at once.
public final class XMPPIQWaiters: Sendable {
    private let state = NIOLockedValueBox<(waiting: [String: CheckedContinuation<XMPPElement, any Error>], ended: Bool)>(([:], false))

    public init() {}

    /// Sends `element` (an iq with an id) with `send`, and returns its answer; throws if the
    /// session ends first, the send fails, or no answer came within `timeoutMs`.
    public func request(_ element: XMPPElement, timeoutMs: Int,
                        send: @escaping @Sendable (XMPPElement) async throws -> Void) async throws -> XMPPElement {
        guard let id = element[attribute: "id"] else { preconditionFailure("an iq needs an id") }
        do {
            return try await withDeadline(ms: timeoutMs) { [self] in
                try await withCheckedThrowingContinuation { continuation in
                    let ended = state.withLockedValue { s -> Bool in
                        if s.ended { return true }
                        s.waiting[id] = continuation
                        return false
                    }
                    if ended { continuation.resume(throwing: XMPPClient.Failure.closed); return }
                    Task { [self] in
                        do { try await send(element) } catch { state.withLockedValue { $0.waiting.removeValue(forKey: id) }?.resume(throwing: error) }
                    }
                }
            }
        } catch {
            // Timed out: no answer will be waited for.
            state.withLockedValue { $0.waiting.removeValue(forKey: id) }?.resume(throwing: error)
            throw error
        }
    }

    /// An answer: resumes its waiter (true), or none waits (false).
    @discardableResult
    public func resolve(_ answer: XMPPElement) -> Bool {
        guard let id = answer[attribute: "id"], let waiter = state.withLockedValue({ $0.waiting.removeValue(forKey: id) }) else { return false }
        waiter.resume(returning: answer)
        return true
    }

    /// The session ended: every waiter fails, and every later request.
    public func endAll() {
        let waiters = state.withLockedValue { s -> [CheckedContinuation<XMPPElement, any Error>] in
            s.ended = true
            defer { s.waiting = [:] }
            return Array(s.waiting.values)
        }
        for w in waiters { w.resume(throwing: XMPPClient.Failure.closed) }
    }
}
