import BrambleCore
import BrambleNet
import Foundation
import Logging
import NIOConcurrencyHelpers

/// The thin shell around `HAStateMachine`: every heartbeat interval it reads the pair from
/// the configuration database, measures this node's health parameters, feeds both to the
/// machine, runs the actions it answers with, and writes this node's heartbeat.
///
/// Everything that changes the node's role happens on one task, one input at a time
/// (heartbeats, the operator's failover, the relay's verdicts, fenced writes, shutdown),
/// so the machine never sees two things at once.
public actor HAController {
    public struct Configuration: Sendable {
        public var pair: String
        public var node: String
        /// Where this node's API answers, for `bramble status` and `bramble failover`.
        public var apiURL: String
        public var heartbeatIntervalMs = 200
        public var leaseMs = 1_000
        /// How long the SRP link may be registering or reconnecting, while the relay's end
        /// answers (closes, refuses), before the wireless network parameter counts as
        /// unhealthy: a relay restart is not a failover. A relay gone silent or unreachable
        /// counts at once: this node is cut off, and its standby may not be. A lockout of
        /// the SRP ID never counts: the standby would be locked out as well.
        public var linkGraceMs: UInt64 = 1_500
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

    static let roleNames = ["standby", "promoting", "primary", "primary_degraded", "stopped"]

    /// What `/health`, `/primary` and `bramble status` read, without waiting for the loop.
    public struct Snapshot: Sendable {
        public var role = "standby"
        public var epoch: UInt64?
        public var score = 0
        public var checks: [HealthCheck] = []
        public var thresholds = ConfigStore.Thresholds.defaults
        public var databaseError: String? = "not checked yet"
        /// Monotonic ms until which the lease we hold is certainly valid.
        public var leaseValidUntilMs: UInt64 = 0
        public var peer: HAStateMachine.PeerHeartbeat?
        public var peerAgeMs: Int64?
        public var requestingLease = false
        public var relayReachable = false
        public var relayDetail = "not probed yet"

        public var servesWithValidLease: Bool { role == "primary" && Monotonic.nowMs() < leaseValidUntilMs }
    }

    public enum FailoverOutcome: Sendable, Equatable {
        case handedOver(epoch: UInt64, to: String?)
        case notPrimary(role: String)
        case refused(String)
    }

    enum Input: Sendable {
        case tick
        case failover(to: String?, reply: CheckedContinuation<FailoverOutcome, Never>)
        case relayHolds(UInt64)
        case fenced(UInt64)
        case shutdown(reply: CheckedContinuation<Void, Never>)
    }

    let configuration: Configuration
    let store: ConfigStore
    let dispatcher: Dispatcher
    let router: SRPRouter
    let link: SRPRouter.Status
    let metrics: NodeMetrics
    let logger: Logger

    private var machine: HAStateMachine
    private let inputs: AsyncStream<Input>
    private let submit: AsyncStream<Input>.Continuation
    private let tickQueued = NIOLockedValueBox(false)
    private let snapshotBox = NIOLockedValueBox(Snapshot())

    private var routerTask: Task<Void, Never>?
    private var promotionReason = ""
    private var servingSinceMs: UInt64 = 0
    private var needsLoad = false
    private var requestingLease = false
    private var lastDatabaseNow: (dbMs: UInt64, monoMs: UInt64) = (0, 0)
    private var accounts: (users: Int, activeDevices: Int)?
    private var heartbeats = 0
    private var databaseFailures = 0
    /// Whether this node's last heartbeat write reached the database (see Observation).
    private var lastHeartbeatWritten = true
    /// What the peer acts on in the last heartbeat written: whether we ask for the lease,
    /// and whether our score is below the failover threshold. A change is announced.
    private var lastAnnounced: (requestsLease: Bool, belowFailover: Bool)?

    public init(configuration: Configuration, store: ConfigStore, dispatcher: Dispatcher, router: SRPRouter,
                link: SRPRouter.Status, metrics: NodeMetrics, logger: Logger) {
        self.configuration = configuration
        self.store = store
        self.dispatcher = dispatcher
        self.router = router
        self.link = link
        self.metrics = metrics
        self.logger = logger
        var ha = HAStateMachine.Configuration(failoverThreshold: ConfigStore.Thresholds.defaults.failover,
                                              promotionThreshold: ConfigStore.Thresholds.defaults.promotion)
        ha.staleAfterMs = UInt64(configuration.leaseMs)
        ha.promotionHoldOffMs = configuration.promotionHoldOffMs
        machine = HAStateMachine(node: configuration.node, configuration: ha)
        (inputs, submit) = AsyncStream.makeStream(of: Input.self)
        metrics.setRole("standby")
    }

    // MARK: What other parts of the node call (from any task)

    public nonisolated var snapshot: Snapshot { snapshotBox.withLockedValue { $0 } }

    /// Run a heartbeat now (the lease changed hands, as a notification said).
    public nonisolated func wake() {
        let queue = tickQueued.withLockedValue { queued in
            defer { queued = true }
            return !queued
        }
        if queue { submit.yield(.tick) }
    }

    /// `bramble failover [--to NODE]`.
    public nonisolated func requestFailover(to target: String?) async -> FailoverOutcome {
        await withCheckedContinuation { submit.yield(.failover(to: target, reply: $0)) }
    }

    /// A write under `epoch` was refused: the lease has moved on.
    public nonisolated func reportFenced(epoch: UInt64) { submit.yield(.fenced(epoch)) }

    /// Demotes (closing the SRP link first and releasing the lease) and stops the loop.
    public nonisolated func shutdown() async {
        await withCheckedContinuation { submit.yield(.shutdown(reply: $0)) }
    }

    // MARK: The loop

    public func run() async {
        await withTaskGroup(of: Void.self) { tasks in
            let interval = configuration.heartbeatIntervalMs
            tasks.addTask { [weak self] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(interval))
                    self?.wake()
                }
            }
            tasks.addTask { [weak self] in await self?.probeRelay() }
            wake()
            for await input in inputs {
                switch input {
                case .tick:
                    tickQueued.withLockedValue { $0 = false }
                    await heartbeat()
                case .failover(let target, let reply):
                    reply.resume(returning: await failover(to: target))
                case .relayHolds(let epoch):
                    await perform(machine.relayReportedEpoch(epoch, nowMs: databaseNow()))
                case .fenced(let epoch):
                    if machine.role == .primary(epoch: epoch) || machine.role == .primaryDegraded(epoch: epoch) {
                        await perform(machine.leaseRenewal(.lost, nowMs: databaseNow()))
                    }
                case .shutdown(let reply):
                    await perform(machine.shutdownRequested(nowMs: databaseNow()))
                    publish { $0.role = "stopped"; $0.epoch = nil }
                    try? await withDeadline { [store, configuration] in
                        try await store.writeHeartbeat(pair: configuration.pair, node: configuration.node, role: "stopped",
                                                       epoch: nil, score: 0, requestsLease: false, apiURL: configuration.apiURL)
                    }
                    reply.resume()
                    submit.finish()
                }
            }
            tasks.cancelAll()
        }
    }

    private func heartbeat() async {
        heartbeats += 1
        var view: ConfigStore.PairView?
        var databaseError: String?
        do {
            view = try await withDeadline { [store, configuration] in try await store.readPair(configuration.pair, node: configuration.node) }
        } catch {
            databaseError = Self.describe(error)
            store.database.suspect(error)
            databaseFailures += 1
            if databaseFailures == 1 || databaseFailures % 25 == 0 {
                logger.warning("heartbeat cannot read the pair from the configuration database",
                               metadata: ["error": "\(databaseError!)", "failures": "\(databaseFailures)"])
            }
        }
        if view != nil, databaseFailures > 0 {
            logger.notice("configuration database reachable again", metadata: ["failures": "\(databaseFailures)"])
            databaseFailures = 0
        }
        if let view {
            lastDatabaseNow = (view.nowMs, Monotonic.nowMs())
            var ha = machine.configuration
            ha.failoverThreshold = view.thresholds.failover
            ha.promotionThreshold = view.thresholds.promotion
            machine.reconfigure(ha)
            if heartbeats % 10 == 1 { await refreshAccounts() }
        }
        let checks = evaluateHealth(databaseError: databaseError)
        let score = HealthCheck.score(checks)
        metrics.score.set(Int64(score))
        let observation = HAStateMachine.Observation(nowMs: view?.nowMs ?? databaseNow(), ownScore: score,
                                                     databaseReachable: view != nil, databaseWritable: lastHeartbeatWritten,
                                                     lease: view?.lease, peer: view?.peer)
        await perform(machine.observed(observation))
        if needsLoad, case .primary(let epoch) = machine.role { await loadOpenItems(epoch: epoch) }

        let (observed, error) = (view, databaseError)
        publish {
            $0.score = score
            $0.checks = checks
            $0.databaseError = error
            if let view = observed {
                $0.thresholds = view.thresholds
                $0.peer = view.peer
                $0.peerAgeMs = view.peer.map { Int64(view.nowMs) - Int64($0.writtenAtMs) }
            }
        }
        let parameters = (try? String(decoding: JSONEncoder().encode(checks), as: UTF8.self)) ?? "[]"
        let (role, epoch) = (roleName, servingEpoch)
        do {
            try await withDeadline { [store, configuration, requestingLease] in
                try await store.writeHeartbeat(pair: configuration.pair, node: configuration.node, role: role, epoch: epoch,
                                               score: score, requestsLease: requestingLease, apiURL: configuration.apiURL,
                                               parameters: parameters)
            }
            lastHeartbeatWritten = true
            let announced = (requestsLease: requestingLease, belowFailover: score < machine.configuration.failoverThreshold)
            if let last = lastAnnounced, last != announced {
                try? await withDeadline { [store, configuration] in try await store.announceHeartbeat(pair: configuration.pair) }
            }
            lastAnnounced = announced
        } catch {
            lastHeartbeatWritten = false
            if view != nil { logger.warning("writing heartbeat failed", metadata: ["error": "\(Self.describe(error))"]) }
        }
    }

    private func perform(_ actions: [HAStateMachine.Action]) async {
        for action in actions {
            switch action {
            case .takeLease(let expected, let reason):
                promotionReason = reason.rawValue
                let asked = Monotonic.nowMs()
                let epoch = try? await withDeadline { [store, configuration] in
                    try await store.takeLease(configuration.pair, node: configuration.node, expectedEpoch: expected,
                                              durationMs: configuration.leaseMs)
                }
                let validUntil = asked + UInt64(configuration.leaseMs)
                if (epoch ?? nil) != nil { publish { $0.leaseValidUntilMs = validUntil } }
                await perform(machine.leaseTaken(epoch: epoch ?? nil))
            case .promote(let epoch):
                await promote(epoch: epoch)
            case .renewLease(let epoch):
                let asked = Monotonic.nowMs()
                let started = ContinuousClock.now
                let outcome: HAStateMachine.RenewalOutcome
                do {
                    let renewed = try await withDeadline { [store, configuration] in
                        try await store.renewLease(configuration.pair, node: configuration.node, epoch: epoch,
                                                   durationMs: configuration.leaseMs)
                    }
                    metrics.leaseRenewal.record(ContinuousClock.now - started)
                    outcome = renewed ? .renewed : .lost
                } catch {
                    outcome = .unreachable
                    logger.warning("lease renewal did not reach the database; serving degraded",
                                   metadata: ["error": "\(Self.describe(error))", "srp.epoch": "\(epoch)"])
                }
                let validUntil = asked + UInt64(configuration.leaseMs)
                if outcome == .renewed { publish { $0.leaseValidUntilMs = validUntil } }
                await perform(machine.leaseRenewal(outcome, nowMs: databaseNow()))
            case .demote(let epoch, let reason, let handoverTo):
                await demote(epoch: epoch, reason: reason, handoverTo: handoverTo)
            case .requestLease(let asking):
                requestingLease = asking
                publish { $0.requestingLease = asking }
                logger.notice(asking ? "asking the primary to hand over the lease" : "no longer asking for the lease",
                              metadata: ["node": "\(configuration.node)"])
            }
        }
        publishRole()
    }

    /// BES's promotion, without its cold start: register the SRP ID at the new epoch (the
    /// relay then routes every PIN to us and displaces the old link), take over the open
    /// items, and resend every unacknowledged one when the link is up.
    private func promote(epoch: UInt64) async {
        logger.notice("promoting to primary", metadata: ["srp.epoch": "\(epoch)", "reason": "\(promotionReason)"])
        metrics.promotions.increment()
        servingSinceMs = Monotonic.nowMs()
        await dispatcher.startServing(epoch: epoch)
        let (router, submit) = (self.router, self.submit)
        routerTask = Task {
            await router.run(epoch: epoch) { report in
                switch report {
                case .relayHolds(let held): submit.yield(.relayHolds(held))
                case .linkLost: self.wake()  // a heartbeat now publishes the lower score
                }
            }
        }
        needsLoad = true
        await loadOpenItems(epoch: epoch)
        let detail = promotionReason
        try? await withDeadline { [store, configuration] in
            try await store.recordEvent(node: configuration.node, kind: PairEvent.promotion, epoch: epoch, detail: detail)
        }
    }

    private func loadOpenItems(epoch: UInt64) async {
        do {
            let open = try await withDeadline(ms: 10 * configuration.databaseTimeoutMs) { [store] in try await store.openItems() }
            await dispatcher.load(items: open.items, keys: open.keys, epoch: epoch)
            needsLoad = false
        } catch {
            logger.warning("loading the outbound queue failed; retrying next heartbeat", metadata: ["error": "\(Self.describe(error))"])
        }
    }

    /// BES's order: close the SRP link, stop message flow, record the event, release the lease.
    private func demote(epoch: UInt64, reason: HAStateMachine.DemotionReason, handoverTo: String?) async {
        logger.notice("demoting to standby", metadata: [
            "srp.epoch": "\(epoch)", "reason": "\(reason.rawValue)", "handover.to": "\(handoverTo ?? "-")"])
        metrics.demotions.increment()
        routerTask?.cancel()
        await routerTask?.value
        routerTask = nil
        await dispatcher.stopServing()
        needsLoad = false
        publish { $0.leaseValidUntilMs = 0 }
        // What devices acknowledged is recorded while the lease is still ours, so the
        // next primary does not resend it (if this fails, it resends and devices drop repeats).
        let deadline = Monotonic.nowMs() + UInt64(configuration.databaseTimeoutMs)
        while !dispatcher.transitions.isIdle, Monotonic.nowMs() < deadline { try? await Task.sleep(for: .milliseconds(5)) }
        let detail = reason.rawValue + (handoverTo.map { "; handed over to \($0)" } ?? "")
        try? await withDeadline { [store, configuration] in
            try await store.recordEvent(node: configuration.node, kind: "demote", epoch: epoch, detail: detail)
        }
        try? await withDeadline { [store, configuration] in
            try await store.releaseLease(configuration.pair, node: configuration.node, epoch: epoch, handoverTo: handoverTo)
        }
    }

    private func failover(to target: String?) async -> FailoverOutcome {
        guard case .primary(let epoch) = machine.role else {
            if case .primaryDegraded = machine.role {
                return .refused("this primary cannot reach the configuration database; a handover needs it")
            }
            return .notPrimary(role: roleName)
        }
        let s = snapshot
        if let target, target == configuration.node { return .refused("\(target) is this node, the primary; name the standby") }
        guard let peer = s.peer, let age = s.peerAgeMs else {
            return .refused("no standby of pair \(configuration.pair) has written a heartbeat; nothing could take over")
        }
        if let target, target != peer.node { return .refused("pair \(configuration.pair) has no standby named \(target) (its standby is \(peer.node))") }
        guard age <= configuration.leaseMs else {
            return .refused("standby \(peer.node) last wrote a heartbeat \(age) ms ago; it is not running")
        }
        guard peer.score >= s.thresholds.promotion else {
            return .refused("standby \(peer.node) scores \(peer.score), below the promotion threshold \(s.thresholds.promotion); it would not take over")
        }
        logger.notice("operator requested failover", metadata: ["handover.to": "\(peer.node)"])
        await perform(machine.operatorRequestedFailover(to: peer.node, nowMs: databaseNow()))
        return .handedOver(epoch: epoch, to: peer.node)
    }

    // MARK: Health parameters

    private func refreshAccounts() async {
        guard let counts = try? await withDeadline({ [store] in try await store.accountCounts() }) else { return }
        accounts = counts
        if dispatcher.health.deviceKeys < counts.activeDevices,
           let keys = try? await withDeadline(ms: 5 * configuration.databaseTimeoutMs, { [store] in try await store.deviceKeys() }) {
            await dispatcher.warm(keys: keys)
        }
    }

    /// Each parameter measured from the component it names, listed in BES's order (the
    /// order of `HealthParameter`); a component this build does not have counts as healthy.
    private func evaluateHealth(databaseError: String?) -> [HealthCheck] {
        var measured: [HealthParameter: (healthy: Bool, detail: String)] = [:]
        if let epoch = servingEpoch {
            let l = link.snapshot
            let downFor = Monotonic.msSince(max(l.sinceMs, servingSinceMs))
            let down = "SRP link down for \(downFor) ms"
            measured[.wirelessNetwork] = switch (l.up, l.cause) {
            case (true, _): (true, "SRP link registered at epoch \(epoch)")
            case (false, .relayAnswered): (downFor < configuration.linkGraceMs, "\(down): \(l.lastError ?? "connecting")")
            case (false, .relaySilent): (false, "\(down) (relay silent or unreachable): \(l.lastError ?? "connecting")")
            // Counted as healthy so the pair does not hand the lease to and fro while both
            // would be refused; the detail says what is wrong.
            case (false, .lockedOut): (true, "\(down): the relay has locked the SRP ID out; the standby would be refused too: \(l.lastError ?? "")")
            }
        } else {
            let s = snapshot
            measured[.wirelessNetwork] = (s.relayReachable, s.relayDetail)
        }
        let d = dispatcher.health
        let sinceTick = Monotonic.msSince(d.lastTickMs)
        if sinceTick > 3_000 {
            measured[.dispatcher] = (false, "no delivery tick for \(sinceTick) ms")
        } else if let epoch = d.servingEpoch {
            measured[.dispatcher] = (true, "delivering at epoch \(epoch); \(d.queueDepth) items queued or in flight")
        } else {
            measured[.dispatcher] = (true, "warm; \(d.deviceKeys) device keys loaded")
        }
        measured[.configurationDatabase] = (databaseError == nil, databaseError ?? "reachable")
        if let accounts {
            let started = min(d.deviceKeys, accounts.activeDevices)
            measured[.userAccountsStarted] = (accounts.activeDevices == 0 || started * 4 >= accounts.activeDevices * 3,
                                              "\(started) of \(accounts.activeDevices) device accounts started")
            measured[.atLeastOneUser] = (accounts.users > 0, accounts.users > 0 ? "\(accounts.users) user accounts" : "no user accounts")
        } else {
            measured[.userAccountsStarted] = (false, "not counted yet")
            measured[.atLeastOneUser] = (false, "not counted yet")
        }
        measured[.mds] = (true, "push API only; no browsing proxy")
        return HealthParameter.allCases.map { parameter in
            let m = measured[parameter] ?? (true, "not part of this build; counts as healthy")
            return HealthCheck(parameter, healthy: m.healthy, detail: m.detail)
        }
    }

    /// A standby's wireless network parameter: can it open a connection to the relay's SRP
    /// listener (without registering, which the relay's lockout would count)?
    private nonisolated func probeRelay() async {
        while !Task.isCancelled {
            let relay = router.configuration.relay
            let result: (Bool, String)
            do {
                let connection = try await FrameConnection.connect(to: relay, connectTimeout: .milliseconds(500))
                connection.close()
                result = (true, "relay reachable at \(relay)")
            } catch {
                result = (false, "relay unreachable at \(relay): \(error)")
            }
            snapshotBox.withLockedValue { $0.relayReachable = result.0; $0.relayDetail = result.1 }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    // MARK: Helpers

    private var servingEpoch: UInt64? {
        switch machine.role {
        case .primary(let e), .primaryDegraded(let e): e
        case .standby, .promoting, .stopped: nil
        }
    }

    private var roleName: String {
        switch machine.role {
        case .standby: "standby"
        case .promoting: "promoting"
        case .primary: "primary"
        case .primaryDegraded: "primary_degraded"
        case .stopped: "stopped"
        }
    }

    private func publishRole() {
        let (role, epoch) = (roleName, servingEpoch)
        metrics.setRole(role)
        metrics.epoch.set(Double(epoch ?? 0))
        publish { $0.role = role; $0.epoch = epoch }
    }

    private func publish(_ change: @Sendable (inout Snapshot) -> Void) {
        snapshotBox.withLockedValue { change(&$0) }
    }

    /// The database clock now, estimated from the last reading and the monotonic clock.
    private func databaseNow() -> UInt64 {
        lastDatabaseNow.dbMs + (Monotonic.nowMs() - lastDatabaseNow.monoMs)
    }

    private func withDeadline<T: Sendable>(ms: Int? = nil, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await BrambleServer.withDeadline(ms: ms ?? configuration.databaseTimeoutMs, body)
    }

    static func describe(_ error: any Error) -> String {
        if let deadline = error as? DeadlineExceeded { return deadline.description }
        return String(describing: error)
    }
}
