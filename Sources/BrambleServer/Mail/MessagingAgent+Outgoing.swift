import BrambleCore
import BrambleNet
import Foundation
import Logging

/// Mail the devices send (send, reply, forward): composed here, submitted to the mail
/// server's submission service as the user (SASL PLAIN, the service account acting for
/// the user), and filed: Postfix's copy in the user's Sent folder is marked read.
///
/// Exactly once across failover: each mail's Message-ID is derived from (PIN, request
/// number), and the mail server files a copy of every message it accepts from this
/// service into the sender's Sent folder, in the same queue file. An attempt that ended
/// without an answer (a node killed after the final dot, a lost reply) is IN DOUBT; it is
/// settled by that copy: found, the mail was sent; not found once the attempt can no
/// longer complete (its deadline, the server's timeout and delivery's grace have passed
/// on the database's clock), it is sent again under the same Message-ID.
extension MessagingAgent {
    /// What an attempt may take past its deadline before a missing Sent copy proves it
    /// failed: the submission server drops a silent client after its timeout, and the
    /// copy of a message it accepted reaches Sent within the grace.
    static func settleMs(_ c: Configuration) -> Int { c.submissionServerTimeoutMs + c.witnessGraceMs }

    /// One pass over the outgoing queue (the `.outgoing` job); true if something is left
    /// to look at soon (a retry, an in-doubt attempt, a copy to file).
    func processOutgoing(epoch: UInt64, _ c: Configuration) async -> Bool {
        let queue: (open: [OutgoingMail], unfiled: [OutgoingMail], waiting: Bool)
        do {
            queue = try await withDeadline(ms: 5_000, clock: clock) { [store] in try await store.openOutgoingMail(settleMs: Self.settleMs(c)) }
        } catch {
            logger.warning("reading the outgoing mail failed; retrying", metadata: ["error": "\(describe(error))"])
            return true
        }
        for mail in queue.open where isServing(epoch) {
            switch mail.state {
            case .pending where !mail.deviceActive:
                // A lost device, disabled: what it asked to send does not go out.
                await finish(mail, attempt: nil, .failed(reason: "not sent: the device was disabled"), epoch: epoch)
            case .pending: await submit(mail, epoch: epoch, c)
            case .submitting: await resolve(mail, epoch: epoch, c)
            case .sent, .failed: break
            }
        }
        for mail in queue.unfiled where isServing(epoch) { await file(mail, epoch: epoch, c) }
        return queue.waiting || !queue.open.isEmpty || !queue.unfiled.isEmpty
    }

    // MARK: Submitting

