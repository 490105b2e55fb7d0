import Logging
import PostgresNIO

/// The configuration database schema as numbered migrations. The server applies the
/// missing ones at start, inside one transaction holding an advisory lock, so two nodes
/// starting at once apply each migration exactly once. Never edit an applied migration:
/// add a new one.
enum Migrations {
    struct Migration {
        let version: Int
        let name: String
        let sql: [PostgresQuery]
    }

    /// Advisory lock key for schema changes ("brambl" in ASCII).
    static let lockKey: Int64 = 0x62_72_61_6d_62_6c

    static let all: [Migration] = [
        Migration(version: 1, name: "users, devices, outbound queue, events", sql: [
            """
            CREATE TABLE users (
                id bigserial PRIMARY KEY,
                email text NOT NULL UNIQUE,
                display_name text NOT NULL DEFAULT '',
                created_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            """
            CREATE TABLE devices (
                pin bigint PRIMARY KEY CHECK (pin >= 0 AND pin <= 4294967295),
                user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
                master_key text NOT NULL,
                last_seq bigint NOT NULL DEFAULT 0,
                created_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            "CREATE INDEX devices_user ON devices(user_id)",
            """
            CREATE TABLE outbound (
                pin bigint NOT NULL REFERENCES devices(pin) ON DELETE CASCADE,
                seq bigint NOT NULL,
                push_id uuid NOT NULL,
                service smallint NOT NULL,
                subject text NOT NULL,
                body text NOT NULL,
                state text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sent', 'acked', 'expired')),
                created_at timestamptz NOT NULL DEFAULT now(),
                expires_at timestamptz NOT NULL,
                sent_at timestamptz,
                acked_at timestamptz,
                PRIMARY KEY (pin, seq)
            )
            """,
            "CREATE INDEX outbound_push ON outbound(push_id)",
            "CREATE INDEX outbound_open ON outbound(pin, seq) WHERE state IN ('queued', 'sent')",
            """
            CREATE TABLE events (
                id bigserial PRIMARY KEY,
                at timestamptz NOT NULL DEFAULT now(),
                node text NOT NULL,
                kind text NOT NULL,
                epoch bigint,
                detail text NOT NULL DEFAULT ''
            )
            """,
            """
            CREATE TABLE srp_epoch (
                srp_id text PRIMARY KEY,
                epoch bigint NOT NULL DEFAULT 0
            )
            """,
        ]),
        Migration(version: 2, name: "HA lease and heartbeats", sql: [
            """
            CREATE TABLE lease (
                pair text PRIMARY KEY,
                holder text,
                epoch bigint NOT NULL DEFAULT 0,
                expires_at timestamptz NOT NULL DEFAULT 'epoch',
                handover_to text
            )
            """,
            """
            CREATE TABLE heartbeats (
                node text PRIMARY KEY,
                pair text NOT NULL,
                role text NOT NULL,
                epoch bigint,
                score int NOT NULL,
                requests_lease boolean NOT NULL DEFAULT false,
                written_at timestamptz NOT NULL DEFAULT now()
            )
            """,
        ]),
        Migration(version: 3, name: "pair thresholds, heartbeat details, epochs from the lease", sql: [
            """
            CREATE TABLE pairs (
                pair text PRIMARY KEY,
                failover_threshold int NOT NULL DEFAULT 2 CHECK (failover_threshold BETWEEN 0 AND 12),
                promotion_threshold int NOT NULL DEFAULT 3 CHECK (promotion_threshold BETWEEN 0 AND 12)
            )
            """,
            "ALTER TABLE heartbeats ADD COLUMN api_url text NOT NULL DEFAULT ''",
            "ALTER TABLE heartbeats ADD COLUMN parameters text NOT NULL DEFAULT '[]'",
            // The lease's epoch is now what a node registers with; carry over the highest
            // epoch a relay may remember, so the first lease holder is not refused.
            """
            INSERT INTO lease (pair, epoch) SELECT srp_id, epoch FROM srp_epoch
            ON CONFLICT (pair) DO UPDATE SET epoch = GREATEST(lease.epoch, EXCLUDED.epoch)
            """,
            "DROP TABLE srp_epoch",
        ]),
        Migration(version: 4, name: "push idempotency keys, event reasons", sql: [
            // A push's Idempotency-Key, kept 24 hours (PushCommitter prunes older ones), so a
            // retry through either node, before or after a failover, gets the first answer.
            """
            CREATE TABLE push_keys (
                key text PRIMARY KEY,
                fingerprint text NOT NULL,
                push_id uuid NOT NULL,
                devices text NOT NULL,  -- the PINs, comma-separated
                created_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            "CREATE INDEX push_keys_created ON push_keys(created_at)",
            "ALTER TABLE events ADD COLUMN reason text",
        ]),
        Migration(version: 5, name: "mail: mailbox watermarks, mail items, device requests", sql: [
            // A mail or More item's encoded payload (a push keeps subject and body).
            "ALTER TABLE outbound ADD COLUMN payload bytea",
            // Each watched mailbox's watermark: its UIDVALIDITY and the last UID enqueued,
            // advanced in the transaction that enqueues the mail.
            """
            CREATE TABLE mailboxes (
                user_id bigint PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
                uid_validity bigint,
                last_uid bigint NOT NULL DEFAULT 0,
                checked_at timestamptz,
                last_mail_at timestamptz,
                last_message_id text,
                last_error text,
                error_at timestamptz
            )
            """,
            // Each mail sent to a device: its text up to the per-message cap, and how much of
            // it the device has been sent (More continues from there). (pin, message_id) is
            // unique: the same mail never reaches a device twice.
            """
            CREATE TABLE mail_items (
                pin bigint NOT NULL REFERENCES devices(pin) ON DELETE CASCADE,
                message_id text NOT NULL,
                user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                uid_validity bigint NOT NULL,
                uid bigint NOT NULL,
                text text NOT NULL,
                sent_bytes int NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (pin, message_id)
            )
            """,
            "CREATE INDEX mail_items_created ON mail_items(created_at)",
            // Device requests, recorded under (PIN, the device's request number) before the
            // device hears they arrived; a retry finds its row and acts no more.
            """
            CREATE TABLE device_requests (
                pin bigint NOT NULL REFERENCES devices(pin) ON DELETE CASCADE,
                ref bigint NOT NULL,
                kind smallint NOT NULL,
                message_id text NOT NULL DEFAULT '',
                state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
                detail text NOT NULL DEFAULT '',
                received_at timestamptz NOT NULL DEFAULT now(),
                done_at timestamptz,
                PRIMARY KEY (pin, ref)
            )
            """,
            "CREATE INDEX device_requests_pending ON device_requests(pin, ref) WHERE state = 'pending'",
            // Global filter rules, tried in position order (1, 2, …); the first match decides.
            """
            CREATE TABLE mail_filters (
                id bigserial PRIMARY KEY,
                position int NOT NULL CHECK (position >= 1),
                field text NOT NULL CHECK (field IN ('from', 'to', 'cc', 'subject', 'importance')),
                contains text NOT NULL,
                action text NOT NULL CHECK (action IN ('forward', 'forward_high_priority', 'do_not_forward')),
                created_at timestamptz NOT NULL DEFAULT now()
            )
            """,
        ]),
        // A device's requests numbered at or below its floor were answered and forgotten:
        // one that comes again is a replay, acknowledged and not acted on.
        Migration(version: 6, name: "device request floor", sql: [
            "ALTER TABLE devices ADD COLUMN request_floor bigint NOT NULL DEFAULT 0",
        ]),
        // Push applications' tokens: only their SHA-256 is kept; a revoked one stays listed.
        Migration(version: 7, name: "push applications", sql: [
            """
            CREATE TABLE push_apps (
                name text PRIMARY KEY,
                token_sha256 bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
                created_at timestamptz NOT NULL DEFAULT now(),
                revoked_at timestamptz
            )
            """,
        ]),
        // Which key-encryption key the master keys are sealed under (an HMAC of it, not
        // the key): a node with another KEK refuses to start instead of serving nothing.
        Migration(version: 8, name: "key-encryption key check", sql: [
            """
            CREATE TABLE key_encryption (
                only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
                kek_check bytea NOT NULL
            )
            """,
        ]),
        // Which push application made a push (none: the operator), so that it may read
        // back the state of its own pushes and of no other.
        Migration(version: 9, name: "push owners", sql: [
            """
            CREATE TABLE push_owners (
                push_id uuid PRIMARY KEY,
                app text NOT NULL REFERENCES push_apps(name),
                created_at timestamptz NOT NULL DEFAULT now()
            )
            """,
        ]),
        // A device's sends, replies and forwards: the request's own encoding (NULL: a More
        // of message_id, as recorded before), and one row per mail to send, recorded with
        // the request before it is acknowledged. Its Message-ID is derived from (PIN, ref)
        // (`OutgoingMessageID`), so a new primary can look for a send the old one may have
        // completed. States: pending → submitting (an attempt under attempt_epoch, which
        // must end by deadline_at) → sent | failed; a submitting row whose attempt ended
        // without an answer is in doubt until the user's Sent folder settles it.
        Migration(version: 10, name: "device request payloads; outgoing mail", sql: [
            "ALTER TABLE device_requests ADD COLUMN payload bytea",
            """
            CREATE TABLE outgoing_mail (
                pin bigint NOT NULL,
                ref bigint NOT NULL,
                user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                message_id text NOT NULL UNIQUE,
                state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'submitting', 'sent', 'failed')),
                attempts int NOT NULL DEFAULT 0,
                attempt_epoch bigint,
                attempt_node text,
                deadline_at timestamptz,
                next_attempt_at timestamptz NOT NULL DEFAULT now(),
                detail text NOT NULL DEFAULT '',
                resolution text CHECK (resolution IN ('accepted', 'witness', 'refused', 'abandoned')),
                filed boolean NOT NULL DEFAULT false,
                created_at timestamptz NOT NULL DEFAULT now(),
                done_at timestamptz,
                PRIMARY KEY (pin, ref),
                FOREIGN KEY (pin, ref) REFERENCES device_requests(pin, ref) ON DELETE CASCADE
            )
            """,
            "CREATE INDEX outgoing_mail_open ON outgoing_mail(next_attempt_at) WHERE state IN ('pending', 'submitting') OR (state = 'sent' AND NOT filed)",
        ]),
        // Reconciliation: per user, on by default. The state of every mail a device has, as
        // last seen in the mailbox (seen NULL: not known yet, adopted silently), and each
        // folder's change watermark (UIDVALIDITY, HIGHESTMODSEQ; CONDSTORE/QRESYNC). A
        // device's change and a check of the mailbox both bump users.state_version, and a
        // check commits only if it did not move meanwhile (it read the rows before).
        // Backfilled from mail_items (INBOX, seen unknown), so an upgrade floods no device.
        Migration(version: 11, name: "reconciliation", sql: [
            "ALTER TABLE users ADD COLUMN reconciliation boolean NOT NULL DEFAULT true, ADD COLUMN state_version bigint NOT NULL DEFAULT 0",
            """
            CREATE TABLE mailbox_messages (
                user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                message_id text NOT NULL,
                folder text NOT NULL,
                uid_validity bigint NOT NULL,
                uid bigint NOT NULL,
                seen boolean,
                deleted boolean NOT NULL DEFAULT false,
                updated_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (user_id, message_id)
            )
            """,
            "CREATE INDEX mailbox_messages_folder ON mailbox_messages(user_id, folder, uid)",
            """
            CREATE TABLE folder_watermarks (
                user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                folder text NOT NULL,
                uid_validity bigint NOT NULL,
                highest_modseq bigint NOT NULL,
                PRIMARY KEY (user_id, folder)
            )
            """,
            """
            INSERT INTO mailbox_messages (user_id, message_id, folder, uid_validity, uid)
            SELECT DISTINCT ON (user_id, message_id) user_id, message_id, 'INBOX', uid_validity, uid FROM mail_items
            ORDER BY user_id, message_id, created_at DESC
            ON CONFLICT DO NOTHING
            """,
        ]),
        // Instant messaging (the Collaboration Service). Per user, allowed by default. The
        // pair's limits (one row). The session cache: one XMPP session per device, with
        // the SCRAM keys it logs back in with (sealed under the KEK), the presence it shows,
        // and its archive watermark (the last MAM id delivered in order: after a failover the
        // new primary asks the IM server's archive for what came after). Each message a
        // device got, by its archive id, so a message seen live and in the archive is shown
        // once. A device's message whose sending is in doubt (a node died after sending it).
        Migration(version: 12, name: "instant messaging", sql: [
            "ALTER TABLE users ADD COLUMN im boolean NOT NULL DEFAULT true",
            """
            CREATE TABLE im_settings (
                id boolean PRIMARY KEY DEFAULT true CHECK (id),
                max_sessions integer CHECK (max_sessions > 0),
                idle_timeout_ms bigint CHECK (idle_timeout_ms > 0)
            )
            """,
            "INSERT INTO im_settings DEFAULT VALUES",
            """
            CREATE TABLE im_sessions (
                pin bigint PRIMARY KEY REFERENCES devices(pin) ON DELETE CASCADE,
                jid text NOT NULL,
                scram_keys text NOT NULL,
                presence text NOT NULL DEFAULT 'available',
                archive_after text,
                since timestamptz NOT NULL DEFAULT now(),
                last_activity timestamptz NOT NULL DEFAULT now()
            )
            """,
            """
            CREATE TABLE im_delivered (
                pin bigint NOT NULL REFERENCES devices(pin) ON DELETE CASCADE,
                message_key text NOT NULL,
                delivered_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (pin, message_key)
            )
            """,
            "CREATE INDEX im_delivered_age ON im_delivered(delivered_at)",
            """
            CREATE TABLE im_outgoing (
                pin bigint NOT NULL,
                ref bigint NOT NULL,
                attempted_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (pin, ref),
                FOREIGN KEY (pin, ref) REFERENCES device_requests(pin, ref) ON DELETE CASCADE
            )
            """,
        ]),
        // Over-the-air activation and the Policy Service. The domain's Ed25519 signing key
        // (sealed under the KEK), IT policies by name (a user without one has "default"),
        // each user's activation: its password's secret (scrypt, sealed), expiry, failed
        // runs and state (pending → in_progress: a run answered → confirmed: the key agreed,
        // the password used → completed once the service books are acknowledged; locked);
        // every run by its CPace session id (a seen one is refused), with the sealed ISK
        // until its confirmation (so a new primary can check the device's key confirmation)
        // and then the SHA-256 of that confirmation (a retry is answered alike); and
        // which policy version each device was sent and confirmed.
        Migration(version: 13, name: "activation over the air, IT policies", sql: [
            """
            CREATE TABLE domain_keys (
                only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
                signing_key text NOT NULL,
                public_key bytea NOT NULL CHECK (length(public_key) = 32),
                created_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            """
            CREATE TABLE policies (
                name text PRIMARY KEY,
                version bigint NOT NULL DEFAULT 1,
                rules text NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            "ALTER TABLE users ADD COLUMN policy text REFERENCES policies(name)",
            """
            CREATE TABLE activations (
                user_id bigint PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
                secret text NOT NULL,
                expires_at timestamptz NOT NULL,
                failures int NOT NULL DEFAULT 0,
                state text NOT NULL CHECK (state IN ('pending', 'in_progress', 'confirmed', 'locked', 'done')),
                pin bigint,
                services_seq bigint,
                last_event text NOT NULL DEFAULT '',
                last_event_at timestamptz NOT NULL DEFAULT now(),
                created_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            """
            CREATE TABLE activation_sessions (
                session_id bytea PRIMARY KEY CHECK (length(session_id) = 16),
                user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                pin bigint NOT NULL,
                request bytea NOT NULL,
                mail_id text NOT NULL DEFAULT '',
                response bytea,
                isk text,
                confirm_tag bytea,
                state text NOT NULL CHECK (state IN ('responded', 'confirmed', 'failed')),
                created_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            """
            CREATE TABLE device_policies (
                pin bigint PRIMARY KEY REFERENCES devices(pin) ON DELETE CASCADE,
                policy text NOT NULL,
                version bigint NOT NULL,
                state text NOT NULL CHECK (state IN ('sent', 'applied', 'refused')),
                detail text NOT NULL DEFAULT '',
                updated_at timestamptz NOT NULL DEFAULT now()
            )
            """,
        ]),
        // The Policy Service afterwards: a policy changed or assigned is "due" on every device
        // of its users until the primary signs and sends it; IT administration commands
        // (lock with a new device password's verifier, wipe, wipe-work) wait queued for the
        // primary, are sent, and are confirmed (or refused, with why) by the device, whose
        // answer to a policy names it by digest; a device that confirmed a wipe
        // is "wiped" (its master key forgotten: it can no longer connect).
        Migration(version: 14, name: "IT policy changes and IT administration commands", sql: [
            "ALTER TABLE device_policies DROP CONSTRAINT device_policies_state_check",
            "ALTER TABLE device_policies ADD CONSTRAINT device_policies_state_check CHECK (state IN ('due', 'sent', 'applied', 'refused'))",
            // SHA-256 of the policy as signed for the device: its answer names it.
            "ALTER TABLE device_policies ADD COLUMN digest bytea",
            "ALTER TABLE devices DROP CONSTRAINT devices_status_check",
            "ALTER TABLE devices ADD CONSTRAINT devices_status_check CHECK (status IN ('active', 'disabled', 'wiped'))",
            "ALTER TABLE devices ADD COLUMN locked_at timestamptz",
            "ALTER TABLE devices ADD COLUMN wiped text CHECK (wiped IN ('all', 'work'))",
            "ALTER TABLE devices ADD COLUMN wiped_at timestamptz",
            """
            CREATE TABLE device_commands (
                id bigserial PRIMARY KEY,
                pin bigint NOT NULL REFERENCES devices(pin) ON DELETE CASCADE,
                kind text NOT NULL CHECK (kind IN ('lock', 'wipe', 'wipe-work')),
                lock_salt bytea,
                lock_verifier bytea,
                state text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sent', 'confirmed', 'refused')),
                detail text NOT NULL DEFAULT '',
                created_at timestamptz NOT NULL DEFAULT now(),
                sent_at timestamptz,
                confirmed_at timestamptz,
                CHECK ((kind = 'lock') = (lock_salt IS NOT NULL AND lock_verifier IS NOT NULL)),
                CHECK (lock_salt IS NULL OR length(lock_salt) = 16),
                CHECK (lock_verifier IS NULL OR length(lock_verifier) = 32)
            )
            """,
            "CREATE INDEX device_commands_open ON device_commands(state) WHERE state <> 'confirmed'",
        ]),
    ]

    /// Applies every missing migration; returns the versions applied now.
    @discardableResult
    static func apply(on client: PostgresClient, logger: Logger) async throws -> [Int] {
        try await client.withTransaction(logger: logger) { conn in
            try await conn.query("SELECT pg_advisory_xact_lock(\(lockKey))", logger: logger)
            try await conn.query("""
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version int PRIMARY KEY,
                    name text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """, logger: logger)
            var applied: Set<Int> = []
            for try await version in try await conn.query("SELECT version FROM schema_migrations", logger: logger)
                .decode(Int.self) { applied.insert(version) }
            var now: [Int] = []
            for migration in all where !applied.contains(migration.version) {
                for statement in migration.sql { try await conn.query(statement, logger: logger) }
                try await conn.query(
                    "INSERT INTO schema_migrations (version, name) VALUES (\(migration.version), \(migration.name))",
                    logger: logger)
                logger.info("applied migration", metadata: ["migration.version": "\(migration.version)", "migration.name": "\(migration.name)"])
                now.append(migration.version)
            }
            return now
        }
    }
}
