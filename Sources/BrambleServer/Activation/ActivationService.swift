import BrambleCore
import BrambleNet
@preconcurrency import Crypto
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOSSL
import ServiceLifecycle

/// Over-the-air activation on the primary (the Messaging Agent's activation e-mails and
/// the Policy Service, seeds 001 and 002):
/// 1. finds the `etp.dat` request the relay mailed to a user with an activation pending
///    (the mail server's notification first, a sweep every few seconds after), answers it
///    through the relay (`ActivationResponse`), and only then removes the mail;
/// 2. checks the device's key confirmation; on success the device exists with the master
///    key CPace gave both sides, and its signed IT policy is queued;
/// 3. the Policy Service (`PolicyService`) queues the service books once the device
///    confirms the policy.
/// Every step is recorded in the configuration database before its answer leaves, so a
/// new primary finishes a run the old one began.
public actor ActivationService: Service, LeaseFollower {
    public struct Configuration: Sendable {
        /// The mail server and the service account (the Messaging Agent's).
        public var mail: MessagingAgent.Configuration
        public var srpID: String
        /// The SRP key: the relay's seal on a request mail is checked with it.
        public var srpKey: SymmetricKey
        /// Pending activations' mailboxes are looked at least this often…
        public var sweepMs: UInt64 = 3_000
        /// …at most this many at a time (in turn, when there are more).
        public var sweepMax = 50
        public init(mail: MessagingAgent.Configuration, srpID: String, srpKey: SymmetricKey) {
            (self.mail, self.srpID, self.srpKey) = (mail, srpID, srpKey)
        }
    }

    enum Event: Sendable {
        case notified(String)
        case confirm(ActivationFrame)
        /// The sweep's clock.
        case tick
    }

    public nonisolated let followerName = "activation"
    private let configuration: Configuration?
    private let store: ConfigStore
    private let dispatcher: Dispatcher
    private let outbound: SRPOutbound
    private let pair: String
    private let node: String
    private let clock: any NodeClock
    private let metrics: NodeMetrics?
    private let logger: Logger
    private let events = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .bufferingNewest(1_024))
    private let serving = ServingEpoch()
    private var domain: ConfigStore.DomainKey?
    private var lastSweepMs: UInt64 = 0
    /// The last user a sweep looked at (the next sweep goes on after it).
    private var sweepCursor: Int64 = 0

    public init(configuration: Configuration?, store: ConfigStore, dispatcher: Dispatcher, outbound: SRPOutbound,
                pair: String, node: String, clock: any NodeClock, metrics: NodeMetrics? = nil, logger: Logger) {
        (self.configuration, self.store, self.dispatcher, self.outbound) = (configuration, store, dispatcher, outbound)
        (self.pair, self.node, self.clock, self.metrics, self.logger) = (pair, node, clock, metrics, logger)
    }

    // MARK: What the rest of the node calls

    /// The mail server says `email`'s INBOX changed: look for a request there now.
    public nonisolated func notify(email: String) {
        guard serving.current != nil else { return }
        events.continuation.yield(.notified(email.lowercased()))
    }

    /// A device's key confirmation arrived over the SRP link.
    public nonisolated func received(_ frame: ActivationFrame) {
        events.continuation.yield(.confirm(frame))
    }

    public func serve(epoch: UInt64) async {
        serving.serve(epoch)
        lastSweepMs = 0
        events.continuation.yield(.tick)
    }

    /// Returns once no pass of `epoch` is under way (at most about 2 s; a pass's IMAP
    /// session and statements have their own deadlines, and every write is fenced).
    public nonisolated func stopServing(epoch: UInt64) async {
        await serving.stop(epoch)
    }

    // MARK: The loop

    public func run() async throws {
        guard configuration != nil else {
            try? await gracefulShutdown()
            return
        }
        // The sweep's clock: a tick wakes the loop to see whether a sweep is due.
        await runTickingLoop(events.continuation, tick: .tick, everyMs: 500) { await self.loop() }
    }

    private func loop() async {
        for await event in events.stream {
            guard let c = configuration else { continue }
            await serving.pass { epoch in await self.pass(event, epoch: epoch, c) }
        }
    }

    private func pass(_ event: Event, epoch: UInt64, _ c: Configuration) async {
        do {
            if domain == nil { domain = try await store.domainKey() }
        } catch {
            logger.warning("the domain's signing key could not be loaded", metadata: ["error": "\(describe(error))"])
            return
        }
        guard let domain else { return }
        var notified: String?
        switch event {
        case .confirm(let frame): return await confirm(frame, epoch: epoch, domain: domain)
        case .notified(let email): notified = email
        case .tick: break
        }
        let now = clock.nowMs()
        let sweep = now >= lastSweepMs + c.sweepMs
        guard sweep || notified != nil else { return }
        if sweep { lastSweepMs = now }
        let candidates: [ConfigStore.ActivationCandidate]
        do { candidates = try await store.activationCandidates() } catch {
            logger.warning("pending activations could not be read", metadata: ["error": "\(describe(error))"])
            return
        }
        if let notified {
            for candidate in candidates where candidate.email == notified { await check(candidate, epoch: epoch, domain: domain, c) }
        }
        guard sweep else { return }
        // A bounded sweep: the next `sweepMax` mailboxes after the last one looked at, in
        // user order, so a thousand pending activations are all looked at in turn (the
        // mail server's notifications find new requests at once meanwhile).
        let ordered = candidates.sorted { $0.userID < $1.userID }
        let due = Array((ordered.filter { $0.userID > sweepCursor } + ordered.filter { $0.userID <= sweepCursor }).prefix(c.sweepMax))
        for candidate in due where candidate.email != notified {
            guard serving.current == epoch else { return }
            await check(candidate, epoch: epoch, domain: domain, c)
        }
        sweepCursor = due.last?.userID ?? 0
    }

    /// Looks in one mailbox for activation requests; answers each, then removes it.
    private func check(_ candidate: ConfigStore.ActivationCandidate, epoch: UInt64, domain: ConfigStore.DomainKey, _ c: Configuration) async {
        do {
            try await withDeadline(ms: 20_000, clock: clock) { [store, srpID = c.srpID, pair, node, logger, outbound, serving, metrics] in
                try await IMAPSession.with(to: c.mail.imap, tls: c.mail.tls, connectTimeout: .seconds(2)) { session in
                    try await session.login(user: "\(candidate.email)*\(c.mail.serviceUser)", password: c.mail.servicePassword)
                    _ = try await session.select("INBOX")
                    let uids = try await session.uidSearch(header: Activation.mailHeader, value: "1").prefix(16)
                    for uid in uids {
                        guard serving.current == epoch else { break }
                        // One mail's trouble (too large, unreadable) is that mail's: it is
                        // answered as unreadable and removed like any other.
                        var (etp, mailID, sealed, stale): ([UInt8], String, Bool, Bool) = ([], "", false, false)
                        do {
                            let fetched = try await session.uidFetch(
                                "\(uid)", "INTERNALDATE ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (\(Activation.sealHeader.uppercased()))]")
                            let attributes = fetched.first { $0.uid == uid }?.attributes
                            if let received = attributes?["INTERNALDATE"]?.text.flatMap(IMAPDate.parse) {
                                stale = Date().timeIntervalSince(received) > Activation.requestLifetimeSeconds
                            }
                            mailID = Activation.printable(String((attributes?["ENVELOPE"].flatMap(MailEnvelope.init)?.messageID ?? "").prefix(998)))
                            let parts = attributes?["BODYSTRUCTURE"].map { MailStructure.parts($0) } ?? []
                            if let part = parts.first(where: { $0.name?.lowercased() == Activation.attachmentName }),
                               let raw = try await session.uidFetchSection(uid, section: part.section, maxBytes: 4 * Activation.maxMessageLength) {
                                etp = MailText.decodeTransfer(raw, encoding: part.encoding)
                            }
                            let headers = String(decoding: attributes?.first { $0.name.hasPrefix("BODY[HEADER") }?.value.bytes ?? [], as: UTF8.self)
                            sealed = Activation.isSealed(etp: etp, headers: headers, srpID: srpID, srpKey: c.srpKey)
                        } catch is IMAPSession.TooLarge {
                            etp = []
                        }
                        // Not through the relay (no valid seal), or too old for its device to be
                        // waiting: removed, neither answered nor counted.
                        if !sealed || stale {
                            metrics?.activationRequest(stale ? "stale" : "unsealed")
                            logger.notice(stale ? "an activation request mail too old to answer was removed"
                                                : "an activation request mail without the relay's seal was removed", metadata: ["user": "\(candidate.email)"])
                            _ = try await session.uidStore("\(uid)", flags: ["\\Deleted"], add: true)
                            try await session.uidExpunge("\(uid)")
                            continue
                        }
                        let request = try? ActivationRequest.decode(etp)
                        let answer = try await store.answerActivationRequest(candidate, etp: etp, mailID: mailID, srpID: srpID, domain: domain,
                                                                             pair: pair, node: node, epoch: epoch)
                        if let request {
                            var frame: ActivationFrame?
                            switch answer {
                            case .respond(let response):
                                metrics?.activationRequest("answered")
                                frame = ActivationFrame(phase: .response, pin: request.pin, srpID: srpID, body: response.encoded())
                                logger.info("activation request answered", metadata: ["device.pin": "\(request.pin)", "user": "\(candidate.email)"])
                            case .refuse(let reason):
                                metrics?.activationRequest("refused")
                                frame = ActivationFrame(phase: .result, pin: request.pin, srpID: srpID,
                                                        body: ActivationResult(sessionID: request.sessionID, accepted: false, reason: reason).encoded())
                                logger.notice("activation request refused", metadata: ["device.pin": "\(request.pin)", "user": "\(candidate.email)", "reason": "\(reason)"])
                            case .discard:
                                frame = nil
                            }
                            if let frame { outbound.send([.activation(frame)], epoch: epoch) }
                        } else {
                            metrics?.activationRequest("refused")
                            logger.notice("an unreadable activation request was removed", metadata: ["user": "\(candidate.email)"])
                        }
                        // Answered and recorded; the request leaves the mailbox, unless this node
                        // stopped serving meanwhile (its answer may not have left: the next
                        // primary reads the mail again and gives the same answer).
                        guard serving.current == epoch else { break }
                        _ = try await session.uidStore("\(uid)", flags: ["\\Deleted"], add: true)
                        try await session.uidExpunge("\(uid)")
                    }
                    await session.logout()
                }
            }
        } catch {
            logger.warning("activation check of a mailbox failed", metadata: ["user": "\(candidate.email)", "error": "\(describe(error))"])
        }
    }

    private func confirm(_ frame: ActivationFrame, epoch: UInt64, domain: ConfigStore.DomainKey) async {
        guard let confirm = try? ActivationConfirm.decode(frame.body) else { return }
        do {
            let (result, committed) = try await withDeadline(ms: 10_000, clock: clock) { [store, pair, node] in
                try await store.confirmActivation(confirm, pin: frame.pin, domain: domain, pair: pair, node: node, epoch: epoch)
            }
            if let committed {
                // The relay learns the device's key with the items (the Dispatcher warms it).
                await dispatcher.committed(committed.items, keys: committed.keys)
            }
            metrics?.activationConfirmation(accepted: result.accepted)
            outbound.send([.activation(ActivationFrame(phase: .result, pin: frame.pin, srpID: configuration?.srpID ?? "", body: result.encoded()))], epoch: epoch)
            logger.info(result.accepted ? "activation key confirmed; IT policy sent" : "activation key confirmation refused",
                        metadata: ["device.pin": "\(frame.pin)", "reason": "\(result.reason)"])
        } catch {
            // The device sends its confirmation again.
            logger.warning("activation confirmation not recorded", metadata: ["device.pin": "\(frame.pin)", "error": "\(describe(error))"])
        }
    }
}
