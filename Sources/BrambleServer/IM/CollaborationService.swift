import BrambleCore
import BrambleNet
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOSSL
import ServiceLifecycle

/// The BES Collaboration Service: on the primary, one XMPP client session to the
/// company's IM server (Prosody) for each device whose user logged in to IM, relaying
/// messages, presence and contacts both ways.
///
/// A login (a device request, its password sealed while it waits) is checked against the
/// configuration database — the user may use IM, the pair's maximum of sessions (at the
/// maximum, with an idle timeout set, sessions idle past it or of devices out of coverage
/// are logged out first; none: "Server Busy"), this server's own limit ("Failed") — then
/// the session is opened and cached: the JID, the SCRAM keys it logs back in with (sealed
/// under the KEK; never the password), its presence, and its archive watermark.
///
/// Exactly once to the device: every message the user gets is archived by the IM server
/// (XEP-0313) under an id (XEP-0359 stanza-id). The device is given each once, by that id
/// (`im_delivered`), and the session's watermark moves to a message's id in the same
/// transaction that enqueues it, but only once the session has caught up. On promotion the
/// new primary logs every cached session back in (the same resource, so a session the old
/// primary may still hold is replaced: Prosody's conflict rule) and asks the archive for
/// what came after the watermark. Demotion ends the sessions (unavailable, stream closed)
/// and keeps the cache.
public actor CollaborationService: Service, LeaseFollower {
    public struct Configuration: Sendable {
        /// The IM server's client port (TLS from the first byte with `tls`).
        public var xmpp: HostPort
        public var tls: NIOSSLContext?
        /// The XMPP domain (`xmpp-domain`): a login's JID must be in it.
        public var domain: String
        /// This server's own limit of sessions (BES: what the RTC API supported): with no
        /// maximum set for the pair, a login past it is "Failed".
        public var serverSessionLimit = 5_000
        /// Sessions logged in at once (after a promotion): the IM server handles logins one
        /// at a time (Prosody is single-threaded), so more only queue there.
        public var loginConcurrency = 16
        /// Each session pings the IM server this often; one unanswered within 10 s ends it
        /// (a half-open connection), and the sweep logs it back in.
        public var keepaliveMs: UInt64 = 60_000
        /// A re-login starts no new login while the lease is certainly ours for less than this
        /// (the node sets 70% of its lease: a renewal came more than ~100 ms late).
        public var leaseMarginMs: UInt64 = 700
        /// A device with an item unacknowledged this long is out of coverage.
        public var outOfCoverageMs: UInt64 = 120_000
        /// A login (connect, TLS, SASL, bind, roster, catch-up) must be done by then.
        public var loginTimeoutMs = 15_000
        public var sweepIntervalMs: UInt64 = 2_000
        public init(xmpp: HostPort, tls: NIOSSLContext?, domain: String) { (self.xmpp, self.tls, self.domain) = (xmpp, tls, domain) }
    }

    public enum Wake: Sendable { case requests }
    public typealias Wakes = (stream: AsyncStream<Wake>, continuation: AsyncStream<Wake>.Continuation)

    let configuration: Configuration?
    let store: ConfigStore
    let dispatcher: Dispatcher
    let wakes: Wakes
    let pair: String
    let node: String
    let clock: any NodeClock
    let metrics: NodeMetrics
    let logger: Logger
    /// The HA manager's view: a re-login pauses while the lease's margin is thin.
    let lease: HASnapshotBox?
    public nonisolated let followerName = "collaboration-service"

    private var servingEpoch: UInt64?
    private var links: [PIN: IMLink] = [:]
    /// Cached sessions being logged back in.
    private var resuming: Set<PIN> = []
    /// When a session that failed to log back in is tried again.
    private var retryAtMs: [PIN: UInt64] = [:]
    private var failures: [PIN: Int] = [:]
    private var requestsWanted = false
    private var sweepWanted = false
    /// Logins past their checks and not yet answered.
    private var loginsUnderWay: Set<PIN> = []
    private var finished = false
    private let liveCount = NIOLockedValueBox(0)

    /// Sessions this node holds (the health check and metrics read it).
    public nonisolated var sessionCount: Int { liveCount.withLockedValue { $0 } }

    public init(configuration: Configuration?, store: ConfigStore, dispatcher: Dispatcher, wakes: Wakes,
                pair: String, node: String, clock: any NodeClock = SystemClock(), metrics: NodeMetrics, logger: Logger,
                lease: HASnapshotBox? = nil) {
        (self.configuration, self.store, self.dispatcher, self.wakes, self.lease) = (configuration, store, dispatcher, wakes, lease)
        (self.pair, self.node, self.clock, self.metrics, self.logger) = (pair, node, clock, metrics, logger)
    }

    // MARK: Service

    public func run() async throws {
        guard let configuration else {
            try? await gracefulShutdown()
            return
        }
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await withDiscardingTaskGroup { group in
                    let stream = wakes.stream
                    group.addTask { for await _ in stream { await self.requestsRecorded() } }
                    group.addTask { await self.loop(configuration) }
                    while !finished, (try? await clock.sleep(ms: 100)) != nil {}
                    group.cancelAll()
                }
            } onGracefulShutdown: {
                Task { await self.finish() }
            }
        } onCancel: {
            Task { await self.finish() }
        }
    }

    private func finish() async {
        finished = true
        await closeAll()
    }

    private func requestsRecorded() {
        requestsWanted = true
    }

    /// Requests as they come; every `sweepIntervalMs`: cached sessions to log back in,
    /// sessions idle past the timeout or no longer allowed.
    private func loop(_ c: Configuration) async {
        var lastSweepMs: UInt64 = 0
        var lastPruneMs: UInt64 = 0
        while !finished, !Task.isCancelled {
            if let epoch = servingEpoch {
                if requestsWanted {
                    requestsWanted = false
                    await answerRequests(epoch: epoch, c)
                }
                let now = clock.nowMs()
                if sweepWanted || now &- lastSweepMs >= c.sweepIntervalMs {
                    (sweepWanted, lastSweepMs) = (false, now)
                    await sweep(epoch: epoch, c)
                    if now &- lastPruneMs >= 3_600_000 {
                        lastPruneMs = now
                        try? await store.pruneIM()
                    }
                }
            }
            _ = try? await clock.sleep(ms: 20)
        }
    }

    // MARK: LeaseFollower

    public func serve(epoch: UInt64) async {
        guard configuration != nil else { return }
        servingEpoch = epoch
        retryAtMs = [:]
        failures = [:]
        requestsWanted = true
        sweepWanted = true
    }

    /// Demotion in BES's order: the sessions end (unavailable, stream closed) and the
    /// cache stays for the next primary.
    public func stopServing(epoch: UInt64) async {
        guard servingEpoch == epoch else { return }
        servingEpoch = nil
        await closeAll()
    }

    private func closeAll() async {
        let all = Array(links.values)
        links = [:]
        resuming = []
        updateCount()
        await withDiscardingTaskGroup { group in
            for link in all { group.addTask { await link.close(graceMs: 500) } }
        }
    }

    private func updateCount() {
        let n = links.count
        liveCount.withLockedValue { $0 = n }
        metrics.imSessions(n)
    }

    // MARK: Device requests

    private func answerRequests(epoch: UInt64, _ c: Configuration) async {
        let pending: [PendingRequest]
        do {
            pending = try await withDeadline(ms: 5_000, clock: clock) { [store] in try await store.pendingIMRequests(limit: 500) }
        } catch {
            logger.debug("reading IM requests failed", metadata: ["error": "\(error)"])
            requestsWanted = true
            return
        }
        if pending.count == 500 { requestsWanted = true }
        // Each device's in order; devices side by side (a login takes a few round trips).
        var byDevice: [PIN: [PendingRequest]] = [:]
        for r in pending { byDevice[r.pin, default: []].append(r) }
        let queues = Array(byDevice.values)
        var next = 0
        await withTaskGroup(of: Void.self) { group in
            func start() {
                guard next < queues.count else { return }
                let queue = queues[next]
                next += 1
                group.addTask {
                    for request in queue {
                        guard await self.isServing(epoch) else { return }
                        if await !self.answer(request, epoch: epoch, c) { return }  // held until the next pass
                    }
                }
            }
            for _ in 0..<min(c.loginConcurrency, queues.count) { start() }
            while await group.next() != nil { start() }
        }
    }

    func isServing(_ epoch: UInt64) -> Bool { servingEpoch == epoch }

    /// The device's session, if it is up.
    private func liveLink(_ pin: PIN) -> IMLink? {
        guard let link = links[pin], !link.hasEnded else { return nil }
        return link
    }

    /// Holds a session that has just logged in; one that ended meanwhile is dropped and
    /// logged back in by the sweep (false).
    private func hold(_ link: IMLink) -> Bool {
        guard !link.hasEnded else {
            retryAtMs[link.pin] = clock.nowMs() &+ 1_000
            return false
        }
        links[link.pin] = link
        link.markCaughtUp()
        return true
    }

    /// Acts on one request; false if it could not be answered now (the database away):
    /// it stays pending, and the device's later requests wait behind it.
    private func answer(_ request: PendingRequest, epoch: UInt64, _ c: Configuration) async -> Bool {
        do {
            switch request.request {
            case .imLogin(let jid, .sealed(let sealed)):
                try await login(request, jid: IMAddress.bare(jid), sealed: sealed, epoch: epoch, c)
            case .imLogin:
                try await finish(request, failure: "a login recorded with its password in the clear", cache: .none, items: [], epoch: epoch)
            case .imSend(let to, let body):
                try await send(request, to: IMAddress.bare(to), body: body, epoch: epoch, c)
            case .imPresence(let presence):
                guard let link = liveLink(request.pin) else { return try await notLoggedIn(request, epoch: epoch) }
                try? await link.send(XMPPStanzas.presence(presence))
                try await finish(request, failure: nil, cache: .presence(presence), items: [], epoch: epoch)
            case .imLogout:
                let link = links.removeValue(forKey: request.pin)
                updateCount()
                await link?.close()
                let outcome = IMSessionOutcome(jid: link?.jid ?? "", state: .loggedOut, reason: "logged out", requestRef: request.ref)
                try await finish(request, failure: nil, cache: .logout, items: [(.imSession, outcome.encoded())], epoch: epoch)
            default:
                return true
            }
            return true
        } catch {
            logger.warning("an IM request was not answered; it is retried", metadata: [
                "device.pin": "\(request.pin)", "request.ref": "\(request.ref)", "error": "\(error)"])
            requestsWanted = true
            return false
        }
    }

    private func finish(_ request: PendingRequest, failure: String?, cache: ConfigStore.IMCacheChange,
                        items: [(service: DataFrame.Service, payload: [UInt8])], epoch: UInt64) async throws {
        let committed = try await withDeadline(ms: 5_000, clock: clock) { [store, pair, node] in
            try await store.answerIMRequest(request.key, failure: failure, cache: cache, items: items, pair: pair, node: node, epoch: epoch, origin: node)
        }
        if let committed, !committed.items.isEmpty { await dispatcher.committed(committed.items, keys: committed.keys) }
    }

    private func notLoggedIn(_ request: PendingRequest, epoch: UInt64) async throws -> Bool {
        let outcome = IMSessionOutcome(jid: "", state: .loggedOut, reason: "not logged in to instant messaging", requestRef: request.ref)
        try await finish(request, failure: "not logged in", cache: .none, items: [(.imSession, outcome.encoded())], epoch: epoch)
        return true
    }

    private func login(_ request: PendingRequest, jid: String, sealed: String, epoch: UInt64, _ c: Configuration) async throws {
        func refuse(_ state: IMSessionOutcome.State, _ reason: String) async throws {
            metrics.imLogin(state.rawValue)
            let outcome = IMSessionOutcome(jid: jid, state: state, reason: reason, requestRef: request.ref)
            try await finish(request, failure: reason, cache: .none, items: [(.imSession, outcome.encoded())], epoch: epoch)
        }
        guard let account = try await store.imAccount(pin: request.pin) else { return try await refuse(.failed, "Failed: the device is not active") }
        guard account.allowed else { return try await refuse(.failed, "Failed: instant messaging is not allowed for this user") }
        guard IMAddress.domain(jid) == c.domain.lowercased() else {
            return try await refuse(.failed, "Failed: \(jid) is not in the IM domain \(c.domain)")
        }
        if let link = links[request.pin] {
            if link.jid == jid, !link.hasEnded {
                let outcome = IMSessionOutcome(jid: jid, state: .loggedIn, reason: "already logged in", requestRef: request.ref)
                return try await finish(request, failure: nil, cache: .touch, items: [(.imSession, outcome.encoded())], epoch: epoch)
            }
            links.removeValue(forKey: request.pin)
            updateCount()
            await link.close()
        }
        // The pair's maximum, then this server's own limit.
        let settings = try await store.imSettings()
        let load = try await store.imSessionLoad(excluding: request.pin, idleMs: settings.idleTimeoutMs)
        // Logins side by side each count the others under way (not cached yet), so together
        // they never pass the maximum. Counted from here, before any other wait.
        let holders = Set(load.pins).union(loginsUnderWay.subtracting([request.pin]))
        loginsUnderWay.insert(request.pin)
        defer { loginsUnderWay.remove(request.pin) }
        if let max = settings.maxSessions, holders.count >= max {
            guard let idleMs = settings.idleTimeoutMs else {
                return try await refuse(.serverBusy, "Server Busy: the maximum of \(max) IM sessions is reached")
            }
            let away = await dispatcher.outOfCoverage(load.pins, afterMs: c.outOfCoverageMs)
            let candidates = Set(load.idle).union(away)
            guard !candidates.isEmpty, holders.count - candidates.count < max else {
                return try await refuse(.serverBusy, "Server Busy: the maximum of \(max) IM sessions is reached and none is idle")
            }
            await end(Array(candidates), reason: { away.contains($0) ? "logged out: the device was out of coverage and the server needed the session"
                                                                     : "logged out: idle for more than \(idleMs / 1000) s and the server needed the session" },
                      epoch: epoch)
        } else if settings.maxSessions == nil, links.count >= c.serverSessionLimit {
            return try await refuse(.failed, "Failed: this server's limit of \(c.serverSessionLimit) IM sessions is reached")
        }
        let password: String
        do { password = try store.imPassword(sealed, pin: request.pin) } catch {
            return try await refuse(.failed, "Failed: the login's password does not open under this node's key-encryption key")
        }
        let link = IMLink(pin: request.pin, jid: jid)
        let opened: Opened
        do {
            opened = try await open(link, credential: .password(password), presence: .available, archiveAfter: nil, epoch: epoch, c)
        } catch let failure as XMPPClient.Failure {
            if case .notAuthorized = failure { return try await refuse(.failed, "Failed: the IM server refused the user ID or password") }
            return try await refuse(.failed, "Failed: \(failure)")
        } catch {
            return try await refuse(.failed, "Failed: the IM server cannot be reached (\(error))")
        }
        let outcome = IMSessionOutcome(jid: jid, state: .loggedIn, requestRef: request.ref)
        do {
            try await finish(request, failure: nil, cache: .login(jid: jid, keys: opened.keys, archiveAfter: opened.archiveAfter),
                             items: [(.imSession, outcome.encoded()), (.imContacts, IMContactList(contacts: opened.contacts).encoded())], epoch: epoch)
        } catch {
            await link.close()
            throw error
        }
        metrics.imLogin("logged-in")
        guard servingEpoch == epoch else { await link.close(); return }
        _ = hold(link)
        updateCount()
    }

    private func send(_ request: PendingRequest, to: String, body: String, epoch: UInt64, _ c: Configuration) async throws {
        guard let link = liveLink(request.pin) else { _ = try await notLoggedIn(request, epoch: epoch); return }
        let id = IMMessage.deviceMessageID(pin: request.pin, ref: request.ref)
        let before = try await withDeadline(ms: 5_000, clock: clock) { [store, pair, node] in
            try await store.recordIMAttempt(request.key, pair: pair, node: node, epoch: epoch)
        }
        // A node that died after handing it to the IM server: the user's archive says so.
        var alreadySent = false
        if let before {
            alreadySent = try await archiveHas(link, id: id, with: to, since: before.addingTimeInterval(-5))
        }
        var failure: String?
        if !alreadySent {
            link.expectBounce(id: id, to: to)
            try await link.send(XMPPStanzas.message(to: to, id: id, body: body))
            // The server handles a session's stanzas in order: once the ping is answered, the
            // message was routed (or bounced).
            _ = try await link.iq(XMPPStanzas.ping(id: link.newID("ping"), to: c.domain))
            if let condition = link.bounce(of: id) { failure = "the IM server refused it: \(condition)" }
        }
        metrics.imMessage(direction: "sent", failed: failure != nil)
        let echo = IMMessage(from: link.jid, to: to, id: id, body: body, receivedAtMs: UInt64(Date().timeIntervalSince1970 * 1000), ref: request.ref, error: failure)
        try await finish(request, failure: failure, cache: .touch, items: [(.im, echo.encoded())], epoch: epoch)
    }

    private func archiveHas(_ link: IMLink, id: String, with: String, since: Date) async throws -> Bool {
        let queryID = link.newID("search")
        link.beginArchiveQuery(queryID, .search(id: id))
        defer { link.endArchiveQuery(queryID) }
        _ = try await link.iq(XMPPStanzas.archiveQuery(id: link.newID("mam"), queryID: queryID, max: 100, with: with, start: since))
        return link.wasFound(id)
    }

    // MARK: Sessions

    struct Opened: Sendable {
        var keys: SCRAMKeys
        var contacts: [IMContactList.Contact]
        /// Where the archive stands after the login's catch-up (or, for a first login, its newest id).
        var archiveAfter: String?
    }

    /// Opens a session and runs it in its own task: negotiation, the roster, the presence,
    /// the archive caught up from `archiveAfter` (nil: a first login, nothing older is
    /// delivered). Returns once it is set up; the task reads the stream until it ends.
    private func open(_ link: IMLink, credential: SCRAMCredential, presence: IMPresence, archiveAfter: String?,
                      epoch: UInt64, _ c: Configuration) async throws -> Opened {
        let login = XMPPClient.Login(jid: link.jid, credential: credential, resource: link.resource)
        let ready = OpenSignal()
        let task = Task.detached { [self] in
            await self.runSession(link, login: login, presence: presence, archiveAfter: archiveAfter, ready: ready, epoch: epoch, c)
        }
        link.setTask(task)
        do {
            return try await withDeadline(ms: c.loginTimeoutMs, clock: clock) { try await ready.wait() }
        } catch {
            await link.close(graceMs: 0)
            throw error
        }
    }

    /// The session's life: negotiation, then its setup beside the reader, which handles
    /// every stanza in order until the stream ends.
    private nonisolated func runSession(_ link: IMLink, login: XMPPClient.Login, presence: IMPresence, archiveAfter: String?,
                                        ready: OpenSignal, epoch: UInt64, _ c: Configuration) async {
        do {
            try await XMPPClient.session(to: c.xmpp, tls: c.tls, login: login) { established, connection, inbound in
                link.attach(connection)
                let setup = Task {
                    do {
                        ready.succeed(try await self.setUp(link, keys: established.keys, presence: presence, archiveAfter: archiveAfter, epoch: epoch, c))
                    } catch {
                        ready.fail(error)
                        link.ended()
                        connection.closeStream()
                    }
                }
                // A half-open connection (the IM host gone without a FIN) is noticed by a ping.
                let keepalive = Task {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .milliseconds(Int(c.keepaliveMs)))
                        guard !Task.isCancelled, !link.hasEnded else { return }
                        do { _ = try await link.iq(XMPPStanzas.ping(id: link.newID("keepalive"), to: c.domain), timeoutMs: 10_000) } catch {
                            self.logger.info("an IM session's keepalive went unanswered; it is closed", metadata: ["device.pin": "\(link.pin)"])
                            link.ended()
                            connection.closeStream()
                            return
                        }
                    }
                }
                defer { setup.cancel(); keepalive.cancel() }
                while let event = try await inbound.next() {
                    switch event {
                    case .stanza(let stanza): try await self.received(stanza, link: link, epoch: epoch, c)
                    case .closed: return
                    case .opened: continue
                    }
                }
            }
        } catch {
            ready.fail(error)
            if !link.isClosing { logger.info("an IM session ended", metadata: ["device.pin": "\(link.pin)", "error": "\(error)"]) }
        }
        ready.fail(XMPPClient.Failure.closed)
        link.ended()
        await sessionEnded(link)
    }

    private func setUp(_ link: IMLink, keys: SCRAMKeys, presence: IMPresence, archiveAfter: String?, epoch: UInt64, _ c: Configuration) async throws -> Opened {
        let roster = try await link.iq(XMPPStanzas.rosterGet(id: link.newID("roster")))
        // Carbons: a copy of what the user's other clients receive (a message Prosody routes
        // to a higher-priority resource only).
        _ = try? await link.iq(XMPPStanzas.enableCarbons(id: link.newID("carbons")))
        try await link.send(XMPPStanzas.presence(presence))
        var after = archiveAfter
        if let start = archiveAfter {
            after = try await catchUp(link, after: start, epoch: epoch)
        } else {
            let queryID = link.newID("probe")
            link.beginArchiveQuery(queryID, .probe)
            defer { link.endArchiveQuery(queryID) }
            let answer = try await link.iq(XMPPStanzas.archiveQuery(id: link.newID("mam"), queryID: queryID, latest: true, max: 1))
            // An empty archive: "" marks "from its start", so a later catch-up misses nothing.
            after = XMPPStanzas.archiveEnd(answer)?.last ?? ""
        }
        return Opened(keys: keys, contacts: XMPPStanzas.roster(roster) ?? [], archiveAfter: after)
    }

    /// Delivers what the archive holds after `after`, page by page (the reader delivers each
    /// result as it comes, before the page's end); returns the last archive id.
    private func catchUp(_ link: IMLink, after start: String, epoch: UInt64) async throws -> String {
        var after = start
        while true {
            let queryID = link.newID("catchup")
            link.beginArchiveQuery(queryID, .deliver)
            defer { link.endArchiveQuery(queryID) }
            let answer: XMPPElement
            do {
                answer = try await link.iq(XMPPStanzas.archiveQuery(id: link.newID("mam"), queryID: queryID, after: after.isEmpty ? nil : after, max: 100))
            } catch let refusal as IMRefusal where refusal.condition == "item-not-found" && !after.isEmpty {
                // The watermark's message expired from the archive (a week): everything still
                // there is delivered, from its start; what the device had is skipped by key.
                logger.warning("an IM session's archive watermark is gone; the archive is delivered from its start", metadata: ["device.pin": "\(link.pin)"])
                after = ""
                continue
            }
            guard let end = XMPPStanzas.archiveEnd(answer) else { return after }
            if let last = end.last { after = last }
            try await withDeadline(ms: 5_000, clock: clock) { [store, pair, node, after] in
                try await store.setIMArchiveWatermark(pin: link.pin, jid: link.jid, after: after, pair: pair, node: node, epoch: epoch)
            }
            if end.complete || end.last == nil { return after }
        }
    }

    /// One stanza from a session's stream, in order.
    private func received(_ stanza: XMPPElement, link: IMLink, epoch: UInt64, _ c: Configuration) async throws {
        switch stanza.localName {
        case "iq":
            let type = stanza[attribute: "type"]
            if type == "result" || type == "error" { _ = link.resolve(stanza); return }
            if let contacts = XMPPStanzas.roster(stanza), type == "set" {
                try await link.send(XMPPStanzas.iqResult(to: stanza))
                _ = contacts  // a roster push: the device gets the whole list at its next login
                return
            }
            if stanza.child("ping", xmlns: XMPPStanzas.pingNS) != nil {
                try await link.send(XMPPStanzas.iqResult(to: stanza))
            } else {
                try await link.send(XMPPStanzas.iqError(to: stanza))
            }
        case "message":
            if let bounce = XMPPStanzas.bounce(stanza) { link.noteBounce(id: bounce.id, condition: bounce.condition, from: stanza[attribute: "from"]); return }
            if let result = stanza.child("result", xmlns: XMPPStanzas.mamNS), let queryID = result[attribute: "queryid"] {
                guard let kind = link.archiveQuery(queryID), let archived = XMPPStanzas.archived(stanza, user: link.jid, queryID: queryID) else { return }
                switch kind {
                case .deliver:
                    if let message = archived.message { try await deliver(message, link: link, moveWatermark: false, epoch: epoch) }
                case .probe:
                    break
                case .search(let id):
                    if let inner = result.child("forwarded", xmlns: XMPPStanzas.forwardNS)?.child("message"), inner[attribute: "id"] == id,
                       IMAddress.bare(inner[attribute: "from"] ?? "") == link.jid {
                        link.noteFound(id)
                    }
                }
                return
            }
            guard let message = XMPPStanzas.incoming(stanza, user: link.jid) else { return }
            try await deliver(message, link: link, moveWatermark: link.isCaughtUp, epoch: epoch)
        case "presence":
            guard let update = XMPPStanzas.contactPresence(stanza, user: link.jid), servingEpoch == epoch else { return }
            let committed = try await withDeadline(ms: 5_000, clock: clock) { [store, pair, node] in
                try await store.enqueueIM([(link.pin, .imPresence, update.encoded())], pair: pair, node: node, epoch: epoch, origin: node)
            }
            if !committed.items.isEmpty { await dispatcher.committed(committed.items, keys: committed.keys) }
        default:
            break
        }
    }

    /// A message to the device, once. A failed write ends the session: its next login
    /// catches up from the watermark, which did not move past this message.
    private func deliver(_ m: XMPPStanzas.Incoming, link: IMLink, moveWatermark: Bool, epoch: UInt64) async throws {
        guard servingEpoch == epoch else { throw ConfigStore.FencedError(epoch: epoch) }
        let message = IMMessage(from: m.from, to: m.to, id: m.id, body: String(m.body.prefix(IMMessage.maxBodyLength)),
                                receivedAtMs: UInt64(max(0, (m.stamp ?? Date()).timeIntervalSince1970 * 1000)))
        let committed = try await withDeadline(ms: 5_000, clock: clock) { [store, pair, node] in
            try await store.deliverIM(pin: link.pin, jid: link.jid, key: m.deliveryKey, message: message,
                                      archiveAfter: moveWatermark ? m.archiveID : nil, pair: pair, node: node, epoch: epoch, origin: node)
        }
        if !committed.items.isEmpty {
            metrics.imMessage(direction: "received", failed: false)
            await dispatcher.committed(committed.items, keys: committed.keys)
        }
    }

    private func sessionEnded(_ link: IMLink) {
        guard links[link.pin] === link else { return }
        links.removeValue(forKey: link.pin)
        updateCount()
        // Still cached: the sweep logs it back in (after a pause if it keeps failing).
        retryAtMs[link.pin] = clock.nowMs() &+ 1_000
    }

    // MARK: The sweep

    private func sweep(epoch: UInt64, _ c: Configuration) async {
        do {
            let settings = try await store.imSettings()
            // Idle past the timeout: logged out.
            if let idleMs = settings.idleTimeoutMs {
                let idle = try await store.imIdleSessions(idleMs: idleMs)
                if !idle.isEmpty { await end(idle, reason: { _ in "logged out: idle for more than \(idleMs / 1000) s" }, epoch: epoch) }
            }
            // No longer allowed (IM turned off, device disabled): ended, whoever held them.
            let revoked = try await store.revokedIMSessions()
            if !revoked.isEmpty { await end(Array(revoked), reason: { _ in "logged out: instant messaging is no longer allowed for this user or device" }, epoch: epoch) }
            // Cached sessions this node does not hold: logged back in, beside the requests.
            let (cached, unopenable) = try await store.cachedIMSessions()
            if !unopenable.isEmpty {
                await end(unopenable, reason: { _ in "logged out: the session's cached keys do not open under this node's key-encryption key; log in again" }, epoch: epoch)
            }
            let now = clock.nowMs()
            for (pin, link) in links where link.hasEnded { links.removeValue(forKey: pin); if retryAtMs[pin] == nil { retryAtMs[pin] = now } }
            let due = cached.filter { links[$0.pin] == nil && !resuming.contains($0.pin) && (retryAtMs[$0.pin] ?? 0) <= now }
            if !due.isEmpty {
                for s in due { resuming.insert(s.pin) }
                Task { await self.resume(due, epoch: epoch, c) }
            }
            updateCount()
        } catch {
            logger.debug("the IM sweep failed", metadata: ["error": "\(error)"])
        }
    }

    /// Ends sessions the server logs out, telling their devices why.
    private func end(_ pins: [PIN], reason: (PIN) -> String, epoch: UInt64) async {
        var ended: [(pin: PIN, jid: String, reason: String)] = []
        for pin in pins {
            let link = links.removeValue(forKey: pin)
            await link?.close()
            ended.append((pin, link?.jid ?? "", reason(pin)))
        }
        updateCount()
        do {
            let committed = try await store.endIMSessions(ended, pair: pair, node: node, epoch: epoch, origin: node)
            if !committed.items.isEmpty { await dispatcher.committed(committed.items, keys: committed.keys) }
        } catch {
            logger.warning("ending IM sessions failed", metadata: ["error": "\(error)"])
        }
    }

    /// Logs cached sessions back in, `loginConcurrency` at once.
    private func resume(_ sessions: [ConfigStore.CachedIMSession], epoch: UInt64, _ c: Configuration) async {
        let started = clock.nowMs()
        var done = 0
        var refused: [PIN] = []
        await withTaskGroup(of: (ConfigStore.CachedIMSession, IMLink?, Bool).self) { group in
            var next = 0
            func start() {
                // A demoted node logs no more in: it would take the sessions from the primary.
                guard next < sessions.count, servingEpoch == epoch else { return }
                let s = sessions[next]
                next += 1
                group.addTask {
                    let link = IMLink(pin: s.pin, jid: s.jid)
                    do {
                        _ = try await self.open(link, credential: .keys(s.keys), presence: s.presence, archiveAfter: s.archiveAfter, epoch: epoch, c)
                        return (s, link, false)
                    } catch {
                        self.logger.warning("an IM session did not log back in", metadata: ["device.pin": "\(s.pin)", "error": "\(error)"])
                        // The IM server no longer takes the cached login (the password changed):
                        // retrying would not help; the device must log in again.
                        switch error as? XMPPClient.Failure {
                        case .notAuthorized?, .scram(SCRAMError(.saltChanged))?: return (s, nil, true)
                        default: return (s, nil, false)
                        }
                    }
                }
            }
            for _ in 0..<min(c.loginConcurrency, sessions.count) { start() }
            while let (s, link, refusedLogin) = await group.next() {
                // Paced by the lease: a thousand logins at once load the machine, and the
                // lease's renewal (500 ms to answer) must not starve. While its margin is thin
                // (a renewal came late), no new login starts, for up to 2 s.
                if let lease {
                    let until = clock.nowMs() &+ 2_000
                    while lease.value.leaseValidUntilMs < clock.nowMs() &+ c.leaseMarginMs, clock.nowMs() < until,
                          (try? await clock.sleep(ms: 50)) != nil {}
                }
                resuming.remove(s.pin)
                if refusedLogin { refused.append(s.pin) }
                if let link, servingEpoch == epoch, hold(link) {
                    failures[s.pin] = nil
                    retryAtMs[s.pin] = nil
                    done += 1
                    if done % 50 == 0 { updateCount() }
                } else {
                    if let link { await link.close() }
                    let n = (failures[s.pin] ?? 0) + 1
                    failures[s.pin] = n
                    retryAtMs[s.pin] = clock.nowMs() &+ UInt64(min(60_000, 1_000 << min(n, 6)))
                }
                start()
            }
        }
        for s in sessions { resuming.remove(s.pin) }
        if !refused.isEmpty, servingEpoch == epoch {
            await end(refused, reason: { _ in "logged out: the IM server no longer accepts this login (was the password changed?); log in again" }, epoch: epoch)
        }
        updateCount()
        if done > 0 {
            metrics.imResumed(done)
            logger.info("IM sessions logged back in", metadata: ["count": "\(done)", "of": "\(sessions.count)", "ms": "\(clock.nowMs() &- started)"])
        }
    }
}

/// The first outcome of a session's setup, once.
final class OpenSignal: Sendable {
    private let state = NIOLockedValueBox<(result: Result<CollaborationService.Opened, any Error>?, waiter: CheckedContinuation<CollaborationService.Opened, any Error>?)>((nil, nil))

    func succeed(_ value: CollaborationService.Opened) { complete(.success(value)) }
    func fail(_ error: any Error) { complete(.failure(error)) }

    private func complete(_ result: Result<CollaborationService.Opened, any Error>) {
        let waiter = state.withLockedValue { s -> CheckedContinuation<CollaborationService.Opened, any Error>? in
            guard s.result == nil else { return nil }
            s.result = result
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(with: result)
    }

    func wait() async throws -> CollaborationService.Opened {
        try await withCheckedThrowingContinuation { continuation in
            let result = state.withLockedValue { s -> Result<CollaborationService.Opened, any Error>? in
                if s.result == nil { s.waiter = continuation }
                return s.result
            }
            if let result { continuation.resume(with: result) }
        }
    }
}
