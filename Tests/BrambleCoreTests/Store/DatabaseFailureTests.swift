import Testing

@testable import BrambleCore

/// What a failed statement means: above all, whether a push can have been committed.
@Suite struct DatabaseFailureTests {
    @Test func beforeCommitNothingWasCommitted() {
        #expect(DatabaseFailure(stage: .beforeCommit, sqlState: "40P01").verdict == .conflict)
        #expect(DatabaseFailure(stage: .beforeCommit, sqlState: "40001").verdict == .conflict)
        #expect(DatabaseFailure(stage: .beforeCommit, sqlState: "25006").verdict == .primaryMoved, "read-only: a standby")
        #expect(DatabaseFailure(stage: .beforeCommit, sqlState: "57P01").verdict == .primaryMoved)
        #expect(DatabaseFailure(stage: .beforeCommit, sqlState: "08006").verdict == .primaryMoved)
        #expect(DatabaseFailure(stage: .beforeCommit, connectionLost: true).verdict == .primaryMoved)
        #expect(DatabaseFailure(stage: .beforeCommit, timedOut: true).verdict == .primaryMoved)
        #expect(DatabaseFailure(stage: .beforeCommit, sqlState: "23505").verdict == .notCommitted)
        #expect(DatabaseFailure(stage: .beforeCommit).verdict == .notCommitted)
    }

    @Test func atCommitOnlyARollbackOrADeferredConstraintErrorProvesNothingWasCommitted() {
        #expect(DatabaseFailure(stage: .atCommit, sqlState: "40001").verdict == .notCommitted)
        #expect(DatabaseFailure(stage: .atCommit, sqlState: "23505").verdict == .notCommitted)
        // A backend terminated while it waited for the synchronous standby: the commit
        // record was already written (seen as phantoms in the kill-db-primary drill).
        #expect(DatabaseFailure(stage: .atCommit, sqlState: "57P01").verdict == .outcomeUnknown)
        #expect(DatabaseFailure(stage: .atCommit, sqlState: "XX000").verdict == .outcomeUnknown)
        #expect(DatabaseFailure(stage: .atCommit, sqlState: "40003").verdict == .outcomeUnknown, "statement completion unknown")
        #expect(DatabaseFailure(stage: .atCommit, connectionLost: true).verdict == .outcomeUnknown)
        #expect(DatabaseFailure(stage: .atCommit, timedOut: true).verdict == .outcomeUnknown)
        #expect(DatabaseFailure(stage: .atCommit, sqlState: "57P01", connectionLost: true).verdict == .outcomeUnknown)
    }
}
