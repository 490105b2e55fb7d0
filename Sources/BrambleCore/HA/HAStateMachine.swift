/// The HA manager of one node, as a pure state machine (DESIGN, "High availability").
///
/// The shell reads the pair's state from the configuration database every heartbeat
/// interval and feeds it in as an `Observation` (all times on the database clock, in
/// milliseconds); it also reports what happens outside (the relay's verdicts, the
/// operator, shutdown, the outcome of the lease statements). The machine answers with
/// actions; it never does I/O and never reads a clock.
///
/// Safety does not depend on these rules being timely: the lease's epoch fences every
/// write and the relay refuses lower epochs. The rules only decide how fast a failover
/// starts, and keep a healthy pair from flapping.
public struct HAStateMachine: Sendable {
    public struct Configuration: Sendable, Equatable {
        /// Position in the parameter list the primary's score must reach to keep serving.
        public var failoverThreshold: Int
        /// Position the standby's own score must reach before it may promote.
        public var promotionThreshold: Int
        /// A heartbeat older than this is stale (DESIGN default: the lease duration).
        public var staleAfterMs: UInt64 = 1_000
        /// After a demotion, do not promote again for this long unless the peer is stale
        /// or hands the lease over: hysteresis against a flapping pair.
        public var promotionHoldOffMs: UInt64 = 3_000

        public init(failoverThreshold: Int, promotionThreshold: Int) {
            self.failoverThreshold = failoverThreshold
            self.promotionThreshold = promotionThreshold
        }
    }

    /// The pair's lease row.
    public struct Lease: Sendable, Equatable {
        public var holder: String?
        public var epoch: UInt64
        public var expiresAtMs: UInt64
        /// Set by a primary handing over cooperatively (planned switchover).
        public var handoverTo: String?
        public init(holder: String?, epoch: UInt64, expiresAtMs: UInt64, handoverTo: String? = nil) {
            self.holder = holder
            self.epoch = epoch
            self.expiresAtMs = expiresAtMs
            self.handoverTo = handoverTo
        }
    }

    /// The other node's heartbeat row.
    public struct PeerHeartbeat: Sendable, Equatable {
        public var node: String
        public var score: Int
        public var writtenAtMs: UInt64
        /// BES's demotion request: the standby asks the primary to hand over.
        public var requestsLease: Bool
        public init(node: String, score: Int, writtenAtMs: UInt64, requestsLease: Bool = false) {
            self.node = node
            self.score = score
            self.writtenAtMs = writtenAtMs
            self.requestsLease = requestsLease
        }
    }

    /// One heartbeat's view of the pair. `lease` and `peer` are nil when the database
    /// did not answer (`databaseReachable` false) or the row does not exist yet.
    /// `databaseWritable` is false when this node's last write (its heartbeat) did not
    /// reach the database: reads can work while writes stall, e.g. while a synchronous
    /// standby catches up, and the primary's renewals stall with them.
    public struct Observation: Sendable, Equatable {
        public var nowMs: UInt64
        public var ownScore: Int
        public var databaseReachable: Bool
        public var databaseWritable: Bool
        public var lease: Lease?
        public var peer: PeerHeartbeat?
        public init(nowMs: UInt64, ownScore: Int, databaseReachable: Bool = true, databaseWritable: Bool = true,
                    lease: Lease?, peer: PeerHeartbeat?) {
            self.nowMs = nowMs
            self.ownScore = ownScore
            self.databaseReachable = databaseReachable
            self.databaseWritable = databaseWritable
            self.lease = lease
            self.peer = peer
        }
    }

    public enum Role: Sendable, Equatable {
        case standby
        /// Asked the database for the lease at `expectedEpoch`; awaiting the outcome.
        case promoting(expectedEpoch: UInt64)
        case primary(epoch: UInt64)
        /// Serving, but the last renewal could not reach the database.
        case primaryDegraded(epoch: UInt64)
        case stopped
    }

    public enum PromotionReason: String, Sendable, Equatable {
        case peerStale = "primary heartbeat stale"
        case peerScoreLow = "primary score below failover threshold"
        case leaseExpired = "lease expired"
        case handover = "lease handed over"
    }

    public enum DemotionReason: String, Sendable, Equatable {
        case lowScoreAndPeerRequest = "own score below failover threshold and the standby asked for the lease"
        case relayReportedHigherEpoch = "relay reported a higher epoch"
        case leaseLost = "the lease is no longer ours"
        case operatorRequest = "operator requested failover"
        case shutdown = "shutting down"
    }

