import BrambleAPI
import BrambleCore
import BrambleNet
import Foundation
import Logging
import NIOSSL
import NIOConcurrencyHelpers
import ServiceLifecycle

/// The BES Messaging Agent: on the primary, watches the INBOX of every user with an
/// active device and enqueues each new mail for their devices (first 2 KB of text,
/// envelope, attachments), and answers More requests from the text it kept.
///
/// The watermark (UIDVALIDITY, last UID enqueued) in the configuration database is the
/// truth, advanced in the transaction that enqueues the mail, so a failover neither skips
/// nor repeats mail. A check is cheap (one IMAP session as the service account: LOGIN
/// `USER*SERVICE`, EXAMINE, UID FETCH of what is new, LOGOUT) and runs on a small pool of
/// workers, so 1,000 mailboxes cost no process or inotify watch each on the mail server.
/// What starts a check: a notification from the mail server (`notify(email:)`, the
/// trigger), and a sweep of every mailbox each `sweepIntervalMs`, which finds whatever a
/// lost notification missed. Promotion resumes every mailbox from its stored watermark;
/// demotion stops the workers before the lease is released.
public actor MessagingAgent: Service, LeaseFollower {
    public struct Configuration: Sendable {
        /// The mail server's IMAP listener.
        public var imap: HostPort
        /// IMAPS: TLS from the first byte, the server's certificate verified against the
        /// CA. nil: plaintext IMAP, only where an operator asked for it.
        public var tls: NIOSSLContext?
        /// The Dovecot master user (LOGIN `USER*serviceUser`) and its password.
        public var serviceUser = "bramble-service"
        public var servicePassword: String
        /// The first chunk and each More chunk of a mail's text (BES: 2 KB).
        public var chunkBytes = 2 * 1024
        /// The most text a device can get of one mail, More included.
        public var maxTextBytes = 32 * 1024
        /// The bearer token of the mail server's notifications (`MailAPI.notify`); nil:
        /// none are taken, and the sweep alone finds new mail.
        public var notifyToken: String?
        /// Every mailbox is checked at least this often, notification or not.
        public var sweepIntervalMs: UInt64 = 30_000
        /// Mailboxes checked at once.
        public var workers = 8
        /// Mails enqueued per check; a mailbox with more is checked again at once.
        public var maxMessagesPerCheck = 50
        /// The mail server's submission service (SMTP, TLS as `tls`, SASL PLAIN as the
        /// user through the service account); nil: devices' mail fails ("sends no mail").
        public var submission: HostPort?
        /// An attempt at sending must have sent its final dot by then, or it sends none.
        public var sendDeadlineMs = 10_000
        /// The submission service's timeout (Postfix's smtpd_timeout there): how long after
        /// an attempt's deadline the server may still take its dot. At least the server's.
        public var submissionServerTimeoutMs = 5_000
        /// How long a message the server accepted may take to reach Sent.
        public var witnessGraceMs = 15_000
        /// The most of an original's text a reply quotes or a forward carries.
        public var maxQuoteBytes = 1 << 20
        /// The most a forward reads of an original (text and attachments, as stored).
        public var maxOriginalBytes = 50 << 20
        /// Where the submission service files the user's copy (special-use \Sent).
        public var sentFolder = "Sent"
        /// What a device's `delete` does: expunge the mail, or move it to Trash.
        public var deviceDelete: DeviceDelete = .expunge
        public init(imap: HostPort, tls: NIOSSLContext?, servicePassword: String) {
            self.imap = imap
            self.tls = tls
            self.servicePassword = servicePassword
        }
    }

    enum Job: Sendable {
        /// Read the list of mailboxes again; `checkAll`: then check every one (a sweep),
        /// else only those new to the list.
        case reload(epoch: UInt64, checkAll: Bool)
        case requests(epoch: UInt64)
        /// One pass over the outgoing mail: submit, settle what is in doubt, file.
        case outgoing(epoch: UInt64)
        case check(WatchedMailbox, epoch: UInt64)
    }

    enum Outcome: Sendable {
        case committed(WatchedMailbox, ConfigStore.CommittedPushes, more: Bool)
        case unchanged
        /// Someone else moved the watermark: reload it.
        case stale
        /// `unreachable`: the mail server could not be reached (counts against the mail
        /// server parameter); else it answered, or the database failed.
        case failed(String, unreachable: Bool)
    }

    let configuration: Configuration?
    let store: ConfigStore
    let dispatcher: Dispatcher
    /// What wakes the Agent from outside: the Dispatcher recorded device requests, the
    /// count of active devices changed.
    public enum Wake: Sendable { case requests, accounts }
    public typealias Wakes = (stream: AsyncStream<Wake>, continuation: AsyncStream<Wake>.Continuation)
    let wakes: Wakes
    private let countedDevices = NIOLockedValueBox<Int?>(nil)
    let pair: String
    let node: String
    let clock: any NodeClock
    let metrics: NodeMetrics
    let logger: Logger
    public nonisolated let followerName = "messaging-agent"

    private let healthBox = NIOLockedValueBox(HealthFacts.MessagingAgent())
    /// What the health check and `bramble user` read without waiting for the actor.
    public nonisolated var health: HealthFacts.MessagingAgent { healthBox.withLockedValue { $0 } }

    private var servingEpoch: UInt64?
    private var mailboxes: [Int64: WatchedMailbox] = [:]
    private var byEmail: [[UInt8]: Int64] = [:]  // canonical address bytes → user
    /// Mailboxes due for a check, notified ones first; each at most once.
    private var due: [Int64] = []
    private var inProgress: Set<Int64> = []
    private var failing: [Int64: (reason: String, unreachable: Bool)] = [:]
    /// Mailboxes a check reached since this node began serving: what "watched" counts.
    private var reached: Set<Int64> = []
    private var reloadWanted = false
    private var checkAllWanted = false
    /// When a notification for a user not in the list last caused a reload.
    private var unknownReloadMs: UInt64 = 0
    private var requestsWanted = false
    private var outgoingWanted = false
    /// One pass over the outgoing mail at a time: two would race for the same rows.
    private var outgoingRunning = false
    private var waiters: [CheckedContinuation<Job?, Never>] = []
    private var finished = false

    /// `wakes`: the Dispatcher yields `.requests` to its continuation.
    public init(configuration: Configuration?, store: ConfigStore, dispatcher: Dispatcher, wakes: Wakes,
                pair: String, node: String, clock: any NodeClock = SystemClock(), metrics: NodeMetrics, logger: Logger) {
        (self.configuration, self.store, self.dispatcher, self.pair, self.node) = (configuration, store, dispatcher, pair, node)
        self.wakes = wakes
        (self.clock, self.metrics, self.logger) = (clock, metrics, logger)
        healthBox.withLockedValue { $0.configured = configuration != nil }
    }

    // MARK: Service

    public func run() async throws {
        guard let configuration else {
            try? await gracefulShutdown()
            return
        }
        // Ends on the graceful shutdown, or on cancellation (a group cancelled because
        // another service failed): either way `finish` releases the waiting workers.
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await serviceLoops(configuration)
            } onGracefulShutdown: {
                Task { await self.finish() }
            }
        } onCancel: {
            Task { await self.finish() }
        }
    }

    private func serviceLoops(_ configuration: Configuration) async {
            await withDiscardingTaskGroup { group in
                let stream = wakes.stream
                group.addTask {
                    for await wake in stream {
                        switch wake {
                        case .requests: await self.requestsRecorded()
                        case .accounts: await self.reloadList()
                        }
                    }
                }
                group.addTask { await self.sweep(configuration) }
                // The workers end once `finish` has run (the graceful shutdown).
                await withDiscardingTaskGroup { workers in
                    for _ in 0..<configuration.workers {
                        workers.addTask { while let job = await self.nextJob() { await self.perform(job, configuration) } }
                    }
                }
                group.cancelAll()
            }
    }

    /// Every `sweepIntervalMs`, every mailbox is due (after a reload of the list, so users
    /// added or removed since are watched or dropped); on a standby, a probe of the mail
    /// server keeps its health parameter true.
    private func sweep(_ configuration: Configuration) async {
        var lastPruneMs: UInt64 = 0
        while !finished, !Task.isCancelled {
            if let epoch = servingEpoch {
                outgoingWanted = true
                wantReload(checkAll: true)
                if clock.nowMs() &- lastPruneMs >= 3_600_000 {
                    lastPruneMs = clock.nowMs()
                    await prune(epoch: epoch)
                }
            } else {
                let reachable: String?
                do {
                    // Bounded: a server that accepts but never greets (or never finishes the
                    // TLS handshake) must not stall the probe loop.
                    try await withDeadline(ms: 5_000, clock: clock) {
                        try await IMAPSession.with(to: configuration.imap, tls: configuration.tls, connectTimeout: .seconds(2)) { _ in }
                    }
                    reachable = nil
                } catch {
                    reachable = "\(error)"
                }
                healthBox.withLockedValue { $0.mailServerError = reachable }
            }
            let interval = servingEpoch != nil ? configuration.sweepIntervalMs : 5_000
            var slept: UInt64 = 0
            // Wakes early when promoted (a reload is then wanted at once anyway).
            while slept < interval, !finished, (try? await clock.sleep(ms: 100)) != nil { slept += 100 }
        }
    }

    /// Forgets what no device will ask for again: the text of mail older than 30 days,
    /// requests answered more than 7 days ago.
    private func prune(epoch: UInt64) async {
        do {
            try await withDeadline(ms: 30_000, clock: clock) { [store] in try await store.pruneMail(mailDays: 30, requestDays: 7) }
        } catch {
            logger.debug("pruning mail items failed", metadata: ["error": "\(describe(error))"])
        }
    }

    private func finish() {
        finished = true
        for waiter in waiters { waiter.resume(returning: nil) }
        waiters = []
    }

    // MARK: LeaseFollower

    /// Resumes every mailbox from its stored watermark: the list is loaded and every
    /// mailbox checked at once, along with requests left pending by the last primary.
    public func serve(epoch: UInt64) async {
        guard configuration != nil else { return }
        servingEpoch = epoch
        mailboxes = [:]
        byEmail = [:]
        due = []
        failing = [:]
        reached = []
        reloadWanted = true
        checkAllWanted = true
        requestsWanted = true
        outgoingWanted = true
        healthBox.withLockedValue { $0.servingEpoch = epoch; $0.watched = 0; $0.total = 0; $0.failingCount = 0; $0.unreachableCount = 0 }
        wakeAll()
    }

    /// Stops handing out work and waits (up to 2 s) for checks under way to end; their
    /// writes are fenced by the epoch anyway.
    public func stopServing(epoch: UInt64) async {
        guard servingEpoch == epoch else { return }
        servingEpoch = nil
        due = []
        healthBox.withLockedValue { $0.servingEpoch = nil }
        let deadline = clock.nowMs() &+ 2_000
        while !inProgress.isEmpty, clock.nowMs() < deadline, (try? await clock.sleep(ms: 5)) != nil {}
    }

    // MARK: What the rest of the node calls

    /// The mail server says `email`'s INBOX changed: check it before anything else.
    /// False when this node does not serve (the mail server then tells the other).
    @discardableResult
    public func notify(email: String) -> Bool {
        guard servingEpoch != nil else { return false }
        defer { wakeOne() }
        guard let id = byEmail[Array(Email.canonical(email).utf8)] else {
            // A user added since the last reload, or (far more often) one without a device:
            // at most one reload a second for these.
            let now = clock.nowMs()
            if now &- unknownReloadMs >= 1_000 {
                unknownReloadMs = now
                wantReload(checkAll: false)
            }
            return true
        }
        due.removeAll { $0 == id }
        due.insert(id, at: 0)
        return true
    }

    /// The health check counted the active devices (every 2 s): when the count changes, a
    /// user was added or removed, so the list of mailboxes is read again at once rather
    /// than at the next sweep.
    public nonisolated func accountsCounted(activeDevices: Int) {
        let changed = countedDevices.withLockedValue { last in
            defer { last = activeDevices }
            return last != nil && last != activeDevices
        }
        if changed { wakes.continuation.yield(.accounts) }
    }

    private func reloadList() {
        guard servingEpoch != nil else { return }
        wantReload(checkAll: false)
    }

    private func wantReload(checkAll: Bool) {
        reloadWanted = true
        checkAllWanted = checkAllWanted || checkAll
        wakeOne()
    }

    /// Device requests were recorded: act on them (mail to send among them).
    func requestsRecorded() {
        guard servingEpoch != nil else { return }
        requestsWanted = true
        outgoingWanted = true
        wakeAll()
    }

    func isServing(_ epoch: UInt64) -> Bool { servingEpoch == epoch }

    /// A pass over the outgoing mail ended; `again`: something is due soon (a retry, an
    /// attempt in doubt, a copy to file), so look again in a second.
    private func outgoingPassed(epoch: UInt64, again: Bool) async {
        outgoingRunning = false
        guard again, servingEpoch == epoch else { wakeAll(); return }
        Task { [weak self] in
            try? await self?.clock.sleep(ms: 1_000)
            await self?.wantOutgoing(epoch: epoch)
        }
        wakeAll()
    }

    private func wantOutgoing(epoch: UInt64) {
        guard servingEpoch == epoch else { return }
        outgoingWanted = true
        wakeOne()
    }

    // MARK: Scheduling

    private func nextJob() async -> Job? {
        while !finished {
            if let job = takeJob() { return job }
            if let job = await withCheckedContinuation({ waiters.append($0) }) { return job }
        }
        return nil
    }

    /// Hands work to a waiting worker, if there is work.
    private func wakeOne() {
        guard !waiters.isEmpty, let job = takeJob() else { return }
        waiters.removeFirst().resume(returning: job)
    }

    private func wakeAll() {
        while !waiters.isEmpty, let job = takeJob() { waiters.removeFirst().resume(returning: job) }
    }

    /// The next job: a reload of the list, then device requests, then the first due
    /// mailbox no worker is checking.
    private func takeJob() -> Job? {
        guard let epoch = servingEpoch else { return nil }
        if reloadWanted {
            defer { (reloadWanted, checkAllWanted) = (false, false) }
            return .reload(epoch: epoch, checkAll: checkAllWanted)
        }
        if requestsWanted { requestsWanted = false; return .requests(epoch: epoch) }
        if outgoingWanted, !outgoingRunning {
            (outgoingWanted, outgoingRunning) = (false, true)
            return .outgoing(epoch: epoch)
        }
        while let i = due.firstIndex(where: { !inProgress.contains($0) }) {
            let id = due.remove(at: i)
            guard let mailbox = mailboxes[id] else { continue }
            inProgress.insert(id)
            return .check(mailbox, epoch: epoch)
        }
        return nil
    }

    private func perform(_ job: Job, _ configuration: Configuration) async {
        switch job {
        case .reload(let epoch, let checkAll):
            do {
                let list = try await withDeadline(ms: 10_000, clock: clock) { [store] in try await store.watchedMailboxes() }
                loaded(list, checkAll: checkAll, epoch: epoch)
            } catch {
                logger.warning("loading the watched mailboxes failed; retrying", metadata: ["error": "\(describe(error))"])
                try? await clock.sleep(ms: 500)
                if servingEpoch == epoch { wantReload(checkAll: checkAll) }
            }
        case .requests(let epoch):
            await answerRequests(epoch: epoch, configuration)
        case .outgoing(let epoch):
            let again = await processOutgoing(epoch: epoch, configuration)
            await outgoingPassed(epoch: epoch, again: again)
        case .check(let mailbox, let epoch):
            let outcome = await Self.check(mailbox, epoch: epoch, configuration: configuration, store: store, pair: pair, node: node,
                                           clock: clock, metrics: metrics)
            if case .committed(_, let committed, _) = outcome, !committed.items.isEmpty {
                await dispatcher.committed(committed.items, keys: committed.keys)
                metrics.mailsEnqueued(committed.items.count)
            }
            var stale = false
            switch outcome {
            case .committed, .unchanged:
                // Then what changed in the mailbox for the mail the devices have.
                do {
                    let reconciled = try await Self.reconcile(mailbox, epoch: epoch, configuration: configuration, store: store, pair: pair,
                                                              node: node, clock: clock)
                    stale = reconciled.stale
                    if !reconciled.committed.items.isEmpty {
                        await dispatcher.committed(reconciled.committed.items, keys: reconciled.committed.keys)
                        metrics.stateItems(reconciled.committed.items.count)
                    }
                } catch {
                    logger.debug("reconciling a mailbox failed; at its next check", metadata: ["user": "\(mailbox.email)",
                                                                                                "error": "\(Self.describeIMAP(error).0)"])
                }
            case .stale, .failed:
                break
            }
            checked(mailbox, outcome, epoch: epoch)
            if stale { recheck(mailbox.userID, epoch: epoch) }
        }
    }

    /// A check whose reconciliation found the user's state moved meanwhile: again, soon.
    private func recheck(_ userID: Int64, epoch: UInt64) {
        guard servingEpoch == epoch, mailboxes[userID] != nil, !due.contains(userID) else { return }
        due.append(userID)
        wakeOne()
    }

    private func loaded(_ list: [WatchedMailbox], checkAll: Bool, epoch: UInt64) {
        guard servingEpoch == epoch else { return }
        var fresh: [Int64: WatchedMailbox] = [:]
        for m in list {
            // A check under way knows the watermark better than the list read before it ended.
            fresh[m.userID] = inProgress.contains(m.userID) ? (mailboxes[m.userID] ?? m) : m
        }
        let known = mailboxes
        mailboxes = fresh
        byEmail = Dictionary(list.map { (Array(Email.canonical($0.email).utf8), $0.userID) }, uniquingKeysWith: { a, _ in a })
        failing = failing.filter { fresh[$0.key] != nil }
        reached = reached.filter { fresh[$0] != nil }
        let queued = Set(due)
        due = due.filter { fresh[$0] != nil } + list.map(\.userID).filter { !queued.contains($0) && (checkAll || known[$0] == nil) }
        publishHealth()
        wakeAll()
    }

    private func checked(_ mailbox: WatchedMailbox, _ outcome: Outcome, epoch: UInt64) {
        inProgress.remove(mailbox.userID)
        guard servingEpoch == epoch, mailboxes[mailbox.userID] != nil else { return }
        switch outcome {
        case .committed(let advanced, _, let more):
            mailboxes[mailbox.userID] = advanced
            failing[mailbox.userID] = nil
            reached.insert(mailbox.userID)
            if more { due.insert(mailbox.userID, at: 0) }
        case .unchanged:
            failing[mailbox.userID] = nil
            reached.insert(mailbox.userID)
        case .stale:
            wantReload(checkAll: false)
            due.append(mailbox.userID)
        case .failed(let error, let unreachable):
            if failing[mailbox.userID]?.reason != error {
                logger.warning("mailbox check failed", metadata: ["user": "\(mailbox.email)", "error": "\(error)"])
            }
            failing[mailbox.userID] = (error, unreachable)
        }
        publishHealth()
        wakeAll()
    }

    /// Counts only: `/health` is open to anyone who can reach the node, and the failing
    /// mailboxes' addresses and reasons are in `bramble user list` (authenticated).
    private func publishHealth() {
        let total = mailboxes.count
        let watched = mailboxes.keys.filter { reached.contains($0) && failing[$0] == nil }.count
        let unreachable = failing.values.filter(\.unreachable).count
        healthBox.withLockedValue {
            $0.total = total
            $0.watched = watched
            $0.failingCount = failing.count
            $0.unreachableCount = unreachable
        }
    }

    // MARK: One mailbox

    /// One check: an IMAP session as the service account, the new mail fetched, and the
    /// mail and the watermark committed together.
    static func check(_ m: WatchedMailbox, epoch: UInt64, configuration c: Configuration, store: ConfigStore, pair: String,
                      node: String, clock: any NodeClock, metrics: NodeMetrics) async -> Outcome {
        let fetched: (validity: UInt64, last: UInt64, mails: [FetchedMail], more: Bool)?
        do {
            fetched = try await withDeadline(ms: 20_000, clock: clock) {
                try await Self.fetch(m, configuration: c, store: store)
            }
        } catch {
            let (reason, unreachable) = Self.describeIMAP(error)
            _ = try? await withDeadline(ms: 5_000, clock: clock) {
                try await store.recordMailboxCheck(m, error: reason, pair: pair, node: node, epoch: epoch)
            }
            return .failed(reason, unreachable: unreachable)
        }
        do {
            guard let fetched else {
                try await withDeadline(ms: 5_000, clock: clock) {
                    try await store.recordMailboxCheck(m, error: nil, pair: pair, node: node, epoch: epoch)
                }
                return .unchanged
            }
            let committed = try await withDeadline(ms: 5_000, clock: clock) {
                try await store.commitMail(m, mails: fetched.mails, uidValidity: fetched.validity, lastUID: fetched.last,
                                           pair: pair, node: node, epoch: epoch, origin: node)
            }
            guard let committed else { return .stale }
            var advanced = m
            (advanced.uidValidity, advanced.lastUID, advanced.checkedAt) = (fetched.validity, fetched.last, Date())
            return .committed(advanced, committed, more: fetched.more)
        } catch let fenced as ConfigStore.FencedError {
            metrics.fencedWrites(1)
            return .failed("not recorded: \(fenced) (this node no longer holds the lease)", unreachable: false)
        } catch {
            return .failed("recording the mailbox's mail failed: \(describe(error))", unreachable: false)
        }
    }

    /// UIDs and UIDVALIDITY are 32-bit numbers in IMAP (RFC 9051 `nz-number`); a server
    /// that says otherwise is refused rather than stored.
    static let maxIMAPNumber = UInt64(UInt32.max)
    /// A resync reads the INTERNALDATE of at most this many of the newest messages.
    static let maxResyncCandidates = 500

    /// What is new in the mailbox (nil: nothing; the watermark stands).
    static func fetch(_ m: WatchedMailbox, configuration c: Configuration, store: ConfigStore) async throws
        -> (validity: UInt64, last: UInt64, mails: [FetchedMail], more: Bool)? {
        try await IMAPSession.with(to: c.imap, tls: c.tls, connectTimeout: .seconds(2)) { session in
            try await session.login(user: "\(m.email)*\(c.serviceUser)", password: c.servicePassword)
            let selected = try await session.select("INBOX", readOnly: true)
            guard let validity = selected.uidValidity, let next = selected.uidNext, validity <= maxIMAPNumber, next <= maxIMAPNumber + 1 else {
                throw IMAPSession.Refused(command: "EXAMINE", status: .no, text: "no valid UIDVALIDITY and UIDNEXT")
            }
            let plan = MailboxPlan.plan(storedValidity: m.uidValidity, lastUID: m.lastUID, uidValidity: validity, uidNext: next,
                                        activeSince: m.activeSince, checkedAt: m.checkedAt, now: Date())
            let result: (validity: UInt64, last: UInt64, mails: [FetchedMail], more: Bool)?
            switch plan {
            case .upToDate:
                result = nil
            case .fetch(let from):
                // SEARCH, not FETCH: one line of numbers however long the backlog.
                var uids = try await Self.search(&session, "UID \(from):*").filter { $0 >= from }
                let more = uids.count > c.maxMessagesPerCheck
                uids = Array(uids.prefix(c.maxMessagesPerCheck))
                guard let last = uids.last else { return nil }
                let mails = try await Self.read(uids, validity: validity, session: &session, c)
                result = (validity, last, mails, more)
            case .resync(let v, let last, let since):
                // SEARCH SINCE has a day's precision in the server's zone: search a day
                // early, then keep what INTERNALDATE puts at or after `since`.
                let candidates = try await Self.search(&session, "SINCE \(IMAPDate.searchDay(since.addingTimeInterval(-86_400)))")
                    .suffix(maxResyncCandidates)
                var recent: [UInt64] = []
                if !candidates.isEmpty {
                    for (uid, attributes) in try await session.uidFetch(candidates.map(String.init).joined(separator: ","), "UID INTERNALDATE") {
                        if let text = attributes["INTERNALDATE"]?.text, let at = IMAPDate.parse(text), at >= since { recent.append(uid) }
                    }
                }
                // The newest, if there are more than a check takes.
                recent = Array(recent.sorted().suffix(c.maxMessagesPerCheck))
                var mails = try await Self.read(recent, validity: v, session: &session, c)
                let had = try await store.deliveredMessageIDs(userID: m.userID, mails.map(\.item.messageID))
                mails.removeAll { had.contains($0.item.messageID) }
                result = (v, last, mails, false)
            }
            await session.logout()
            return result
        }
    }

    /// `UID SEARCH criteria`: the UIDs, ascending, each a valid IMAP number.
    static func search(_ session: inout IMAPSession, _ criteria: String) async throws -> [UInt64] {
        var uids: [UInt64] = []
        for case .search(let n) in try await session.run("UID SEARCH \(criteria)").untagged { uids += n.map(UInt64.init) }
        return uids.filter { $0 >= 1 }.sorted()
    }

    /// Envelope, structure and importance of each message, then its text part's first
    /// bytes. A message whose envelope cannot be read still goes out (with what could be
    /// read), so the watermark never passes a mail the device did not get.
    static func read(_ uids: [UInt64], validity: UInt64, session: inout IMAPSession, _ c: Configuration) async throws -> [FetchedMail] {
        guard !uids.isEmpty else { return [] }
        let set = uids.map(String.init).joined(separator: ",")
        var mails: [FetchedMail] = []
        let fetched = try await session.uidFetch(set, "UID FLAGS ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (IMPORTANCE X-PRIORITY PRIORITY X-BRAMBLE-ACTIVATION)]")
        let wanted = Set(uids)
        for (uid, attributes) in fetched.sorted(by: { $0.uid < $1.uid }) where wanted.contains(uid) {
            let envelope = attributes["ENVELOPE"].flatMap(MailEnvelope.init)
                ?? MailEnvelope(date: "", subject: "(a message whose envelope could not be read)", from: [], to: [], cc: [], messageID: "")
            let headers = attributes.first { $0.name.hasPrefix("BODY[HEADER") }?.value.bytes ?? []
            // An activation request is the activation service's to read and remove; no device gets it.
            if String(decoding: headers, as: UTF8.self).lowercased().contains(Activation.mailHeader.lowercased() + ":") { continue }
            let parts = attributes["BODYSTRUCTURE"].map { MailStructure.parts($0) } ?? []
            let textPart = MailStructure.textPart(parts)
            var raw: [UInt8]?
            if let textPart {
                let n = min(Int(clamping: textPart.size), MailComposer.fetchBytes(maxTextBytes: c.maxTextBytes))
                let answer = try await session.uidFetch("\(uid)", "BODY.PEEK[\(textPart.section)]<0.\(max(n, 1))>")
                raw = answer.first { $0.uid == uid }?.attributes.first { $0.name.hasPrefix("BODY[") }?.value.bytes
            }
            var composed = MailComposer.compose(envelope: envelope, parts: parts, text: textPart, rawText: raw, uidValidity: validity,
                                                uid: uid, chunkBytes: c.chunkBytes, maxTextBytes: c.maxTextBytes)
            composed.item.importance = MailImportance.parse(headers: headers)
            let seen = attributes["FLAGS"]?.list.map { $0.contains { $0.text?.lowercased() == "\\seen" } }
            mails.append(FetchedMail(uid: uid, item: composed.item, text: composed.text, seen: seen))
        }
        return mails
    }

    /// What went wrong, for `bramble user`; and whether the server was out of reach.
    /// What went wrong with a mailbox, for its `last_error`, the log and `bramble user show`:
    /// the mail server's own words among it, made printable (a NUL would have the
    /// database refuse the record, an escape sequence would reach the admin's terminal)
    /// and bounded.
    static func describeIMAP(_ error: any Error) -> (String, unreachable: Bool) {
        let (text, unreachable) = describeIMAPError(error)
        return (MailText.prefix(MailText.printable(text), maxBytes: 1024), unreachable)
    }

    private static func describeIMAPError(_ error: any Error) -> (String, Bool) {
        switch error {
        case let refused as IMAPSession.Refused: (refused.description, false)
        case let malformed as IMAPError: ("the mail server's answer was refused: \(malformed)", false)
        case is DeadlineExceeded: ("the mail server did not answer within 20 s", true)
        case let failure as TransactionFailure: ("the configuration database failed: \(failure)", false)
        default: ("mail server unreachable: \(error)", true)
        }
    }

    // MARK: Device requests

    private func answerRequests(epoch: UInt64, _ c: Configuration) async {
        do {
            let page = 500
            let pending = try await withDeadline(ms: 5_000, clock: clock) { [store] in try await store.pendingRequests(limit: page) }
            if pending.count == page { requestsWanted = true }  // more after these
            // A device's requests in the order it made them: one that fails (the mail server
            // away) holds back that device's later ones until the retry.
            var held: Set<PIN> = []
            for request in pending where servingEpoch == epoch && !held.contains(request.pin) {
                switch request.request.kind {
                case .more:
                    let committed = try await withDeadline(ms: 5_000, clock: clock) { [store, pair, node] in
                        try await store.answerMore(request, chunkBytes: c.chunkBytes, pair: pair, node: node, epoch: epoch, origin: node)
                    }
                    if !committed.items.isEmpty { await dispatcher.committed(committed.items, keys: committed.keys) }
                case .read, .unread, .delete, .file, .folders:
                    do {
                        if request.request.kind == .folders {
                            try await answerFolders(request, epoch: epoch, c)
                        } else {
                            try await applyDeviceChange(request, epoch: epoch, c)
                        }
                    } catch {
                        held.insert(request.pin)
                        requestsWanted = true
                    }
                case .send, .reply, .forward:
                    break  // the outgoing queue's
                case .imLogin, .imSend, .imPresence, .imLogout:
                    break  // the Collaboration Service's (not in this list)
                case .policyApplied, .policyRefused, .commandDone, .commandRefused:
                    break  // the Policy Service's (not in this list)
                }
            }
            if !held.isEmpty {
                try? await clock.sleep(ms: 1_000)
                if servingEpoch == epoch { wakeOne() }
            }
        } catch {
            logger.warning("answering device requests failed; retrying", metadata: ["error": "\(describe(error))"])
            try? await clock.sleep(ms: 500)
            if servingEpoch == epoch { requestsWanted = true; wakeOne() }
        }
    }
}
