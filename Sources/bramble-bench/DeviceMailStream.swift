import BrambleCore
import BrambleDevice
import BrambleNet
import Foundation
import NIOConcurrencyHelpers
import NIOSSL

/// The drills' mail from the devices: on an absolute schedule, each demo device in turn
/// asks (a `send` request in its control spool, as `bramble-device control send` writes
/// it) to mail the next device's user. Afterwards `audit` counts, outside the nodes, the
/// sends acknowledged to the devices (their logs' `request` lines) against the copies in
/// the recipients' INBOX and the senders' Sent folders, read over IMAP as each user.
final class DeviceMailStream: Sendable {
    struct Device: Sendable {
        var pin: PIN
        var email: String
        /// The running device's state file (its control spool is beside it).
        var statePath: String
        /// Its JSON-lines log.
        var log: String
        /// The user's own IMAP password.
        var password: String
    }

    let devices: [Device]
    let rate: Double
    /// Tags this stream's subjects: the mailboxes keep earlier drills' mail.
    let run: String
    let imap: HostPort
    let tls: NIOSSLContext?
    /// Requests acknowledged before this are an earlier stream's.
    let startedAt = Date()
    private let box = NIOLockedValueBox((submitted: 0, refused: 0))

    /// Nil unless at least two devices have a user with a password and a control spool.
    init?(devices: [Device], rate: Double, run: String, imap: HostPort, tls: NIOSSLContext?) {
        guard devices.count >= 2, rate > 0 else { return nil }
        (self.devices, self.rate, self.run, self.imap, self.tls) = (devices, rate, run, imap, tls)
    }

    var submitted: Int { box.withLockedValue { $0.submitted } }

    func subject(_ n: Int) -> String { "device mail \(run) \(n)" }

    /// Writes `count` send requests, one every 1/rate s, device n mod k to device n+1's user.
    func send(count: Int) async {
        let start = ContinuousClock.now
        let interval = Duration.seconds(1 / rate)
        for n in 0..<count {
            let due = start + interval * n
            if due > .now { try? await Task.sleep(until: due) }
            let from = devices[n % devices.count], to = devices[(n + 1) % devices.count]
            let request = DeviceControlRequest(verb: "send", to: [to.email], subject: subject(n), body: "device mail \(n) of drill run \(run)")
            do {
                _ = try request.submit(statePath: from.statePath)
                box.withLockedValue { $0.submitted += 1 }
            } catch {
                box.withLockedValue { $0.refused += 1 }
                FileHandle.standardError.write(Data("stream: device \(from.pin) could not spool a send: \(error)\n".utf8))
            }
        }
    }

    /// What the devices' logs say of this stream's sends.
    struct Reading {
        /// Acknowledged: a `request` line, verb send, since the stream began.
        var acked: [SentMailAudit.Acked] = []
        /// When each was acknowledged, by Message-ID.
        var ackedAt: [String: Date] = [:]
        /// The outcome the server told the device of each mail (its `sent` line: "sent", or
        /// "failed: why") and when, by Message-ID.
        var outcomes: [String: (state: String, at: Date)] = [:]

        /// Every acknowledged send told its outcome: no resend is still to come.
        var settled: Bool { acked.allSatisfy { outcomes[$0.messageID] != nil } }
        /// The longest an acknowledged send waited for its outcome, in ms.
        var slowestOutcomeMs: Int {
            acked.compactMap { a in
                guard let from = ackedAt[a.messageID], let to = outcomes[a.messageID]?.at else { return nil }
                return Int((to.timeIntervalSince(from) * 1000).rounded())
            }.max() ?? 0
        }
        var failures: [String: String] { outcomes.filter { ackedAt[$0.key] != nil && $0.value.state.hasPrefix("failed") }.mapValues(\.state) }
    }