    /// Composes the mail (reading the original for a reply or forward), claims an attempt,
    /// and submits it; records the outcome if there is one.
    private func submit(_ mail: OutgoingMail, epoch: UInt64, _ c: Configuration) async {
        guard let submission = c.submission else {
            await finish(mail, attempt: nil, .failed(reason: "this server sends no mail (no smtp-submission is set)"), epoch: epoch)
            return
        }
        let composed: (message: [UInt8], recipients: [String])
        do {
            composed = try await compose(mail, c)
        } catch let refusal as SendRefusal {
            await finish(mail, attempt: nil, .failed(reason: refusal.reason), epoch: epoch)
            return
        } catch {
            let (reason, _) = Self.describeIMAP(error)
            await finish(mail, attempt: nil, retryOrGiveUp(mail, "reading the original failed: \(reason)"), epoch: epoch)
            return
        }
        // The deadline starts before the claim, so it ends no later than the database's
        // deadline_at: whatever this attempt does, it does before the resolver may decide.
        let startedMs = clock.nowMs()
        let attempt: OutgoingMail.Attempt?
        do {
            attempt = try await withDeadline(ms: 5_000, clock: clock) { [store, pair, node] in
                try await store.claimOutgoingMail(mail.key, deadlineMs: c.sendDeadlineMs, pair: pair, node: node, epoch: epoch)
            }
        } catch {
            logger.warning("claiming an outgoing mail failed", metadata: ["message_id": "\(mail.messageID)", "error": "\(describe(error))"])
            return
        }
        guard let attempt else { return }  // taken or ended meanwhile
        let deadlineMs = startedMs &+ UInt64(c.sendDeadlineMs)
        let result: SubmissionResult
        do {
            result = try await withDeadline(ms: c.sendDeadlineMs, clock: clock) { [clock] in
                try await SMTPSession.with(to: submission, tls: c.tls, connectTimeout: .seconds(2)) { smtp in
                    try await smtp.authenticatePlain(as: mail.email, login: c.serviceUser, password: c.servicePassword)
                    return await smtp.submit(from: mail.email, to: composed.recipients, message: composed.message) {
                        // Past the deadline, the final dot is not sent: the server drops the message.
                        if clock.nowMs() >= deadlineMs { throw PastDeadline() }
                    }
                }
            }
        } catch {
            // Connecting, logging in, or the deadline before the dot: nothing was queued.
            // (A deadline that fires after the dot leaves the attempt in doubt: below.)
            result = error is DeadlineExceeded ? .unknown("no answer within \(c.sendDeadlineMs) ms") : .notSent("\(error)")
        }
        let outcome: ConfigStore.OutgoingResult?
        switch result {
        case .accepted(let reply):
            metrics.mailSubmitted("accepted")
            outcome = .sent(detail: MailText.prefix(MailText.printable(reply.text), maxBytes: 512), witness: false)
        case .refused(let stage, let reply):
            switch SubmissionFailure.classify(stage: stage, reply: reply, limit: nil, size: composed.message.count) {
            case .permanent(let reason):
                metrics.mailSubmitted("refused")
                outcome = .failed(reason: reason)
            case .temporary(let reason):
                metrics.mailSubmitted("retried")
                outcome = retryOrGiveUp(mail, reason)
            }
        case .notSent(let reason):
            metrics.mailSubmitted("retried")
            outcome = retryOrGiveUp(mail, MailText.prefix(MailText.printable("not sent: \(reason)"), maxBytes: 512))
        case .unknown(let reason):
            // In doubt: the row stays submitting, and the resolver settles it.
            metrics.mailSubmitted("unknown")
            logger.warning("a device's mail is in doubt: the mail server's answer to it was lost", metadata: [
                "message_id": "\(mail.messageID)", "reason": "\(MailText.printable(reason))"])
            outcome = nil
        }
        if let outcome { await finish(mail, attempt: attempt, outcome, epoch: epoch) }
    }

    /// A temporary failure: again later (backing off to a minute), or failed for good once
    /// the mail is a day old.
    private func retryOrGiveUp(_ mail: OutgoingMail, _ reason: String) -> ConfigStore.OutgoingResult {
        if Date().timeIntervalSince(mail.createdAt) > 24 * 3600 {
            return .failed(reason: "not sent within 24 hours; last: \(reason)")
        }
        // Backs off with the attempts made, and with age for failures before any attempt
        // (reading the original while the mail server is away).
        let age = Int(Date().timeIntervalSince(mail.createdAt) / 10)
        return .retry(reason: reason, afterMs: min(60_000, 1_000 << min(max(mail.attempts, age), 6)))
    }

    /// Records an outcome and sends the device its `sent` item.
    private func finish(_ mail: OutgoingMail, attempt: OutgoingMail.Attempt?, _ result: ConfigStore.OutgoingResult, epoch: UInt64) async {
        do {
            let committed = try await withDeadline(ms: 5_000, clock: clock) { [store, pair, node] in
                try await store.finishOutgoingMail(mail, attempt: attempt, result: result, pair: pair, node: node, epoch: epoch, origin: node)
            }
            if let committed, !committed.items.isEmpty { await dispatcher.committed(committed.items, keys: committed.keys) }
            if case .failed(let reason) = result {
                logger.notice("a device's mail failed", metadata: ["message_id": "\(mail.messageID)", "reason": "\(reason)"])
            }
        } catch let fenced as ConfigStore.FencedError {
            metrics.fencedWrites(1)
            logger.notice("an outgoing mail's outcome not recorded: \(fenced)", metadata: ["message_id": "\(mail.messageID)"])
        } catch {
            // Sent but not recorded: the row stays submitting and the resolver finds the copy.
            logger.warning("recording an outgoing mail's outcome failed", metadata: ["message_id": "\(mail.messageID)", "error": "\(describe(error))"])
        }
    }