    public enum Action: Sendable, Equatable {
        /// Conditional UPDATE of the lease: succeeds only if its epoch is still
        /// `expectedEpoch`; the new epoch is `expectedEpoch + 1`.
        case takeLease(expectedEpoch: UInt64, reason: PromotionReason)
        /// Become primary at `epoch`: register with the relay, load keys, resend every
        /// unacknowledged item, resume mailboxes, re-log sessions.
        case promote(epoch: UInt64)
        /// Extend the lease we hold at `epoch`.
        case renewLease(epoch: UInt64)
        /// Stop serving, in BES's order: close the SRP link, stop message flow, turn
        /// active connections into standby ones, record the event, then release the
        /// lease (handing it to `handoverTo` when set).
        case demote(epoch: UInt64, reason: DemotionReason, handoverTo: String?)
        /// Ask the primary to hand over (set `requests_lease` in our heartbeat).
        case requestLease(Bool)
    }

    public let node: String
    public private(set) var configuration: Configuration
    public private(set) var role: Role = .standby
    private var lastDemotionMs: UInt64?
    private var requestingLease = false
    /// Since when (database clock) the database has answered without a gap; nil while not.
    /// A machine starts as if it always had (only an observed outage makes it wait).
    private var databaseReachableSinceMs: UInt64? = 0

    public init(node: String, configuration: Configuration) {
        self.node = node
        self.configuration = configuration
    }

    public mutating func reconfigure(_ configuration: Configuration) { self.configuration = configuration }

    // MARK: Events

    /// A heartbeat interval passed and the shell read the pair's state.
    public mutating func observed(_ o: Observation) -> [Action] {
        if o.databaseReachable && o.databaseWritable {
            if databaseReachableSinceMs == nil { databaseReachableSinceMs = o.nowMs }
        } else {
            databaseReachableSinceMs = nil
        }
        switch role {
        case .stopped, .promoting:
            return []
        case .standby:
            return standbyObserved(o)
        case .primary(let epoch), .primaryDegraded(let epoch):
            return primaryObserved(o, epoch: epoch)
        }
    }

    /// The outcome of `takeLease`: the new epoch, or nil if another node won.
    public mutating func leaseTaken(epoch: UInt64?) -> [Action] {
        guard case .promoting(let expected) = role else { return [] }
        guard let epoch, epoch == expected + 1 else {
            role = .standby
            return []
        }
        role = .primary(epoch: epoch)
        var actions: [Action] = [.promote(epoch: epoch)]
        if requestingLease { requestingLease = false; actions.append(.requestLease(false)) }
        return actions
    }

    /// The outcome of `renewLease`: renewed, lost (the epoch moved on), or unknown
    /// (the database did not answer).
    public enum RenewalOutcome: Sendable { case renewed, lost, unreachable }

    public mutating func leaseRenewal(_ outcome: RenewalOutcome, nowMs: UInt64) -> [Action] {
        switch (role, outcome) {
        case (.primary(let e), .renewed), (.primaryDegraded(let e), .renewed):
            role = .primary(epoch: e)
            return []
        case (.primary(let e), .unreachable), (.primaryDegraded(let e), .unreachable):
            // Keep serving what we can: no other node can promote without the database
            // either, and if one does, the relay's fencing stops us.
            role = .primaryDegraded(epoch: e)
            return []
        case (.primary(let e), .lost), (.primaryDegraded(let e), .lost):
            return demote(epoch: e, reason: .leaseLost, handoverTo: nil, nowMs: nowMs)
        case (.standby, _), (.promoting, _), (.stopped, _):
            return []
        }
    }

    /// The relay refused us or displaced us: a higher epoch is registered for our SRP ID.
    public mutating func relayReportedEpoch(_ relayEpoch: UInt64, nowMs: UInt64) -> [Action] {
        switch role {
        case .primary(let e) where relayEpoch > e, .primaryDegraded(let e) where relayEpoch > e:
            return demote(epoch: e, reason: .relayReportedHigherEpoch, handoverTo: nil, nowMs: nowMs)
        case .primary, .primaryDegraded, .standby, .promoting, .stopped:
            return []
        }
    }

