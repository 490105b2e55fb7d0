import BrambleCore
import BrambleNet
import Foundation
import Logging
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
        public init(imap: HostPort, servicePassword: String) {
            self.imap = imap
            self.servicePassword = servicePassword
        }
    }

    enum Job: Sendable {
        case reload(epoch: UInt64)
        case requests(epoch: UInt64)
        case check(WatchedMailbox, epoch: UInt64)
    }

    enum Outcome: Sendable {
        case committed(WatchedMailbox, ConfigStore.CommittedPushes, more: Bool)
        case unchanged
        /// Someone else moved the watermark: reload it.
        case stale
        case failed(String)
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
    private var byEmail: [String: Int64] = [:]
    /// Mailboxes due for a check, notified ones first; each at most once.
    private var due: [Int64] = []
    private var inProgress: Set<Int64> = []
    private var failing: [Int64: String] = [:]
    private var reloadWanted = false
    private var requestsWanted = false
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
        await withGracefulShutdownHandler {
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
        } onGracefulShutdown: {
            Task { await self.finish() }
        }
    }

    /// Every `sweepIntervalMs`, every mailbox is due (after a reload of the list, so users
    /// added or removed since are watched or dropped); on a standby, a probe of the mail
    /// server keeps its health parameter true.
    private func sweep(_ configuration: Configuration) async {
        while !finished {
            if servingEpoch != nil {
                reloadWanted = true
                wakeOne()
            } else {
                let reachable: String?
                do {
                    try await IMAPSession.with(to: configuration.imap, connectTimeout: .seconds(2)) { _ in }
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
        reloadWanted = true
        requestsWanted = true
        healthBox.withLockedValue { $0.servingEpoch = epoch; $0.watched = 0; $0.total = 0; $0.failing = [] }
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
    public func notify(email: String) {
        guard servingEpoch != nil else { return }
        guard let id = byEmail[email.lowercased()] else {
            reloadWanted = true  // a user added since the last reload
            wakeOne()
            return
        }
        due.removeAll { $0 == id }
        due.insert(id, at: 0)
        wakeOne()
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
        reloadWanted = true
        wakeOne()
    }

    /// Device requests were recorded: act on them.
    func requestsRecorded() {
        guard servingEpoch != nil else { return }
        requestsWanted = true
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
        if reloadWanted { reloadWanted = false; return .reload(epoch: epoch) }
        if requestsWanted { requestsWanted = false; return .requests(epoch: epoch) }
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
        case .reload(let epoch):
            do {
                let list = try await withDeadline(ms: 10_000, clock: clock) { [store] in try await store.watchedMailboxes() }
                loaded(list, epoch: epoch)
            } catch {
                logger.warning("loading the watched mailboxes failed; retrying", metadata: ["error": "\(describe(error))"])
                try? await clock.sleep(ms: 500)
                if servingEpoch == epoch { reloadWanted = true; wakeOne() }
            }
        case .requests(let epoch):
            await answerRequests(epoch: epoch, configuration)
        case .check(let mailbox, let epoch):
            let outcome = await Self.check(mailbox, epoch: epoch, configuration: configuration, store: store, pair: pair, node: node,
                                           clock: clock)
            if case .committed(_, let committed, _) = outcome, !committed.items.isEmpty {
                await dispatcher.committed(committed.items, keys: committed.keys)
                metrics.mailsEnqueued(committed.items.count)
            }
            checked(mailbox, outcome, epoch: epoch)
        }
    }

    private func loaded(_ list: [WatchedMailbox], epoch: UInt64) {
        guard servingEpoch == epoch else { return }
        var fresh: [Int64: WatchedMailbox] = [:]
        for m in list {
            // A check under way knows the watermark better than the list read before it ended.
            fresh[m.userID] = inProgress.contains(m.userID) ? (mailboxes[m.userID] ?? m) : m
        }
        mailboxes = fresh
        byEmail = Dictionary(list.map { ($0.email.lowercased(), $0.userID) }, uniquingKeysWith: { a, _ in a })
        failing = failing.filter { fresh[$0.key] != nil }
        let queued = Set(due)
        due = due.filter { fresh[$0] != nil } + list.map(\.userID).filter { !queued.contains($0) }
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
            if more { due.insert(mailbox.userID, at: 0) }
        case .unchanged:
            failing[mailbox.userID] = nil
        case .stale:
            reloadWanted = true
        case .failed(let error):
            if failing[mailbox.userID] == nil {
                logger.warning("mailbox check failed", metadata: ["user": "\(mailbox.email)", "error": "\(error)"])
            }
            failing[mailbox.userID] = error
        }
        publishHealth()
        wakeAll()
    }

    private func publishHealth() {
        let total = mailboxes.count
        let failed = failing.compactMap { id, error in mailboxes[id].map { "\($0.email): \(error)" } }.sorted()
        let watched = mailboxes.values.filter { $0.uidValidity != nil && failing[$0.userID] == nil }.count
        healthBox.withLockedValue {
            $0.total = total
            $0.watched = watched
            $0.failing = Array(failed.prefix(5))
            $0.failingCount = failed.count
        }
    }

    // MARK: One mailbox

    /// One check: an IMAP session as the service account, the new mail fetched, and the
    /// mail and the watermark committed together.
    static func check(_ m: WatchedMailbox, epoch: UInt64, configuration c: Configuration, store: ConfigStore, pair: String,
                      node: String, clock: any NodeClock) async -> Outcome {
        let fetched: (validity: UInt64, last: UInt64, mails: [FetchedMail], more: Bool)?
        do {
            fetched = try await withDeadline(ms: 20_000, clock: clock) {
                try await Self.fetch(m, configuration: c, store: store)
            }
        } catch {
            let reason = Self.describeIMAP(error)
            _ = try? await withDeadline(ms: 5_000, clock: clock) {
                try await store.recordMailboxCheck(m, error: reason, pair: pair, node: node, epoch: epoch)
            }
            return .failed(reason)
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
        } catch {
            return .failed("recording the mailbox's mail failed: \(describe(error))")
        }
    }

    /// What is new in the mailbox (nil: nothing; the watermark stands).
    static func fetch(_ m: WatchedMailbox, configuration c: Configuration, store: ConfigStore) async throws
        -> (validity: UInt64, last: UInt64, mails: [FetchedMail], more: Bool)? {
        try await IMAPSession.with(to: c.imap, connectTimeout: .seconds(2)) { session in
            try await session.login(user: "\(m.email)*\(c.serviceUser)", password: c.servicePassword)
            let selected = try await session.select("INBOX", readOnly: true)
            guard let validity = selected.uidValidity, let next = selected.uidNext else {
                throw IMAPSession.Refused(command: "EXAMINE", status: .no, text: "no UIDVALIDITY or UIDNEXT")
            }
            let plan = MailboxPlan.plan(storedValidity: m.uidValidity, lastUID: m.lastUID, uidValidity: validity, uidNext: next,
                                        activeSince: m.activeSince, checkedAt: m.checkedAt)
            let result: (validity: UInt64, last: UInt64, mails: [FetchedMail], more: Bool)?
            switch plan {
            case .upToDate:
                result = nil
            case .fetch(let from):
                var uids = try await session.uidFetch("\(from):*", "UID").map(\.uid).filter { $0 >= from }.sorted()
                let more = uids.count > c.maxMessagesPerCheck
                uids = Array(uids.prefix(c.maxMessagesPerCheck))
                guard let last = uids.last else { return nil }
                let mails = try await Self.read(uids, validity: validity, session: &session, c)
                result = (validity, last, mails, more)
            case .resync(let v, let last, let since):
                // SEARCH SINCE has a day's precision in the server's zone: search a day
                // early, then keep what INTERNALDATE puts at or after `since`.
                let found = try await session.run("UID SEARCH SINCE \(IMAPDate.searchDay(since.addingTimeInterval(-86_400)))")
                var uids: [UInt64] = []
                for case .search(let n) in found.untagged { uids += n.map(UInt64.init) }
                var recent: [UInt64] = []
                if !uids.isEmpty {
                    for (uid, attributes) in try await session.uidFetch(uids.map(String.init).joined(separator: ","), "UID INTERNALDATE") {
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

    /// Envelope and structure of each message, then its text part's first bytes.
    static func read(_ uids: [UInt64], validity: UInt64, session: inout IMAPSession, _ c: Configuration) async throws -> [FetchedMail] {
        guard !uids.isEmpty else { return [] }
        let set = uids.map(String.init).joined(separator: ",")
        var mails: [FetchedMail] = []
        for (uid, attributes) in try await session.uidFetch(set, "UID ENVELOPE BODYSTRUCTURE").sorted(by: { $0.uid < $1.uid }) {
            guard uids.contains(uid), let envelopeValue = attributes["ENVELOPE"], let envelope = MailEnvelope(envelopeValue) else { continue }
            let parts = attributes["BODYSTRUCTURE"].map { MailStructure.parts($0) } ?? []
            let textPart = MailStructure.textPart(parts)
            var raw: [UInt8]?
            if let textPart {
                let n = min(Int(clamping: textPart.size), MailComposer.fetchBytes(maxTextBytes: c.maxTextBytes))
                let section = "BODY.PEEK[\(textPart.section)]<0.\(max(n, 1))>"
                let answer = try await session.uidFetch("\(uid)", section)
                raw = answer.first?.attributes.first { $0.name.hasPrefix("BODY[") }?.value.bytes
            }
            let composed = MailComposer.compose(envelope: envelope, parts: parts, text: textPart, rawText: raw, uidValidity: validity,
                                                uid: uid, chunkBytes: c.chunkBytes, maxTextBytes: c.maxTextBytes)
            mails.append(FetchedMail(uid: uid, item: composed.item, text: composed.text, firstChunkBytes: composed.firstChunkBytes))
        }
        return mails
    }

    static func describeIMAP(_ error: any Error) -> String {
        if let refused = error as? IMAPSession.Refused { return refused.description }
        if error is DeadlineExceeded { return "the mail server did not answer within 20 s" }
        return "mail server unreachable: \(error)"
    }

    // MARK: Device requests

    private func answerRequests(epoch: UInt64, _ c: Configuration) async {
        do {
            let pending = try await withDeadline(ms: 5_000, clock: clock) { [store] in try await store.pendingRequests() }
            for request in pending where servingEpoch == epoch {
                let committed = try await withDeadline(ms: 5_000, clock: clock) { [store, pair, node] in
                    try await store.answerMore(request, chunkBytes: c.chunkBytes, pair: pair, node: node, epoch: epoch, origin: node)
                }
                if !committed.items.isEmpty { await dispatcher.committed(committed.items, keys: committed.keys) }
            }
        } catch {
            logger.warning("answering device requests failed; retrying", metadata: ["error": "\(describe(error))"])
            try? await clock.sleep(ms: 500)
            if servingEpoch == epoch { requestsWanted = true; wakeOne() }
        }
    }
}