    func read() -> Reading {
        var reading = Reading()
        for (i, device) in devices.enumerated() {
            guard let data = FileManager.default.contents(atPath: device.log) else { continue }
            let recipient = devices[(i + 1) % devices.count].email
            let domain = device.email.split(separator: "@").last.map(String.init) ?? ""
            for raw in data.split(separator: UInt8(ascii: "\n")) {
                guard let line = try? ShownItem.decoder.decode(ShownItem.self, from: raw) else { continue }
                let at = line.receivedAt
                if line.service == "request", line.verb == "send", at >= startedAt {
                    let id = OutgoingMessageID.make(pin: device.pin, ref: line.ref, domain: domain)
                    reading.acked.append(.init(messageID: id, sender: device.email, recipient: recipient))
                    reading.ackedAt[id] = at
                } else if line.service == "sent", let id = line.messageID, let state = line.state {
                    reading.outcomes[id] = (state == "failed" ? "failed: \(line.reason ?? "")" : state, at)
                }
            }
        }
        return reading
    }

    /// Polls the logs and the mailboxes until every request written was acknowledged, told
    /// its outcome and found in both folders, or until `deadline`; the last readings.
    func audit(until deadline: ContinuousClock.Instant) async -> (audit: SentMailAudit, reading: Reading) {
        while true {
            let reading = read()
            var audit = SentMailAudit(acked: reading.acked, inbox: [:], sent: [:])
            do {
                let (inbox, sent) = try await scan(reading.acked)
                audit = SentMailAudit(acked: reading.acked, inbox: inbox, sent: sent)
            } catch {
                FileHandle.standardError.write(Data("stream: reading the demo mailboxes failed (again in 1 s): \(error)\n".utf8))
            }
            if (audit.acked >= submitted && reading.settled && audit.lost == 0) || ContinuousClock.now >= deadline { return (audit, reading) }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// Each user's INBOX and Sent: the copies of each Message-ID of this stream's mail, found
    /// by its subject (and any acknowledged one not found so, by its Message-ID).
    func scan(_ acked: [SentMailAudit.Acked]) async throws -> (inbox: [String: SentMailAudit.Copies], sent: [String: SentMailAudit.Copies]) {
        var inbox: [String: SentMailAudit.Copies] = [:], sent: [String: SentMailAudit.Copies] = [:]
        let tag = "device mail \(run) "
        for device in devices {
            let toUser = Set(acked.filter { $0.recipient == device.email }.map(\.messageID))
            let fromUser = Set(acked.filter { $0.sender == device.email }.map(\.messageID))
            let (i, s) = try await withDeadline(ms: 10_000) { [imap, tls] in
                try await IMAPSession.with(to: imap, tls: tls, connectTimeout: .seconds(2)) { session in
                    try await session.login(user: device.email, password: device.password)
                    let i = try await Self.copies(in: "INBOX", tagged: tag, looking: toUser, &session)
                    let s = try await Self.copies(in: "Sent", tagged: tag, looking: fromUser, &session)
                    await session.logout()
                    return (i, s)
                }
            }
            (inbox[device.email], sent[device.email]) = (i, s)
        }
        return (inbox, sent)
    }

    /// One folder's copies by Message-ID (confirmed from each message's envelope); a folder
    /// that does not exist yet holds none.
    static func copies(in folder: String, tagged subject: String, looking: Set<String>,
                       _ session: inout IMAPSession) async throws -> SentMailAudit.Copies {
        do {
            _ = try await session.select(folder, readOnly: true)
        } catch is IMAPSession.Refused {
            return [:]
        }
        var uids = Set(try await session.uidSearch(header: "Subject", value: subject))
        var copies = try await envelopes(Array(uids), &session)
        for id in looking where copies[id] == nil {
            let more = Set(try await session.uidSearch(header: "Message-ID", value: id)).subtracting(uids)
            uids.formUnion(more)
            copies.merge(try await envelopes(Array(more), &session)) { $0 + $1 }
        }
        return copies
    }

    static func envelopes(_ uids: [UInt64], _ session: inout IMAPSession) async throws -> SentMailAudit.Copies {
        guard !uids.isEmpty else { return [:] }
        var copies: SentMailAudit.Copies = [:]
        for (_, attributes) in try await session.uidFetch(uids.sorted().map(String.init).joined(separator: ","), "UID ENVELOPE") {
            if let id = attributes["ENVELOPE"].flatMap(MailEnvelope.init)?.messageID, !id.isEmpty { copies[id, default: 0] += 1 }
        }
        return copies
    }
}