    // MARK: In doubt

    /// An attempt that ended without an answer (here or on the last primary): its copy
    /// in Sent says it was sent; no copy once the attempt can no longer complete says it
    /// was not, and it goes out again with the same Message-ID. Else it waits.
    private func resolve(_ mail: OutgoingMail, epoch: UInt64, _ c: Configuration) async {
        guard let attempt = mail.attempt else { return }
        // Read before the search: an attempt over then was over during the search.
        let over = mail.attemptOver
        let found: Bool
        do {
            found = try await withDeadline(ms: 10_000, clock: clock) { [logger] in
                try await Self.inSent(mail, c, logger: logger) { _, _ in }
            }
        } catch {
            logger.debug("searching Sent for an in-doubt mail failed; later", metadata: ["message_id": "\(mail.messageID)", "error": "\(describe(error))"])
            return
        }
        if found {
            metrics.mailInDoubtSettled("witness")
            logger.notice("an in-doubt mail was sent: its copy is in Sent", metadata: ["message_id": "\(mail.messageID)"])
            await finish(mail, attempt: attempt, .sent(detail: "its copy was found in Sent", witness: true), epoch: epoch)
        } else if over {
            metrics.mailInDoubtSettled("resent")
            logger.notice("an in-doubt mail was not sent: no copy in Sent; sending it again", metadata: ["message_id": "\(mail.messageID)"])
            await finish(mail, attempt: attempt, .retry(reason: "in doubt, no copy in Sent after the attempt's deadline: sent again", afterMs: 0), epoch: epoch)
        }
    }

    // MARK: Filing

    /// Marks the Sent copy of a sent mail read (as a desktop client files what it sent).
    /// The copy is delivered moments after the mail server accepted the mail: not there
    /// yet, look again; after an hour, give up.
    private func file(_ mail: OutgoingMail, epoch: UInt64, _ c: Configuration) async {
        let found: Bool
        do {
            found = try await withDeadline(ms: 10_000, clock: clock) { [logger] in
                try await Self.inSent(mail, c, logger: logger) { session, uids in
                    try await session.uidStore(uids.map(String.init).joined(separator: ","), flags: ["\\Seen"], add: true)
                }
            }
        } catch {
            logger.debug("filing a sent mail failed; later", metadata: ["message_id": "\(mail.messageID)", "error": "\(describe(error))"])
            found = false
        }
        let giveUp = Date().timeIntervalSince(mail.createdAt) > 3600
        if !found, giveUp { logger.warning("a sent mail's copy never reached Sent; not filed", metadata: ["message_id": "\(mail.messageID)"]) }
        _ = try? await withDeadline(ms: 5_000, clock: clock) { [store, pair, node] in
            // Soon at first (the copy lands moments after the 250), then every 10 s.
            let retry = Date().timeIntervalSince(mail.createdAt) < 60 ? 500 : 10_000
            try await store.recordFiling(mail.key, filed: found, retryAfterMs: found || giveUp ? nil : retry, pair: pair, node: node, epoch: epoch)
        }
    }

