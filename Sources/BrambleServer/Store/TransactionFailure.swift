import BrambleCore
import NIOConcurrencyHelpers
import PostgresNIO

/// Decides, once, between a transaction sending COMMIT and its caller giving up on it:
/// a caller that gave up before COMMIT may truthfully say "not accepted", because COMMIT
/// will then never be sent.
final class CommitGate: Sendable {
    private enum State { case open, committing, abandoned }
    private let state = NIOLockedValueBox(State.open)

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

    /// The facts of the failure for `DatabaseFailure`'s verdict.
    var facts: DatabaseFailure { Self.facts(underlying, stage: stage) }

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