    /// A fenced write: the database refused a write under `epoch` because the lease has
    /// moved on. Only news while we still serve at that epoch.
    public mutating func writeFenced(epoch: UInt64, nowMs: UInt64) -> [Action] {
        switch role {
        case .primary(let e) where e == epoch, .primaryDegraded(let e) where e == epoch:
            return demote(epoch: e, reason: .leaseLost, handoverTo: nil, nowMs: nowMs)
        case .primary, .primaryDegraded, .standby, .promoting, .stopped:
            return []
        }
    }

    /// `bramble failover [--to NODE]`: a planned switchover.
    public mutating func operatorRequestedFailover(to target: String?, nowMs: UInt64) -> [Action] {
        switch role {
        case .primary(let e), .primaryDegraded(let e):
            return demote(epoch: e, reason: .operatorRequest, handoverTo: target, nowMs: nowMs)
        case .standby, .promoting, .stopped:
            return []
        }
    }

    public mutating func shutdownRequested(nowMs: UInt64) -> [Action] {
        defer { role = .stopped }
        switch role {
        case .primary(let e), .primaryDegraded(let e):
            return demote(epoch: e, reason: .shutdown, handoverTo: nil, nowMs: nowMs)
        case .standby, .promoting, .stopped:
            return []
        }
    }

    // MARK: Rules

    private mutating func standbyObserved(_ o: Observation) -> [Action] {
        guard o.databaseReachable else { return [] }
        // A pair whose lease row does not exist yet has never had a primary.
        let lease = o.lease ?? Lease(holder: nil, epoch: 0, expiresAtMs: 0)
        guard o.ownScore >= configuration.promotionThreshold else {
            return setRequesting(false)
        }
        let reason: PromotionReason?
        if lease.handoverTo == node {
            reason = .handover
        } else if lease.holder == nil || o.nowMs >= lease.expiresAtMs {
            reason = .leaseExpired
        } else if let peer = o.peer, o.nowMs > peer.writtenAtMs &+ configuration.staleAfterMs {
            reason = .peerStale
        } else if let peer = o.peer, peer.score < configuration.failoverThreshold {
            // BES: the standby asks; the primary demotes itself on its low score and the
            // request. If it cannot (it is too sick to act), the lease runs out.
            return setRequesting(true)
        } else {
            reason = nil
        }
        guard let reason else { return setRequesting(false) }
        // After the database was away or refused writes (a database failover, a stall), a
        // primary that kept serving renews as soon as it can write again; give it a
        // lease's time to, instead of reading its unrenewed lease as a dead primary.
        let databaseSettled = databaseReachableSinceMs.map { o.nowMs >= $0 &+ configuration.staleAfterMs } ?? false
        if lease.holder != nil, reason != .handover, !databaseSettled { return [] }
        // A node that just demoted leaves the lease to its peer for a while, unless the
        // lease was handed to it or the peer has gone silent.
        let heldOff = lastDemotionMs.map { o.nowMs < $0 &+ configuration.promotionHoldOffMs } ?? false
        if heldOff && reason != .handover && reason != .peerStale { return [] }
        role = .promoting(expectedEpoch: lease.epoch)
        return [.takeLease(expectedEpoch: lease.epoch, reason: reason)]
    }

    private mutating func primaryObserved(_ o: Observation, epoch: UInt64) -> [Action] {
        if let lease = o.lease, lease.epoch != epoch || (lease.holder != nil && lease.holder != node) {
            return demote(epoch: epoch, reason: .leaseLost, handoverTo: nil, nowMs: o.nowMs)
        }
        if o.ownScore < configuration.failoverThreshold, let peer = o.peer, peer.requestsLease,
           o.nowMs <= peer.writtenAtMs &+ configuration.staleAfterMs {
            return demote(epoch: epoch, reason: .lowScoreAndPeerRequest, handoverTo: peer.node, nowMs: o.nowMs)
        }
        return [.renewLease(epoch: epoch)]
    }

    private mutating func demote(epoch: UInt64, reason: DemotionReason, handoverTo: String?, nowMs: UInt64) -> [Action] {
        role = .standby
        lastDemotionMs = nowMs
        return [.demote(epoch: epoch, reason: reason, handoverTo: handoverTo)]
    }

    private mutating func setRequesting(_ value: Bool) -> [Action] {
        guard requestingLease != value else { return [] }
        requestingLease = value
        return [.requestLease(value)]
    }
}
