import BrambleCore
import BrambleNet
import Logging
import ServiceLifecycle

/// The shell around `HAStateMachine`: every heartbeat interval it reads the pair from the
/// configuration database, has the node's health measured, feeds both to the machine,
/// runs the actions it answers with (one `run(_:)` switch), and writes this node's
/// heartbeat. Inputs from the rest of the node arrive through the `HAInbox`, one at a
/// time, so the machine never sees two things at once. On graceful shutdown it demotes
/// first (BES's order) and writes a last "stopped" heartbeat.
public actor HAController: Service {
    public struct Configuration: Sendable {
        public var pair: String
        public var node: String
        /// Where this node's API answers, for `bramble status` and `bramble failover`.
        public var apiURL: String
        public var heartbeatIntervalMs = 200
        public var leaseMs = 1_000
        /// A statement the database does not answer in this long counts as unreachable.
        public var databaseTimeoutMs = 500
        /// After demoting, do not take the lease back for this long (unless handed it).
        public var promotionHoldOffMs: UInt64 = 3_000
        public init(pair: String, node: String, apiURL: String) {
            self.pair = pair
            self.node = node
            self.apiURL = apiURL
        }
    }

    let configuration: Configuration
    let store: any PairStore
    let statements: PairStatements
    /// Promoted in this order, demoted in the reverse (see `LeaseFollower`).
    let followers: [any LeaseFollower]
    /// Returns once the delivery states the followers reported are recorded (bounded).
    let drained: @Sendable () async -> Void
    let health: any HealthSource
    let inbox: HAInbox
    let snapshot: HASnapshotBox
    /// Returns once the node has started (the database migrated); throws if it never will.
    let waitUntilStarted: @Sendable () async throws -> Void
    let clock: any NodeClock
    let metrics: NodeMetrics
    let logger: Logger
    private var machine: HAStateMachine
    private var pending = HeartbeatState()

    public init(configuration: Configuration, store: any PairStore, followers: [any LeaseFollower],
                drained: @escaping @Sendable () async -> Void, health: any HealthSource, inbox: HAInbox, snapshot: HASnapshotBox,
                waitUntilStarted: @escaping @Sendable () async throws -> Void = {}, clock: any NodeClock = SystemClock(),
                metrics: NodeMetrics, logger: Logger) {
        (self.configuration, self.store, self.followers, self.drained, self.health) = (configuration, store, followers, drained, health)
        (self.inbox, self.snapshot, self.waitUntilStarted, self.clock, self.metrics, self.logger) = (inbox, snapshot, waitUntilStarted, clock, metrics, logger)
        statements = PairStatements(store: store, pair: configuration.pair, node: configuration.node, leaseMs: configuration.leaseMs,
                                    timeoutMs: configuration.databaseTimeoutMs, clock: clock)
        var ha = HAStateMachine.Configuration(failoverThreshold: ConfigStore.Thresholds.defaults.failover,
                                              promotionThreshold: ConfigStore.Thresholds.defaults.promotion)
        (ha.staleAfterMs, ha.promotionHoldOffMs) = (UInt64(configuration.leaseMs), configuration.promotionHoldOffMs)
        machine = HAStateMachine(node: configuration.node, configuration: ha)
        metrics.leaseDuration(ms: configuration.leaseMs)
    }

    public func run() async throws {
        defer { inbox.close() }  // nothing waits for a manager that has stopped
        guard (try? await waitUntilStarted()) != nil else { return }
        let (inbox, clock, interval) = (self.inbox, self.clock, UInt64(configuration.heartbeatIntervalMs))
        await withDiscardingTaskGroup { group in
            group.addTask {
                while (try? await clock.sleep(ms: interval)) != nil { inbox.wake() }
            }
            inbox.wake()
            await withGracefulShutdownHandler {
                await withTaskCancellationHandler {
                    while let input = await inbox.next() { await handle(input) }
                } onCancel: { inbox.close() }
            } onGracefulShutdown: { inbox.beginShutdown() }
            group.cancelAll()
        }
    }

    private func handle(_ input: HAInbox.Input) async {
        switch input {
        case .tick: await heartbeat()
        case .failover(let target, let reply): reply.resume(returning: await failover(to: target))
        case .relayHolds(let epoch): await run(machine.relayReportedEpoch(epoch, nowMs: pending.databaseNow(clock)))
        case .fenced(let epoch): await run(machine.writeFenced(epoch: epoch, nowMs: pending.databaseNow(clock)))
        case .shutdown:
            await run(machine.shutdownRequested(nowMs: pending.databaseNow(clock)))
            try? await statements.writeHeartbeat(pending.heartbeat(configuration, role: .stopped, epoch: nil, score: 0))
            inbox.close()
        }
    }

    /// Read the pair, measure health, let the machine decide, write our heartbeat.
    private func heartbeat() async {
        let view: PairView?
        do {
            view = try await statements.readPair()
            pending.databaseReachable(view!, clock: clock, logger: logger)
            machine.reconfigure(pending.thresholds(machine.configuration, view!))
            if pending.heartbeats % 10 == 1, let counts = await statements.accountCounts() { health.accountsCounted(counts) }
        } catch {
            view = nil
            store.suspect(error)
            pending.databaseFailed(error, logger: logger)
        }
        let checks = health.evaluate(role: machine.role, databaseError: pending.databaseError)
        let (score, error, now) = (HealthCheck.score(checks), pending.databaseError, clock.nowMs())
        snapshot.update {
            ($0.score, $0.checks, $0.databaseError, $0.lastHeartbeatMs) = (score, checks, error, now)
            if let view {
                ($0.thresholds, $0.peer) = (view.thresholds, view.peer)
                $0.peerAgeMs = view.peer.map { Int64(view.nowMs) - Int64($0.writtenAtMs) }
            }
        }
        metrics.score(score)
        metrics.health(checks, failoverThreshold: machine.configuration.failoverThreshold, promotionThreshold: machine.configuration.promotionThreshold)
        health.report(to: metrics)
        await run(machine.observed(.init(nowMs: view?.nowMs ?? pending.databaseNow(clock), ownScore: score, databaseReachable: view != nil,
                                         databaseWritable: pending.lastWriteReached, lease: view?.lease, peer: view?.peer)))
        let beat = pending.heartbeat(configuration, role: machine.role.name, epoch: machine.role.servingEpoch, score: score, checks: checks)
        do {
            try await statements.writeHeartbeat(beat)
            pending.lastWriteReached = true
            let announced = (beat.requestsLease, score < machine.configuration.failoverThreshold)
            if let last = pending.lastAnnounced, last != announced { await statements.announceHeartbeat() }
            pending.lastAnnounced = announced
        } catch {
            pending.lastWriteReached = false
            if view != nil { logger.warning("writing heartbeat failed", metadata: ["error": "\(describe(error))"]) }
        }
    }

    /// Carries out what the machine decided; the only place its actions turn into I/O.
    private func run(_ actions: [HAStateMachine.Action]) async {
        let leaseMs = UInt64(configuration.leaseMs)
        for action in actions {
            switch action {
            case .takeLease(let expected, let reason):
                pending.promotionReason = reason
                let asked = clock.nowMs()
                let epoch = await statements.takeLease(expected: expected)
                if epoch != nil { snapshot.update { $0.leaseValidUntilMs = asked + leaseMs } }
                await run(machine.leaseTaken(epoch: epoch))
            case .promote(let epoch):
                let reason = pending.promotionReason ?? .leaseExpired
                logger.notice("promoting to primary", metadata: ["srp.epoch": "\(epoch)", "reason": "\(reason.rawValue)",
                                                                 "followers": "\(followers.map(\.followerName).joined(separator: ","))"])
                metrics.promoted()
                health.servingSince(clock.nowMs())
                for follower in followers { await follower.serve(epoch: epoch) }
                await statements.record(.init(node: configuration.node, kind: .promote, epoch: epoch, reason: reason.eventReason, detail: reason.rawValue))
            case .renewLease(let epoch):
                let (asked, started) = (clock.nowMs(), ContinuousClock.now)
                let (outcome, error) = await statements.renewLease(epoch: epoch)
                if let error {
                    logger.warning("lease renewal did not reach the database; serving degraded", metadata: ["error": "\(describe(error))", "srp.epoch": "\(epoch)"])
                } else {
                    metrics.leaseRenewed(ContinuousClock.now - started)
                }
                if outcome == .renewed { snapshot.update { $0.leaseValidUntilMs = asked + leaseMs } }
                await run(machine.leaseRenewal(outcome, nowMs: pending.databaseNow(clock)))
            case .demote(let epoch, let reason, let handoverTo):
                await demote(epoch: epoch, reason: reason, handoverTo: handoverTo)
            case .requestLease(let asking):
                pending.requestingLease = asking
                snapshot.update { $0.requestingLease = asking }
                logger.notice(asking ? "asking the primary to hand over the lease" : "no longer asking for the lease")
            }
        }
        let (role, epoch) = (machine.role.name, machine.role.servingEpoch)
        metrics.role(role, epoch: epoch)
        snapshot.update { ($0.role, $0.epoch) = (role, epoch) }
    }

    /// BES's order: the followers stop (the SRP link closes first), what devices
    /// acknowledged is recorded while the lease is still ours (else the next primary
    /// resends it and devices drop the repeats), the event, then the lease is released.
    private func demote(epoch: UInt64, reason: HAStateMachine.DemotionReason, handoverTo: String?) async {
        logger.notice("demoting to standby", metadata: ["srp.epoch": "\(epoch)", "reason": "\(reason.rawValue)", "handover.to": "\(handoverTo ?? "-")"])
        metrics.demoted()
        snapshot.update { $0.leaseValidUntilMs = 0 }
        for follower in followers.reversed() { await follower.stopServing(epoch: epoch) }
        _ = try? await statements.bounded { [drained] in await drained() }
        await statements.record(.demotion(node: configuration.node, epoch: epoch, reason: reason, handoverTo: handoverTo, checks: snapshot.value.checks))
        await statements.releaseLease(epoch: epoch, handoverTo: handoverTo)
    }

    private func failover(to target: String?) async -> HAInbox.FailoverOutcome {
        let s = snapshot.value
        let situation = FailoverPlan.Situation(pair: configuration.pair, node: configuration.node, role: machine.role.name, peer: s.peer,
                                               peerAgeMs: s.peerAgeMs, leaseMs: configuration.leaseMs, promotionThreshold: s.thresholds.promotion)
        switch FailoverPlan.check(situation, target: target) {
        case .failure(let refusal): return .refused(refusal)
        case .success(let standby):
            guard let epoch = machine.role.servingEpoch else { return .refused(.notPrimary(role: machine.role.name)) }
            logger.notice("operator requested failover", metadata: ["handover.to": "\(standby)"])
            await run(machine.operatorRequestedFailover(to: standby, nowMs: pending.databaseNow(clock)))
            return .handedOver(epoch: epoch, to: standby)
        }
    }
}