    /// Whether the user's Sent folder holds the mail (searched by its Message-ID, every
    /// hit's header read back to confirm it); `then` runs on the hits, with Sent selected
    /// read-write.
    static func inSent(_ mail: OutgoingMail, _ c: Configuration, logger: Logger,
                       then: (inout IMAPSession, [UInt64]) async throws -> Void) async throws -> Bool {
        try await IMAPSession.with(to: c.imap, tls: c.tls, connectTimeout: .seconds(2)) { session in
            try await session.login(user: "\(mail.email)*\(c.serviceUser)", password: c.servicePassword)
            _ = try await session.select(c.sentFolder)
            let candidates = try await session.uidSearch(header: "Message-ID", value: mail.messageID)
            var hits: [UInt64] = []
            if !candidates.isEmpty {
                for (uid, attributes) in try await session.uidFetch(candidates.map(String.init).joined(separator: ","), "UID ENVELOPE")
                where attributes["ENVELOPE"].flatMap(MailEnvelope.init)?.messageID == mail.messageID {
                    hits.append(uid)
                }
            }
            if !hits.isEmpty { try await then(&session, hits) }
            await session.logout()
            return !hits.isEmpty
        }
    }

    // MARK: Composing

    struct PastDeadline: Error, CustomStringConvertible { var description: String { "the attempt's deadline passed" } }

    /// Why a mail cannot be sent at all: the device hears it as the reason.
    struct SendRefusal: Error { var reason: String }

    /// The message as it goes out, and its recipients.
    private func compose(_ mail: OutgoingMail, _ c: Configuration) async throws -> (message: [UInt8], recipients: [String]) {
        func addresses(_ list: [String]) throws -> [String] {
            try list.map { a in
                guard let parsed = MailAddress.parse(a) else { throw SendRefusal(reason: "invalid address \(MailText.printable(String(a.prefix(254))).debugDescription)") }
                return parsed
            }
        }
        var draft = OutgoingDraft(fromAddress: mail.email, fromName: mail.displayName.isEmpty ? nil : mail.displayName, to: [], cc: [],
                                  subject: "", body: "", messageID: mail.messageID, date: Date())
        switch mail.request {
        case .more, .read, .unread, .delete, .file, .folders, .imLogin, .imSend, .imPresence, .imLogout, .policyApplied, .policyRefused, .commandDone, .commandRefused:
            throw SendRefusal(reason: "a \(mail.request.verb) request sends no mail")
        case .send(let to, let cc, let subject, let body):
            (draft.to, draft.cc, draft.subject, draft.body) = (try addresses(to), try addresses(cc), subject, body)
            return (MessageComposer.compose(draft), Self.unique(draft.to + draft.cc))
        case .reply(let id, let body, let all):
            let original = try await original(id, of: mail, attachments: false, c)
            let recipients = MessageComposer.replyRecipients(to: original, user: mail.email, all: all)
            (draft.to, draft.cc, draft.body) = (recipients.to, recipients.cc, body)
            draft.subject = MessageComposer.replySubject(original.subject)
            guard !draft.to.isEmpty else { throw SendRefusal(reason: "the original names no one to reply to") }
            return (MessageComposer.reply(draft, to: original), Self.unique(draft.to + draft.cc))
        case .forward(let id, let to, let cc, let body):
            (draft.to, draft.cc, draft.body) = (try addresses(to), try addresses(cc), body)
            let original = try await original(id, of: mail, attachments: true, c)
            draft.subject = MessageComposer.forwardSubject(original.subject)
            return (MessageComposer.forward(draft, of: original), Self.unique(draft.to + draft.cc))
        }
    }

    static func unique(_ addresses: [String]) -> [String] {
        var seen: Set<String> = []
        return addresses.filter { seen.insert($0.lowercased()).inserted }
    }

