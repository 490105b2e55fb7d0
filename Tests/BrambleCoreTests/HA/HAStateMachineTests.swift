import Testing

@testable import BrambleCore

/// One test per rule of DESIGN.md "High availability"; time is milliseconds on the
/// database clock, advanced by hand.
@Suite struct HAStateMachineTests {
    typealias HA = HAStateMachine
    static let config = HA.Configuration(failoverThreshold: 3, promotionThreshold: 3)

    func standby(_ name: String = "b") -> HA { HA(node: name, configuration: Self.config) }

    /// A machine that is primary at `epoch`.
    func primary(_ name: String = "a", epoch: UInt64 = 1) -> HA {
        var m = HA(node: name, configuration: Self.config)
        _ = m.observed(.init(nowMs: 0, ownScore: 5, lease: .init(holder: nil, epoch: epoch - 1, expiresAtMs: 0), peer: nil))
        _ = m.leaseTaken(epoch: epoch)
        return m
    }

    func lease(holder: String? = "a", epoch: UInt64 = 1, expires: UInt64 = 1_000, handoverTo: String? = nil) -> HA.Lease {
        .init(holder: holder, epoch: epoch, expiresAtMs: expires, handoverTo: handoverTo)
    }

    @Test func theStandbyPromotesOnAStalePrimaryHeartbeat() {
        var b = standby()
        let o = HA.Observation(nowMs: 1_100, ownScore: 5, lease: lease(expires: 1_200),
                               peer: .init(node: "a", score: 5, writtenAtMs: 0))
        #expect(b.observed(o) == [.takeLease(expectedEpoch: 1, reason: .peerStale)])
        #expect(b.leaseTaken(epoch: 2) == [.promote(epoch: 2)])
        #expect(b.role == .primary(epoch: 2))
    }

    @Test func theFirstHealthyNodeOfANewPairTakesTheLeaseAtEpochOne() {
        var a = standby("a")
        let o = HA.Observation(nowMs: 5_000, ownScore: 5, lease: nil, peer: nil)
        #expect(a.observed(o) == [.takeLease(expectedEpoch: 0, reason: .leaseExpired)], "no lease row yet: no primary ever")
        #expect(a.leaseTaken(epoch: 1) == [.promote(epoch: 1)])
    }

