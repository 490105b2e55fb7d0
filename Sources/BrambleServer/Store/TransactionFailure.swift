import BrambleNet
import BrambleCore
import NIOConcurrencyHelpers
import Logging
import PostgresNIO

/// Decides, once, between a transaction sending COMMIT and its caller giving up on it:
/// a caller that gave up before COMMIT may truthfully say "not accepted", because COMMIT
/// will then never be sent.
final class CommitGate: Sendable {
    private enum State { case open, committing, abandoned }
    private let state = NIOLockedValueBox(State.open)
    private let payload = NIOLockedValueBox<String?>(nil)

    /// The pair notification the transaction sends at its commit, if any.
    var notification: String? {
        get { payload.withLockedValue { $0 } }
        set { payload.withLockedValue { $0 = newValue } }
    }

    struct Abandoned: Error, CustomStringConvertible {
        var description: String { "the caller gave up before COMMIT; rolled back" }
    }

    /// The transaction is about to send COMMIT: true unless the caller gave up.
    func beginCommit() -> Bool {
        state.withLockedValue { s in
            guard s == .open else { return false }
            s = .committing
            return true
        }
    }

    /// The caller gives up: true if COMMIT will never be sent, false if it may have been.
    func abandon() -> Bool {
        state.withLockedValue { s in
            if s == .open { s = .abandoned }
            return s == .abandoned
        }
    }
}

/// A transaction that failed, and how far it got.
struct TransactionFailure: Error, CustomStringConvertible {
    let stage: DatabaseFailure.Stage
    let underlying: any Error
    var description: String { "\(stage == .atCommit ? "at COMMIT" : "before COMMIT"): \(String(reflecting: underlying))" }

    static func facts(_ error: any Error, stage: DatabaseFailure.Stage) -> DatabaseFailure {
        switch error {
        case let failure as TransactionFailure: return facts(failure.underlying, stage: failure.stage)
        case is DatabaseHosts.PrimaryMoved: return DatabaseFailure(stage: .beforeCommit, connectionLost: true)
        case is CommitGate.Abandoned: return DatabaseFailure(stage: .beforeCommit)
        case is DeadlineExceeded, is CancellationError: return DatabaseFailure(stage: stage, timedOut: true)
        case let psql as PSQLError:
            if let state = psql.serverInfo?[.sqlState] { return DatabaseFailure(stage: stage, sqlState: state) }
            return DatabaseFailure(stage: stage, connectionLost: true)
        default:
            return DatabaseFailure(stage: stage, connectionLost: true)
        }
    }
}

/// Commits of this node whose outcome it could not learn: their notification, when it
/// comes (at the commit, however late), is this node's only news of their items, which
/// its own Dispatcher would otherwise never get (it ignores its own notifications, whose
/// items it was handed directly). Bounded: at most `capacity`, each kept `keepMs`.
final class UncertainCommits: Sendable {
    static let capacity = 1_000
    static let keepMs: UInt64 = 600_000
    /// Each commit's notification and until when it is kept (two oversized commits notify
    /// the same `*` payload, so it is a list, not a set).
    private let pending = NIOLockedValueBox<[(payload: String, untilMs: UInt64)]>([])

    func add(_ payload: String, nowMs: UInt64) {
        pending.withLockedValue { p in
            p.removeAll { $0.untilMs <= nowMs }
            if p.count < Self.capacity { p.append((payload, nowMs + Self.keepMs)) }
        }
    }

    /// True (for one of them) if `payload` is one of them.
    func claim(_ payload: String) -> Bool {
        pending.withLockedValue { p in
            guard let i = p.firstIndex(where: { $0.payload == payload }) else { return false }
            p.remove(at: i)
            return true
        }
    }
}

extension PostgresConnection {
    /// A transaction run by hand: BEGIN, `body`, then COMMIT if `mayCommit()` still allows
    /// it (else ROLLBACK). A failure says how far it got (`TransactionFailure`). A ROLLBACK
    /// that fails closes the connection, so the pool can never hand out a connection still
    /// inside this transaction, whose work the next user's COMMIT would commit.
    func transaction<T>(logger: Logger, mayCommit: () -> Bool = { true },
                        _ body: (PostgresConnection) async throws -> sending T) async throws -> sending T {
        do {
            try await query("BEGIN", logger: logger)
            let result = try await body(self)
            guard mayCommit() else { throw CommitGate.Abandoned() }
            do {
                try await query("COMMIT", logger: logger)
            } catch {
                throw TransactionFailure(stage: .atCommit, underlying: error)
            }
            return result
        } catch let failure as TransactionFailure {
            throw failure
        } catch {
            do {
                try await query("ROLLBACK", logger: logger)
            } catch {
                try? await close()
            }
            throw TransactionFailure(stage: .beforeCommit, underlying: error)
        }
    }
}
