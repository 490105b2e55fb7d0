import BrambleCore
@preconcurrency import Crypto
import Foundation
import PostgresNIO

/// A mail a device asked the server to send (send, reply, forward), as the outgoing queue
/// holds it. See migration 10 for its states.
public struct OutgoingMail: Sendable, Equatable {
    public enum State: String, Sendable { case pending, submitting, sent, failed }

    public var key: PendingRequest.Key
    public var userID: Int64
    public var email: String
    public var displayName: String
    public var messageID: String
    public var request: DeviceRequest
    public var state: State
    /// Attempts claimed so far; with `attemptEpoch`, what identifies the latest attempt.
    public var attempts: Int
    public var attemptEpoch: UInt64?
    /// For a submitting row: by the database's clock, its attempt's deadline and the time
    /// the mail server may still take have passed, so it can no longer be accepted.
    public var attemptOver: Bool
    public var createdAt: Date
    /// Whether the device that asked is still active (a disabled one's mail does not go out).
    public var deviceActive = true

    /// The attempt a submitting row is in.
    public var attempt: Attempt? { attemptEpoch.map { Attempt(epoch: $0, number: attempts) } }

    public struct Attempt: Sendable, Equatable {
        public var epoch: UInt64
        public var number: Int
    }
}

extension ConfigStore {
    /// What became of an attempt, or of a resolution.
    public enum OutgoingResult: Sendable, Equatable {
        /// The mail server took it (`detail`: its reply, the queue id), or a copy in Sent
        /// shows it did (`witness`).
        case sent(detail: String, witness: Bool)
        /// Refused for good: the device hears why.
        case failed(reason: String)
        /// Try again after `afterMs` (the mail server was away, or said "later"; or an
        /// in-doubt attempt left no copy and can no longer complete).
        case retry(reason: String, afterMs: Int)
    }

    /// Outgoing mail waiting for this node: pending rows due, every submitting row (the
    /// Agent decides whether it is in doubt), then sent rows whose Sent copy is not filed
    /// yet (copies that cannot be filed never hold up mail to send). `settleMs`: what an
    /// attempt may take past its deadline. `waiting`: mail not yet sent or settled, due
    /// now or later.
    public func openOutgoingMail(limit: Int = 200, settleMs: Int) async throws -> (open: [OutgoingMail], unfiled: [OutgoingMail], waiting: Bool) {
        var open: [OutgoingMail] = [], unfiled: [OutgoingMail] = []
        for try await (p, ref, user, email, name, id, payload, state, attempts, attemptEpoch, over, created, active) in try await client.query("""
            SELECT o.pin, o.ref, o.user_id, u.email, u.display_name, o.message_id, r.payload, o.state, o.attempts, o.attempt_epoch,
                   COALESCE(now() > o.deadline_at + \(settleMs) * interval '1 millisecond', false), o.created_at, d.status = 'active'
            FROM outgoing_mail o JOIN device_requests r ON r.pin = o.pin AND r.ref = o.ref JOIN users u ON u.id = o.user_id
                 JOIN devices d ON d.pin = o.pin
            WHERE (o.state = 'pending' AND o.next_attempt_at <= now()) OR o.state = 'submitting'
               OR (o.state = 'sent' AND NOT o.filed AND o.next_attempt_at <= now())
            ORDER BY o.state = 'sent', o.created_at, o.pin, o.ref LIMIT \(limit)
            """, logger: logger).decode((Int64, Int64, Int64, String, String, String, ByteBuffer?, String, Int32, Int64?, Bool, Date, Bool).self) {
            guard let payload, let request = try? DeviceRequest.decodeStored(Array(buffer: payload)), let state = OutgoingMail.State(rawValue: state) else {
                logger.error("an outgoing mail's request cannot be read; left as it is", metadata: ["device.pin": "\(PIN(UInt32(p)))", "request.ref": "\(ref)"])
                continue
            }
            let mail = OutgoingMail(key: .init(pin: PIN(UInt32(p)), ref: UInt64(ref)), userID: user, email: email, displayName: name, messageID: id,
                                    request: request, state: state, attempts: Int(attempts), attemptEpoch: attemptEpoch.map { UInt64($0) },
                                    attemptOver: over, createdAt: created, deviceActive: active)
            if state == .sent { unfiled.append(mail) } else { open.append(mail) }
        }
        var waiting = false
        for try await any in try await client.query(
            "SELECT EXISTS (SELECT 1 FROM outgoing_mail WHERE state IN ('pending', 'submitting'))", logger: logger
        ).decode(Bool.self) { waiting = any }
        return (open, unfiled, waiting)
    }

    /// Starts an attempt at a pending mail: submitting, under this epoch, to end by
    /// `deadlineMs` from now on the database's clock. Nil if it is not pending any more
    /// (another attempt claimed it, or it ended).
    public func claimOutgoingMail(_ key: PendingRequest.Key, deadlineMs: Int, pair: String, node: String, epoch: UInt64) async throws -> OutgoingMail.Attempt? {
        try await fenced(pair, node: node, epoch: epoch) { [logger] conn in
            for try await n in try await conn.query("""
                UPDATE outgoing_mail SET state = 'submitting', attempts = attempts + 1, attempt_epoch = \(Int64(epoch)), attempt_node = \(node),
                       deadline_at = now() + \(deadlineMs) * interval '1 millisecond'
                WHERE pin = \(Int64(key.pin.value)) AND ref = \(Int64(key.ref)) AND state = 'pending'
                RETURNING attempts
                """, logger: logger).decode(Int32.self) { return OutgoingMail.Attempt(epoch: epoch, number: Int(n)) }
            return nil
        }
    }