    @Test func afterADatabaseOutageTheStandbyGivesThePrimaryALeaseDurationToRenew() {
        var b = standby()
        let peer = HA.PeerHeartbeat(node: "a", score: 5, writtenAtMs: 0)
        _ = b.observed(.init(nowMs: 0, ownScore: 5, lease: lease(expires: 1_000), peer: peer))
        #expect(b.observed(.init(nowMs: 500, ownScore: 5, databaseReachable: false, lease: nil, peer: nil)) == [])
        // The database is back after a failover: the lease and heartbeat look dead, but the
        // primary kept serving and has not had its chance to renew yet.
        #expect(b.observed(.init(nowMs: 8_000, ownScore: 5, lease: lease(expires: 1_000), peer: peer)) == [])
        #expect(b.observed(.init(nowMs: 8_500, ownScore: 5, lease: lease(expires: 1_000), peer: peer)) == [])
        // It did not renew within a lease duration: it is gone.
        #expect(b.observed(.init(nowMs: 9_000, ownScore: 5, lease: lease(expires: 1_000), peer: peer))
                == [.takeLease(expectedEpoch: 1, reason: .leaseExpired)])
    }

    @Test func afterItsWritesStalledTheStandbyGivesThePrimaryALeaseDurationToRenew() {
        var b = standby()
        let peer = HA.PeerHeartbeat(node: "a", score: 5, writtenAtMs: 0)
        _ = b.observed(.init(nowMs: 0, ownScore: 5, lease: lease(expires: 1_000), peer: peer))
        // Reads work but the standby's own heartbeat write did not get through (a
        // synchronous standby catching up stalls every commit, the primary's renewals too).
        #expect(b.observed(.init(nowMs: 1_200, ownScore: 5, databaseWritable: false, lease: lease(expires: 1_000), peer: peer)) == [])
        // Writes work again: the unrenewed lease is no sign of a dead primary yet.
        #expect(b.observed(.init(nowMs: 1_400, ownScore: 5, lease: lease(expires: 1_000), peer: peer)) == [])
        #expect(b.observed(.init(nowMs: 2_300, ownScore: 5, lease: lease(expires: 1_000), peer: peer)) == [])
        #expect(b.observed(.init(nowMs: 2_400, ownScore: 5, lease: lease(expires: 1_000), peer: peer))
                == [.takeLease(expectedEpoch: 1, reason: .leaseExpired)])
    }

    @Test func theStandbyPromotesOnAnExpiredLease() {
        var b = standby()
        let o = HA.Observation(nowMs: 1_000, ownScore: 5, lease: lease(expires: 1_000),
                               peer: .init(node: "a", score: 5, writtenAtMs: 950))
        #expect(b.observed(o) == [.takeLease(expectedEpoch: 1, reason: .leaseExpired)])
    }

    @Test func theStandbyPromotesOnAHandover() {
        var b = standby()
        let o = HA.Observation(nowMs: 100, ownScore: 5, lease: lease(holder: nil, handoverTo: "b"),
                               peer: .init(node: "a", score: 5, writtenAtMs: 90))
        #expect(b.observed(o) == [.takeLease(expectedEpoch: 1, reason: .handover)])
    }

    @Test func theStandbyPromotesOnAPrimaryScoreBelowTheFailoverThreshold() {
        // BES's exchange: the standby asks, the sick primary demotes and hands over,
        // the standby takes the lease.
        var a = primary()
        var b = standby()
        let t = HA.Observation(nowMs: 100, ownScore: 5, lease: lease(), peer: .init(node: "a", score: 2, writtenAtMs: 100))
        #expect(b.observed(t) == [.requestLease(true)])
        let seenByA = HA.Observation(nowMs: 120, ownScore: 2, lease: lease(),
                                     peer: .init(node: "b", score: 5, writtenAtMs: 110, requestsLease: true))
        #expect(a.observed(seenByA) == [.demote(epoch: 1, reason: .lowScoreAndPeerRequest, handoverTo: "b")])
        let after = HA.Observation(nowMs: 140, ownScore: 5, lease: lease(holder: nil, handoverTo: "b"),
                                   peer: .init(node: "a", score: 2, writtenAtMs: 130))
        #expect(b.observed(after) == [.takeLease(expectedEpoch: 1, reason: .handover)])
        #expect(b.leaseTaken(epoch: 2) == [.promote(epoch: 2), .requestLease(false)])
    }

    @Test func theStandbyDoesNotPromoteWhileItsOwnScoreIsBelowThePromotionThreshold() {
        var b = standby()
        for o in [
            HA.Observation(nowMs: 5_000, ownScore: 2, lease: lease(expires: 1_000), peer: .init(node: "a", score: 0, writtenAtMs: 0)),
            HA.Observation(nowMs: 100, ownScore: 2, lease: lease(holder: nil, handoverTo: "b"), peer: nil),
        ] {
            #expect(b.observed(o).isEmpty)
            #expect(b.role == .standby)
        }
    }

    @Test func aHealthyPairStaysAsItIs() {
        var a = primary()
        var b = standby()
        let o = HA.Observation(nowMs: 500, ownScore: 5, lease: lease(), peer: .init(node: "a", score: 5, writtenAtMs: 450))
        #expect(b.observed(o).isEmpty)
        let p = HA.Observation(nowMs: 500, ownScore: 5, lease: lease(), peer: .init(node: "b", score: 5, writtenAtMs: 450))
        #expect(a.observed(p) == [.renewLease(epoch: 1)])
    }

    @Test func losingTheRaceForTheLeaseLeavesTheNodeStandby() {
        var b = standby()
        _ = b.observed(.init(nowMs: 2_000, ownScore: 5, lease: lease(expires: 1_000), peer: nil))
        #expect(b.leaseTaken(epoch: nil).isEmpty)
        #expect(b.role == .standby)
    }

    @Test func thePrimaryDemotesOnItsLowScorePlusTheStandbysRequest() {
        var a = primary()
        let lowOnly = HA.Observation(nowMs: 100, ownScore: 2, lease: lease(), peer: .init(node: "b", score: 5, writtenAtMs: 90))
        #expect(a.observed(lowOnly) == [.renewLease(epoch: 1)], "a low score alone is not enough")
        let requested = HA.Observation(nowMs: 200, ownScore: 2, lease: lease(),
                                       peer: .init(node: "b", score: 5, writtenAtMs: 190, requestsLease: true))
        #expect(a.observed(requested) == [.demote(epoch: 1, reason: .lowScoreAndPeerRequest, handoverTo: "b")])
        #expect(a.role == .standby)
    }

    @Test func thePrimaryDemotesOnAHigherEpochReportedByTheRelay() {
        var a = primary(epoch: 4)
        #expect(a.relayReportedEpoch(4, nowMs: 0).isEmpty)
        #expect(a.relayReportedEpoch(5, nowMs: 0) == [.demote(epoch: 4, reason: .relayReportedHigherEpoch, handoverTo: nil)])
    }

    @Test func thePrimaryDemotesOnLosingTheLease() {
        var a = primary()
        #expect(a.leaseRenewal(.lost, nowMs: 0) == [.demote(epoch: 1, reason: .leaseLost, handoverTo: nil)])
        var a2 = primary()
        let taken = HA.Observation(nowMs: 0, ownScore: 5, lease: lease(holder: "b", epoch: 2), peer: nil)
        #expect(a2.observed(taken) == [.demote(epoch: 1, reason: .leaseLost, handoverTo: nil)])
    }

    @Test func thePrimaryDemotesOnAnOperatorsRequest() {
        var a = primary()
        #expect(a.operatorRequestedFailover(to: "b", nowMs: 0) == [.demote(epoch: 1, reason: .operatorRequest, handoverTo: "b")])
        var s = standby()
        #expect(s.operatorRequestedFailover(to: nil, nowMs: 0).isEmpty)
    }

    @Test func thePrimaryDemotesOnShutdown() {
        var a = primary()
        #expect(a.shutdownRequested(nowMs: 0) == [.demote(epoch: 1, reason: .shutdown, handoverTo: nil)])
        #expect(a.role == .stopped)
        #expect(a.observed(.init(nowMs: 9_999, ownScore: 5, lease: lease(holder: nil, expires: 0), peer: nil)).isEmpty)
    }

    @Test func aPrimaryThatLosesOnlyTheDatabaseKeepsServingDegraded() {
        var a = primary()
        #expect(a.leaseRenewal(.unreachable, nowMs: 100).isEmpty)
        #expect(a.role == .primaryDegraded(epoch: 1))
        #expect(a.observed(.init(nowMs: 300, ownScore: 5, databaseReachable: false, lease: nil, peer: nil)) == [.renewLease(epoch: 1)])
        #expect(a.leaseRenewal(.renewed, nowMs: 400).isEmpty)
        #expect(a.role == .primary(epoch: 1))
    }

    @Test func aStandbyThatCannotReadTheDatabaseDoesNotPromote() {
        var b = standby()
        #expect(b.observed(.init(nowMs: 9_000, ownScore: 5, databaseReachable: false, lease: nil, peer: nil)).isEmpty)
    }

    @Test func aJustDemotedNodeLeavesAReleasedLeaseToItsPeerForAWhile() {
        var a = primary()
        _ = a.operatorRequestedFailover(to: nil, nowMs: 1_000)
        let released = HA.Observation(nowMs: 1_100, ownScore: 5, lease: lease(holder: nil, expires: 1_000),
                                      peer: .init(node: "b", score: 5, writtenAtMs: 1_050))
        #expect(a.observed(released).isEmpty, "hold-off")
        var later = released
        later.nowMs = 1_000 + Self.config.promotionHoldOffMs
        later.peer?.writtenAtMs = later.nowMs - 10
        #expect(a.observed(later) == [.takeLease(expectedEpoch: 1, reason: .leaseExpired)])
    }

    @Test func aFencedWriteAtTheServingEpochDemotesAndAnOlderOneIsOldNews() {
        var a = primary(epoch: 3)
        #expect(a.writeFenced(epoch: 2, nowMs: 10) == [], "a batch from an earlier term")
        #expect(a.writeFenced(epoch: 3, nowMs: 10) == [.demote(epoch: 3, reason: .leaseLost, handoverTo: nil)])
        #expect(a.role == .standby)
        #expect(a.writeFenced(epoch: 3, nowMs: 20) == [], "already demoted")
    }
}
