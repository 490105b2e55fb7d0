import BrambleAPI
import BrambleCore
@preconcurrency import Crypto
import Foundation
import PostgresNIO

/// Over-the-air activation and the Policy Service's records. Every step is one transaction
/// fenced by the lease's epoch, so a run begun on one node finishes on the other after a
/// failover (the ISK is in the database, sealed), and a run is never answered twice
/// differently.
extension ConfigStore {
    /// A user whose mailbox may hold an activation request now.
    public struct ActivationCandidate: Sendable, Equatable {
        public var userID: Int64
        public var email: String
    }

    /// The domain's signing key: made and stored (sealed) by the first node that needs it.
    public struct DomainKey: Sendable {
        public let signing: Curve25519.Signing.PrivateKey
        public var publicKey: [UInt8] { Array(signing.publicKey.rawRepresentation) }
    }

    static let domainKeyContext = Array("domain".utf8)

    public func domainKey() async throws -> DomainKey {
        for _ in 0..<2 {
            for try await stored in try await client.query("SELECT signing_key FROM domain_keys", logger: logger).decode(String.self) {
                guard let raw = vault.openSecret(stored, purpose: .domainSigningKey, context: Self.domainKeyContext),
                      let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw) else {
                    throw StoreError.conflict("the domain's signing key does not open under this node's key-encryption key")
                }
                return DomainKey(signing: key)
            }
            let fresh = Curve25519.Signing.PrivateKey()
            let sealed = vault.sealSecret(Array(fresh.rawRepresentation), purpose: .domainSigningKey, context: Self.domainKeyContext)
            try await client.query("""
                INSERT INTO domain_keys (signing_key, public_key) VALUES (\(sealed), \(ByteBuffer(bytes: Array(fresh.publicKey.rawRepresentation))))
                ON CONFLICT DO NOTHING
                """, logger: logger)
        }
        throw StoreError.notFound("the domain's signing key")
    }

    /// After a KEK rotation: the domain's signing key and the activation passwords'
    /// secrets sealed again under the new KEK (a run's ISK lives minutes; it is not).
    func resealActivationSecrets() async throws -> Int {
        var sealed = 0
        for try await stored in try await client.query("SELECT signing_key FROM domain_keys", logger: logger).decode(String.self) {
            if let raw = vault.secretUnderPrevious(stored, purpose: .domainSigningKey, context: Self.domainKeyContext) {
                let fresh = vault.sealSecret(raw, purpose: .domainSigningKey, context: Self.domainKeyContext)
                try await client.query("UPDATE domain_keys SET signing_key = \(fresh) WHERE signing_key = \(stored)", logger: logger)
                sealed += 1
            }
        }
        var rows: [(Int64, String, String)] = []
        for try await row in try await client.query("""
            SELECT a.user_id, u.email, a.secret FROM activations a JOIN users u ON u.id = a.user_id
            """, logger: logger).decode((Int64, String, String).self) { rows.append(row) }
        for (id, email, stored) in rows {
            guard let raw = vault.secretUnderPrevious(stored, purpose: .activationSecret, context: Array(email.utf8)) else { continue }
            let fresh = vault.sealSecret(raw, purpose: .activationSecret, context: Array(email.utf8))
            try await client.query("UPDATE activations SET secret = \(fresh) WHERE user_id = \(id) AND secret = \(stored)", logger: logger)
            sealed += 1
        }
        return sealed
    }

    // MARK: Administration

    /// Sets a user's activation password (its scrypt secret, sealed): pending, no failures.
    public func setActivationPassword(email: String, secret: [UInt8], expiresAt: Date) async throws -> ActivationStatus {
        let sealed = vault.sealSecret(secret, purpose: .activationSecret, context: Array(email.utf8))
        // Runs under way on the old password end with it.
        let rows = try await client.query("""
            WITH ended AS (
                UPDATE activation_sessions s SET state = 'failed', isk = NULL FROM users u
                WHERE s.user_id = u.id AND u.email = \(email) AND s.state = 'responded')
            INSERT INTO activations (user_id, secret, expires_at, state, last_event)
            SELECT id, \(sealed), \(expiresAt), 'pending', 'activation password set' FROM users WHERE email = \(email)
            ON CONFLICT (user_id) DO UPDATE SET secret = EXCLUDED.secret, expires_at = EXCLUDED.expires_at, failures = 0,
                state = 'pending', pin = NULL, services_seq = NULL, last_event = EXCLUDED.last_event, last_event_at = now()
            RETURNING user_id
            """, logger: logger)
        for try await _ in rows {
            return try await activationStatuses(email: email)[email] ?? .none
        }
        throw StoreError.notFound("no user \(email)")
    }

    /// Each user's activation (`none` when no password was ever set), by address.
    public func activationStatuses(email: String? = nil) async throws -> [String: ActivationStatus] {
        var out: [String: ActivationStatus] = [:]
        for try await (e, state, failures, expires, pin, event, eventAt) in try await client.query("""
            SELECT u.email, \(unescaped: Self.effectiveState), a.failures, a.expires_at, a.pin, a.last_event, a.last_event_at
            FROM activations a JOIN users u ON u.id = a.user_id
            WHERE \(email)::text IS NULL OR u.email = \(email)
            """, logger: logger).decode((String, String, Int, Date, Int64?, String, Date).self) {
            out[e] = ActivationStatus(state: state, failures: failures, expires_at: expires, pin: pin.map { PIN(UInt32($0)).description },
                                      last_event: event, last_event_at: eventAt)
        }
        return out
    }

    /// The state as the administrator reads it: a run whose service books the device
    /// acknowledged is completed; a pending password past its time is expired.
    static let effectiveState = """
        CASE WHEN a.state = 'confirmed' AND a.services_seq IS NOT NULL AND EXISTS (
                  SELECT 1 FROM outbound o WHERE o.pin = a.pin AND o.seq = a.services_seq AND o.state = 'acked') THEN 'completed'
             WHEN a.state = 'done' THEN 'completed'
             WHEN a.state = 'confirmed' THEN 'in_progress'
             WHEN a.state = 'pending' AND a.expires_at < now() THEN 'expired'
             ELSE a.state END
        """

    // MARK: The Messaging Agent's part

    /// Users whose mailbox may hold an activation request: a password pending or a run
    /// under way, and for a day after anything else happened (a request for a locked,
    /// used or expired activation is answered and removed too). A request for a user who
    /// never had a password stays in the mailbox unanswered (no device gets it).
    public func activationCandidates() async throws -> [ActivationCandidate] {
        var out: [ActivationCandidate] = []
        for try await (id, email) in try await client.query("""
            SELECT u.id, u.email FROM activations a JOIN users u ON u.id = a.user_id
            WHERE (a.state IN ('pending', 'in_progress') AND a.expires_at > now() - interval '1 day') OR a.last_event_at > now() - interval '1 day'
            ORDER BY u.id
            """, logger: logger).decode((Int64, String).self) { out.append(ActivationCandidate(userID: id, email: email)) }
        return out
    }

    /// What the node does with one request found in a mailbox.
    public enum RequestAnswer: Sendable, Equatable {
        /// Send this response (a new run, or the same run's response again).
        case respond(ActivationResponse)
        /// Tell the device it is refused, and why (nothing secret).
        case refuse(String)
        /// A request already dealt with (read again): remove it, say nothing, count nothing.
        case discard
    }

    /// Answers an activation request found in `candidate`'s mailbox: a new CPace run on the
    /// password's secret, recorded with its sealed ISK before the response leaves; the same
    /// request again gets the same response; a session id seen before is a replay. Each
    /// run counts as a failure until its key confirmation succeeds; the run that makes
    /// five, failing, locks the activation.
    public func answerActivationRequest(_ candidate: ActivationCandidate, etp: [UInt8], mailID: String, srpID: String, domain: DomainKey,
                                        pair: String, node: String, epoch: UInt64) async throws -> RequestAnswer {
        try await fenced(pair, node: node, epoch: epoch) { [self, logger] conn in
            // A failure counts only while the password is still to be used.
            func event(_ text: String, failure: Bool = false) async throws {
                let n = failure ? 1 : 0
                try await conn.query("""
                    UPDATE activations SET last_event = \(text), last_event_at = now(),
                        failures = failures + CASE WHEN state IN ('pending', 'in_progress') THEN \(n) ELSE 0 END,
                        state = CASE WHEN state IN ('pending', 'in_progress') AND failures + \(n) >= \(ActivationPassword.maxFailures)
                                     THEN 'locked' ELSE state END
                    WHERE user_id = \(candidate.userID)
                    """, logger: logger)
            }
            var row: (secret: String, expires: Date, failures: Int, state: String, raw: String)?
            for try await r in try await conn.query("""
                SELECT a.secret, a.expires_at, a.failures, \(unescaped: Self.effectiveState), a.state FROM activations a
                WHERE a.user_id = \(candidate.userID) FOR UPDATE
                """, logger: logger).decode((String, Date, Int, String, String).self) { row = r }
            guard let row else { return .refuse("no activation is pending for this address") }

            let request: ActivationRequest
            do { request = try ActivationRequest.decode(etp) } catch {
                try await event("an unreadable activation request was refused", failure: true)
                return .refuse("the activation request cannot be read")
            }
            guard ActivationPassword.canonicalEmail(request.email) == candidate.email else {
                try await event("an activation request naming another address was refused", failure: true)
                return .refuse("the activation request names another address")
            }
            // The same mail read twice (a node died before removing it) gets the same answer.
            for try await (user, stored, storedMail, response, state) in try await conn.query("""
                SELECT user_id, request, mail_id, response, state FROM activation_sessions WHERE session_id = \(ByteBuffer(bytes: request.sessionID))
                """, logger: logger).decode((Int64, ByteBuffer, String, ByteBuffer?, String).self) {
                // The same mail (its Message-ID), not merely the same etp.dat in a new one.
                if user == candidate.userID, Array(buffer: stored) == etp, storedMail == mailID {
                    // Its run answered and still waiting: the same answer; ended: nothing more.
                    if state == "responded", let response, let decoded = try? ActivationResponse.decode(Array(buffer: response)) { return .respond(decoded) }
                    return .discard
                }
                try await event("a replayed activation request (a session id seen before) was refused", failure: true)
                return .refuse("this activation request was seen before")
            }
            switch row.raw {
            case "locked": return .refuse("activation is locked after \(ActivationPassword.maxFailures) failed attempts: ask your administrator for a new activation password")
            case "confirmed", "done": return .refuse("this activation password was used: ask your administrator for a new one")
            default: break
            }
            guard row.expires > Date() else { return .refuse("the activation password has expired: ask your administrator for a new one") }
            // Five runs began and none confirmed (a device that never sent its confirmation
            // leaves its run counted): no sixth.
            guard row.failures < ActivationPassword.maxFailures else {
                try await conn.query("""
                    UPDATE activations SET state = 'locked', last_event = 'locked after five runs without a valid key confirmation', last_event_at = now()
                    WHERE user_id = \(candidate.userID)
                    """, logger: logger)
                return .refuse("activation is locked after \(ActivationPassword.maxFailures) failed attempts: ask your administrator for a new activation password")
            }
            guard let secret = vault.openSecret(row.secret, purpose: .activationSecret, context: Array(candidate.email.utf8)) else {
                throw StoreError.conflict("an activation secret does not open under this node's key-encryption key")
            }
            var response = ActivationResponse(sessionID: request.sessionID, srpID: srpID, domainKey: domain.publicKey, share: [], confirmation: [])
            let responder: CPace.Responder
            do {
                responder = try CPace.Responder(password: secret, channelIdentifier: Activation.channelIdentifier(email: candidate.email, pin: request.pin),
                                                sessionID: request.sessionID, initiatorShare: request.share,
                                                initiatorAssociatedData: request.associatedData, associatedData: response.associatedData)
            } catch {
                try await event("an activation request with an invalid key share was refused", failure: true)
                return .refuse("the activation request's key share is not valid")
            }
            (response.share, response.confirmation) = (responder.share, responder.confirmation)
            let sid = ByteBuffer(bytes: request.sessionID)
            // An earlier run still waiting for its confirmation is over.
            try await conn.query("""
                UPDATE activation_sessions SET state = 'failed', isk = NULL WHERE user_id = \(candidate.userID) AND state = 'responded'
                """, logger: logger)
            try await conn.query("""
                INSERT INTO activation_sessions (session_id, user_id, pin, request, mail_id, response, isk, state)
                VALUES (\(sid), \(candidate.userID), \(Int64(request.pin.value)), \(ByteBuffer(bytes: etp)), \(mailID), \(ByteBuffer(bytes: response.encoded())),
                        \(vault.sealSecret(responder.isk, purpose: .activationISK, context: request.sessionID)), 'responded')
                """, logger: logger)
            try await conn.query("""
                UPDATE activations SET state = 'in_progress', failures = failures + 1, pin = \(Int64(request.pin.value)), services_seq = NULL,
                    last_event = \("request from PIN \(request.pin) answered; awaiting the device's key confirmation"), last_event_at = now()
                WHERE user_id = \(candidate.userID)
                """, logger: logger)
            return .respond(response)
        }
    }

    /// The device's key confirmation: on success the device is provisioned with the master
    /// key the run derived, the activation's failures are cleared, and its IT policy, signed
    /// by the domain key, is queued for it. A confirmation sent again gets the same result.
    public func confirmActivation(_ confirm: ActivationConfirm, pin: PIN, domain: DomainKey, pair: String, node: String, epoch: UInt64)
        async throws -> (result: ActivationResult, committed: CommittedPushes?) {
        try await fenced(pair, node: node, epoch: epoch) { [self, logger] conn in
            let sid = ByteBuffer(bytes: confirm.sessionID)
            let refuse = { (reason: String) in (ActivationResult(sessionID: confirm.sessionID, accepted: false, reason: reason), CommittedPushes?.none) }
            // The user's activation row first, then the run: the order answering takes too.
            var owner: Int64?
            for try await user in try await conn.query("SELECT user_id FROM activation_sessions WHERE session_id = \(sid)", logger: logger)
                .decode(Int64.self) { owner = user }
            guard let owner else { return refuse("no such activation run") }
            try await conn.query("SELECT 1 FROM activations WHERE user_id = \(owner) FOR UPDATE", logger: logger)
            var found: (user: Int64, pin: Int64, request: ByteBuffer, response: ByteBuffer?, isk: String?, tag: ByteBuffer?, state: String, email: String)?
            for try await r in try await conn.query("""
                SELECT s.user_id, s.pin, s.request, s.response, s.isk, s.confirm_tag, s.state, u.email
                FROM activation_sessions s JOIN users u ON u.id = s.user_id WHERE s.session_id = \(sid) FOR UPDATE OF s
                """, logger: logger).decode((Int64, Int64, ByteBuffer, ByteBuffer?, String?, ByteBuffer?, String, String).self) { found = r }
            guard let found, found.pin == Int64(pin.value) else { return refuse("no such activation run") }
            let tag = Array(SHA256.hash(data: confirm.confirmation))
            if found.state == "confirmed" {
                // A retry of the confirmation that succeeded: the same answer.
                return found.tag.map { Array(buffer: $0) == tag } == true
                    ? (ActivationResult(sessionID: confirm.sessionID, accepted: true), nil) : refuse("the key confirmation failed")
            }
            guard found.state != "failed", let stored = found.isk, let responseBytes = found.response,
                  let request = try? ActivationRequest.decode(Array(buffer: found.request)),
                  let response = try? ActivationResponse.decode(Array(buffer: responseBytes)) else {
                return refuse("this activation run has ended: start again")
            }
            guard let isk = vault.openSecret(stored, purpose: .activationISK, context: confirm.sessionID) else {
                throw StoreError.conflict("an activation run's key does not open under this node's key-encryption key")
            }
            let valid = CPace.verifyInitiatorConfirmation(confirm.confirmation, isk: isk, sessionID: confirm.sessionID,
                                                          initiatorShare: request.share, initiatorAssociatedData: request.associatedData,
                                                          responderShare: response.share, responderAssociatedData: response.associatedData)
            guard valid else {
                try await conn.query("UPDATE activation_sessions SET state = 'failed', isk = NULL WHERE session_id = \(sid)", logger: logger)
                try await conn.query("""
                    UPDATE activations SET last_event = \("the key confirmation of PIN \(pin) failed (a wrong activation password)"), last_event_at = now(),
                        state = CASE WHEN failures >= \(ActivationPassword.maxFailures) THEN 'locked' ELSE 'pending' END
                    WHERE user_id = \(found.user) AND state = 'in_progress'
                    """, logger: logger)
                return refuse("the key confirmation failed: check the activation password")
            }
            // A PIN another user's device has is not taken over.
            for try await owner in try await conn.query("SELECT user_id FROM devices WHERE pin = \(found.pin)", logger: logger).decode(Int64.self)
            where owner != found.user {
                try await conn.query("UPDATE activation_sessions SET state = 'failed', isk = NULL WHERE session_id = \(sid)", logger: logger)
                return refuse("PIN \(pin) belongs to another user's device")
            }
            let master = Activation.masterKey(isk: isk, request: request, response: response)
            // The same device activated again starts afresh (its queue, its sequence numbers)
            // but keeps its IT commands: their history, its lock, and any lock or wipe still
            // open, queued again — a lost device re-activated does not escape its wipe.
            let kept = try await KeptCommands.read(pin: found.pin, conn, logger: logger)
            try await conn.query("DELETE FROM devices WHERE pin = \(found.pin)", logger: logger)
            try await conn.query("""
                WITH forgotten AS (
                    DELETE FROM mailboxes m WHERE m.user_id = \(found.user)
                      AND NOT EXISTS (SELECT 1 FROM devices d WHERE d.user_id = \(found.user) AND d.status = 'active'))
                INSERT INTO devices (pin, user_id, master_key, locked_at)
                VALUES (\(found.pin), \(found.user), \(vault.seal(master, pin: pin)), \(kept.lockedAt))
                """, logger: logger)
            try await kept.restore(pin: found.pin, conn, logger: logger)
            // The ISK goes (the master key is derived from it); the tag answers a retry.
            try await conn.query("""
                UPDATE activation_sessions SET state = 'confirmed', isk = NULL, confirm_tag = \(ByteBuffer(bytes: tag)) WHERE session_id = \(sid)
                """, logger: logger)
            try await conn.query("""
                UPDATE activations SET state = 'confirmed', failures = 0, pin = \(found.pin), services_seq = NULL,
                    last_event = \("PIN \(pin) confirmed the key; IT policy sent"), last_event_at = now()
                WHERE user_id = \(found.user)
                """, logger: logger)
            let committed = try await queueActivated(userID: found.user, pin: pin, domain: domain, conn)
            return (ActivationResult(sessionID: confirm.sessionID, accepted: true), committed)
        }
    }
}