    /// The mail replied to or forwarded, read whole from the user's mailbox: found where the
    /// device's copy came from, else by its Message-ID in the INBOX, then in the other
    /// folders (at most 50). Its full text (up to
    /// `maxQuoteBytes`) and, for a forward, every attachment part as it is.
    private func original(_ messageID: String, of mail: OutgoingMail, attachments: Bool, _ c: Configuration) async throws -> OriginalMail {
        let location = try await store.mailLocation(pin: mail.key.pin, messageID: messageID)
        return try await withDeadline(ms: 30_000, clock: clock) {
            try await IMAPSession.with(to: c.imap, tls: c.tls, connectTimeout: .seconds(2)) { session in
                try await session.login(user: "\(mail.email)*\(c.serviceUser)", password: c.servicePassword)
                let selected = try await session.select("INBOX", readOnly: true)
                var candidates: [UInt64] = []
                if let location, location.uidValidity == selected.uidValidity { candidates = [location.uid] }
                var found = try await Self.readOriginal(messageID, candidates, attachments: attachments, &session, c)
                if found == nil {
                    candidates = try await session.uidSearch(header: "Message-ID", value: messageID)
                    found = try await Self.readOriginal(messageID, candidates, attachments: attachments, &session, c)
                }
                // Filed or trashed since (from the device or a desktop): the other folders.
                for folder in try await (found == nil ? session.list() : []).prefix(Self.maxSearchedFolders)
                where found == nil && folder.name != "INBOX" && Self.isSelectable(folder) {
                    _ = try await session.select(folder.name, readOnly: true)
                    candidates = try await session.uidSearch(header: "Message-ID", value: messageID)
                    found = try await Self.readOriginal(messageID, candidates, attachments: attachments, &session, c)
                }
                await session.logout()
                guard let found else { throw SendRefusal(reason: "original not found: \(messageID) is in none of the user's folders") }
                return found
            }
        }
    }

    /// The first of `uids` whose Message-ID is `messageID`, read.
    static func readOriginal(_ messageID: String, _ uids: [UInt64], attachments: Bool, _ session: inout IMAPSession, _ c: Configuration) async throws -> OriginalMail? {
        guard !uids.isEmpty else { return nil }
        let fetched = try await session.uidFetch(uids.prefix(20).map(String.init).joined(separator: ","),
                                                 "UID ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (REFERENCES)]")
        guard let (uid, attributes) = fetched.first(where: { $0.attributes["ENVELOPE"].flatMap(MailEnvelope.init)?.messageID == messageID }),
              let envelopeValue = attributes["ENVELOPE"], let envelope = MailEnvelope(envelopeValue) else { return nil }
        let parts = attributes["BODYSTRUCTURE"].map { MailStructure.parts($0) } ?? []
        let textPart = MailStructure.textPart(parts)
        let attached = attachments ? MailStructure.attachments(parts, text: textPart) : []
        let total = attached.reduce(UInt64(textPart?.size ?? 0)) { $0 + $1.size }
        if total > UInt64(c.maxOriginalBytes) {
            throw SendRefusal(reason: "message too large (the original has \(total) bytes; the most this server forwards is \(c.maxOriginalBytes))")
        }
        // Each part read in ranges, bounded by what a forward may carry.
        func section(_ name: String) async throws -> [UInt8] {
            try await session.uidFetchSection(uid, section: name, maxBytes: c.maxOriginalBytes) ?? []
        }
        var text = ""
        if let textPart {
            let raw = try await section(textPart.section)
            let decoded = MailText.decode(MailText.decodeTransfer(raw, encoding: textPart.encoding), charset: textPart.charset)
            text = MailText.prefix(textPart.type == "text/html" ? MailText.plainText(fromHTML: decoded) : decoded, maxBytes: c.maxQuoteBytes)
        }
        var raws: [RawPart] = []
        for part in attached {
            raws.append(RawPart(mimeHeader: try await section("\(part.section).MIME"), body: try await section(part.section)))
        }
        let headers = attributes.first { $0.name.hasPrefix("BODY[HEADER") }?.value.bytes ?? []
        return OriginalMail(messageID: envelope.messageID, references: MailHeaders.value("References", in: headers), subject: envelope.subject,
                            from: MailEnvelope.addressSpecs(envelopeValue, field: 2), replyTo: MailEnvelope.addressSpecs(envelopeValue, field: 4),
                            to: MailEnvelope.addressSpecs(envelopeValue, field: 5), cc: MailEnvelope.addressSpecs(envelopeValue, field: 6),
                            fromDisplay: envelope.from.first ?? "", date: envelope.date, text: text, attachments: raws)
    }
}