    /// Records what became of `attempt` (or of a pending mail that never got one, when
    /// nil: failed before it was sent), if the row is still in it: a stale attempt, or a
    /// second resolution of the same one, writes nothing and returns nil. Sent and failed
    /// end the device's request and enqueue its `sent` item; the Dispatcher sends what is
    /// returned.
    public func finishOutgoingMail(_ mail: OutgoingMail, attempt: OutgoingMail.Attempt?, result: OutgoingResult,
                                   pair: String, node: String, epoch: UInt64, origin: String) async throws -> CommittedPushes? {
        try await fenced(pair, node: node, epoch: epoch) { [logger] conn in
            let (pin, ref) = (Int64(mail.key.pin.value), Int64(mail.key.ref))
            let state = attempt == nil ? "pending" : "submitting"
            let (attemptEpoch, attemptNumber) = (Int64(attempt?.epoch ?? 0), Int32(attempt?.number ?? 0))
            var held = false
            for try await _ in try await conn.query("""
                SELECT 1 FROM outgoing_mail WHERE pin = \(pin) AND ref = \(ref) AND state = \(state)
                   AND (\(attempt == nil) OR (attempt_epoch = \(attemptEpoch) AND attempts = \(attemptNumber)))
                FOR UPDATE
                """, logger: logger) { held = true }
            guard held else { return nil }
            let outcome: SentOutcome
            switch result {
            case .retry(let reason, let afterMs):
                try await conn.query("""
                    UPDATE outgoing_mail SET state = 'pending', detail = \(reason), next_attempt_at = now() + \(afterMs) * interval '1 millisecond'
                    WHERE pin = \(pin) AND ref = \(ref)
                    """, logger: logger)
                return CommittedPushes(outcomes: [], keys: [:], items: [])
            case .sent(let detail, let witness):
                try await conn.query("""
                    UPDATE outgoing_mail SET state = 'sent', detail = \(detail), resolution = \(witness ? "witness" : "accepted"),
                           done_at = now(), next_attempt_at = now()
                    WHERE pin = \(pin) AND ref = \(ref)
                    """, logger: logger)
                try await conn.query("UPDATE device_requests SET state = 'done', done_at = now() WHERE pin = \(pin) AND ref = \(ref)", logger: logger)
                outcome = SentOutcome(requestRef: mail.key.ref, messageID: mail.messageID, state: .sent)
            case .failed(let reason):
                try await conn.query("""
                    UPDATE outgoing_mail SET state = 'failed', detail = \(reason), resolution = 'refused', done_at = now(), filed = true
                    WHERE pin = \(pin) AND ref = \(ref)
                    """, logger: logger)
                try await conn.query("""
                    UPDATE device_requests SET state = 'failed', detail = \(reason), done_at = now() WHERE pin = \(pin) AND ref = \(ref)
                    """, logger: logger)
                outcome = SentOutcome(requestRef: mail.key.ref, messageID: mail.messageID, state: .failed, reason: reason)
            }
            // The device that asked hears the outcome, if it is still active.
            var stored: String?
            for try await key in try await conn.query(
                "SELECT master_key FROM devices WHERE pin = \(pin) AND status = 'active' FOR UPDATE", logger: logger
            ).decode(String.self) { stored = key }
            guard let stored else { return CommittedPushes(outcomes: [], keys: [:], items: []) }
            let seq = try await reserveSequences([mail.key.pin: 1], conn)[mail.key.pin]!
            let item = OutboundItem(pin: mail.key.pin, seq: seq, pushID: UUID(), subject: "", body: "",
                                    expiresAt: Date().addingTimeInterval(TimeInterval(Self.mailExpirySeconds)),
                                    service: .sent, payload: outcome.encoded())
            try await insertOutbound([(item, Self.mailExpirySeconds)], conn)
            _ = try await notifyOutbound(counts: [mail.key.pin: 1], first: [mail.key.pin: seq], origin: origin, conn)
            return CommittedPushes(outcomes: [], keys: masterKey(stored, pin: mail.key.pin).map { [mail.key.pin: $0] } ?? [:], items: [item])
        }
    }

    /// The Sent copy of a sent mail was marked read (`filed`), or is not there yet: look
    /// again after `retryAfterMs` (nil: give up, it is filed as far as the Agent goes).
    public func recordFiling(_ key: PendingRequest.Key, filed: Bool, retryAfterMs: Int?, pair: String, node: String, epoch: UInt64) async throws {
        try await fenced(pair, node: node, epoch: epoch) { [logger] conn in
            try await conn.query("""
                UPDATE outgoing_mail SET filed = \(filed || retryAfterMs == nil),
                       next_attempt_at = now() + \(retryAfterMs ?? 0) * interval '1 millisecond'
                WHERE pin = \(Int64(key.pin.value)) AND ref = \(Int64(key.ref)) AND state = 'sent'
                """, logger: logger)
        }
    }

    /// Where the device's copy of a mail came from in the user's INBOX (to find an
    /// original to reply to or forward); nil if the device never got it.
    public func mailLocation(pin: PIN, messageID: String) async throws -> (uidValidity: UInt64, uid: UInt64)? {
        for try await (validity, uid) in try await client.query("""
            SELECT uid_validity, uid FROM mail_items WHERE pin = \(Int64(pin.value)) AND message_id = \(messageID)
            """, logger: logger).decode((Int64, Int64).self) { return (UInt64(validity), UInt64(uid)) }
        return nil
    }
}
