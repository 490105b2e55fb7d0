/// What a failed database statement means for the caller, decided from the facts of the
/// failure alone (the shell maps postgres-nio's errors to these facts). The question
/// that matters for pushes: can the transaction have committed?
public struct DatabaseFailure: Sendable, Equatable {
    /// How far the transaction got when it failed.
    public enum Stage: Sendable, Equatable {
        /// Before COMMIT was sent: whatever happened, nothing was committed.
        case beforeCommit
        /// COMMIT was sent (or may have been): the outcome depends on the answer.
        case atCommit
    }

    public enum Verdict: Sendable, Equatable {
        /// Aborted by a deadlock or serialization conflict: retry at once.
        case conflict
        /// The host is not (or no longer) the writable primary, or the connection to it
        /// failed before anything was committed: find the primary, then retry.
        case primaryMoved
        /// Certainly not committed; do not retry.
        case notCommitted
        /// May or may not have committed (the connection failed or time ran out after
        /// COMMIT was sent): the caller must not say "not accepted".
        case outcomeUnknown
    }

    public var stage: Stage
    /// The server's SQLSTATE, when the server answered with an error.
    public var sqlState: String?
    /// The connection failed or closed (no answer from the server).
    public var connectionLost: Bool
    /// The caller's time ran out before an answer came.
    public var timedOut: Bool

    public init(stage: Stage, sqlState: String? = nil, connectionLost: Bool = false, timedOut: Bool = false) {
        self.stage = stage
        self.sqlState = sqlState
        self.connectionLost = connectionLost
        self.timedOut = timedOut
    }

    public var verdict: Verdict {
        switch stage {
        case .atCommit:
            // Only a transaction rollback (serialization, deadlock) or a deferred
            // constraint (class 23) error for COMMIT means it rolled back. Anything else may
            // come after the commit record was written: a backend told to stop while it
            // waits for the synchronous standby (57P01, when the postmaster dies or a fast
            // shutdown begins) says "the transaction has already committed locally". Silence
            // proves nothing either.
            guard let state = sqlState, !connectionLost, !timedOut else { return .outcomeUnknown }
            // 40003 (statement completion unknown) says just that.
            let rolledBack = ["40000", "40001", "40002", "40P01"].contains(state) || state.hasPrefix("23")
            return rolledBack ? .notCommitted : .outcomeUnknown
        case .beforeCommit:
            if let state = sqlState {
                if state == "40P01" || state == "40001" { return .conflict }
                if state == "25006" || state.hasPrefix("57P") || state.hasPrefix("08") { return .primaryMoved }
                return .notCommitted
            }
            return connectionLost || timedOut ? .primaryMoved : .notCommitted
        }
    }
}
