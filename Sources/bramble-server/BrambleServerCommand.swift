import ArgumentParser
import BrambleCore
import BrambleNet
import BrambleServer
import Foundation
import Logging
import ServiceLifecycle

@main
struct BrambleServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bramble-server",
        abstract: "One Bramble node of an HA pair: Router, Dispatcher, push and admin API over the configuration database.",
        discussion: """
            The node applies the database migrations it needs and starts as a standby of its pair. Its HA manager renews a lease in the configuration database every heartbeat; the node holding the lease is the primary: it registers the SRP ID with the relay at the lease's epoch and delivers every queued item, compressed and encrypted under each device's master key. When the primary's heartbeat goes stale, its lease expires, its health score falls below the failover threshold, or an operator runs `bramble failover`, the standby takes the lease (the epoch goes up by one) and the relay then refuses the old primary. Both nodes accept pushes. SIGTERM or SIGINT demote the node first (SRP link closed, lease released).

            Each setting comes from its flag, else from the environment variable BRAMBLE_<KEY> (the key in upper case, '-' as '_': BRAMBLE_DB_HOST), else from the settings file (--config or BRAMBLE_CONFIG; keys as the options without dashes), else its default. A key or BRAMBLE_ variable that names no setting is an error.

            Secrets are read from files, never from flags, the environment or the settings file: the SRP key file (lines 'SRP_ID BASE64_KEY', as the relay's), the admin token file, the key-encryption key file (and, during its rotation, the previous one), the database password file, and with --imap the mail service password and notify token files. Each must be a regular file of this user's (or root's) that no one else can read (mode 0600), else it is refused. Logs show them as <REDACTED>.

            Every link is TLS, verified against tls-ca. The SRP link is mutual TLS: the node verifies the relay's certificate (so a fake relay cannot pass the node's proof on) and presents its own (tls-cert, tls-key), which its HTTPS API also serves. PostgreSQL (verify-full), Patroni's REST API (https:// in patroni-api) and the mail server (IMAPS: TLS from the first byte) must present certificates from the same CA for the addresses dialled. plaintext = yes turns TLS off on every link, with a warning.
            """)

    // Every setting is optional here, with no ArgumentParser default: a flag given beats
    // BRAMBLE_<KEY> and the settings file; the default lives in the read (Default) and
    // the help states it. See BrambleServerCommand+Settings.swift.
    @Option(help: "This node's name (default: \(Default.node)).") var node: String?
    @Option(help: "SRP ID of this node's pair (default: \(Default.srpID)).") var srpID: String?
    @Option(help: "HA pair this node belongs to (default: the SRP ID).") var pair: String?
    @Option(help: "URL at which the peer node and `bramble` reach this node (default: https://HTTP-LISTEN, or http:// with plaintext = yes).") var advertiseURL: String?
    @Option(help: "Milliseconds the HA lease lasts after each renewal (default: \(Default.leaseMs)).") var leaseMs: Int?
    @Option(help: "Milliseconds between heartbeats: lease renewal, observation, heartbeat row (default: \(Default.heartbeatMs)).") var heartbeatMs: Int?
    @Option(help: "File of 'SRP_ID BASE64_KEY' lines holding this SRP ID's key (required).") var srpKeyFile: String?
    @Option(help: "Relay SRP listener, HOST:PORT (default: \(Default.relay)).") var relay: String?
    @Option(help: "Milliseconds without a frame from the relay after which the SRP link counts as lost (the node pings every third of it). A relay gone silent makes the primary's wireless network unhealthy at once; one that closes the link or refuses it gets a 1.5 s grace (default: \(Default.relayTimeoutMs)).") var relayTimeoutMs: Int?
    @Option(help: "HTTP listener (health, metrics, push, admin), HOST:PORT (default: \(Default.httpListen)).") var httpListen: String?
    @Option(help: "File holding the bearer token for the push and admin APIs, at least 16 characters (required).") var adminTokenFile: String?
    @Option(help: "Configuration database host, or HOST[:PORT],HOST[:PORT],… for each member of a Patroni cluster; the node writes to whichever is the primary (default: \(Default.dbHost)).") var dbHost: String?
    @Option(help: "Configuration database port, for hosts given without one (default: \(Default.dbPort)).") var dbPort: Int?
    @Option(help: "Patroni REST API URL of each database host, comma-separated in the same order (optional; makes finding the primary safe when a Patroni dies).") var patroniApi: String?
    @Option(help: "Configuration database role (default: \(Default.dbUser)).") var dbUser: String?
    @Option(help: "Configuration database name (default: \(Default.dbName)).") var dbName: String?
    @Option(help: "File holding the bramble role's database password (SCRAM; PostgreSQL takes no connection over TCP without one).") var dbPasswordFile: String?
    @Option(help: "File holding the key-encryption key, base64 of 32 random bytes, mode 0600 (required): device master keys are stored sealed under it. Both nodes of a pair use the same one.") var keyEncryptionKeyFile: String?
    @Option(help: "During a rotation of the key-encryption key: the file holding the previous one. Keys it sealed still open; once both nodes run with the new key, `bramble keys reseal` seals them all under it; then remove this setting.") var previousKeyEncryptionKeyFile: String?
    @Option(help: "Unacknowledged items in flight per device (default: \(Default.maxInFlight), as BES).") var maxInFlight: Int?
    @Option(help: "Seconds before an unacknowledged item is sent again (default: \(Default.resendAfter), 4 h as BES).") var resendAfter: Int?
    @Option(help: "The mail server's IMAPS listener (IMAP over TLS from the first byte; plain IMAP with plaintext = yes), HOST:PORT, whose mailboxes the Messaging Agent watches (optional: without it the Agent stays idle).") var imap: String?
    @Option(help: "The mail server's service account, a Dovecot master user: the Agent logs in as USER*ACCOUNT (default: \(Default.mailServiceUser)).") var mailServiceUser: String?
    @Option(help: "File holding the service account's password (required with --imap).") var mailServicePasswordFile: String?
    @Option(help: "File holding the token the mail server's notifications (POST /mail/notify) carry; without it the sweep alone finds new mail.") var mailNotifyTokenFile: String?
    @Option(help: "Bytes of a mail's text in its first chunk and in each More (default: \(Default.mailChunkBytes), as BES).") var mailChunkBytes: Int?
    @Option(help: "Most bytes of one mail's text a device can get, More included (default: \(Default.mailMaxTextBytes)).") var mailMaxTextBytes: Int?
    @Option(help: "Milliseconds between sweeps that check every watched mailbox, which find mail a lost notification missed (default: \(Default.mailSweepMs)).") var mailSweepMs: Int?
    @Option(help: "Mailboxes checked at once (default: \(Default.mailWorkers)).") var mailWorkers: Int?
    @Option(help: "The mail server's submission service, HOST:PORT (SMTP with TLS from the first byte as --imap; SASL PLAIN as each user through the service account), which sends the mail devices write. Without it a device's send, reply or forward fails with \"this server sends no mail\".") var smtpSubmission: String?
    @Option(help: "The IM server's XMPP client listener (XMPP with TLS from the first byte, XEP-0368; plain with plaintext = yes), HOST:PORT, that the Collaboration Service logs devices' users in to (optional: without it a device's IM login fails).") var xmpp: String?
    @Option(help: "The XMPP domain of the IM server (required with --xmpp): a device's IM login must be a JID in it.") var xmppDomain: String?
    @Option(help: "This server's own limit of IM sessions (default \(Default.imSessionLimit)): with no maximum set for the pair (`bramble im settings`), a login past it fails (\"Failed\").") var imSessionLimit: Int?
    @Option(help: "Milliseconds an attempt at sending a device's mail may take up to its final dot; past it, the mail is not sent and is tried again (default: \(Default.mailSendDeadlineMs)).") var mailSendDeadlineMs: Int?
    @Option(help: "The submission service's own timeout in milliseconds (Postfix's smtpd_timeout there; default: \(Default.mailSubmissionTimeoutMs)). An attempt left without an answer is settled after its deadline plus this plus 15 s.") var mailSubmissionTimeoutMs: Int?
    @Option(help: "What a device's delete does in the mailbox (reconciliation): expunge (the default) or trash (moved to the folder marked \\Trash).") var mailDeviceDelete: String?
    @Option(help: "The private CA's certificate (PEM): the relay's certificate must chain to it.") var tlsCa: String?
    @Option(help: "This node's certificate (PEM), presented to the relay (mutual TLS on the SRP link).") var tlsCert: String?
    @Option(help: "This node's private key (PEM, mode 0600).") var tlsKey: String?
    @Option(help: "yes: every link without TLS (relay, API, database, IMAP; a warning is logged); no (default) needs tls-ca, tls-cert and tls-key.") var plaintext: String?
    @Option(help: "trace, debug (also logs every setting read and where it came from, secrets redacted), info, notice, warning, error or critical (default: \(Default.logLevel)).") var logLevel: String?
    @Option(help: "Settings file of 'key = value' lines, keys named as these options without dashes (also BRAMBLE_CONFIG). Precedence: flags, then BRAMBLE_<KEY> environment variables, then the file, then the default.") var config: String?

    func run() async throws {
        let config = try await nodeConfiguration()

        try await Node.run(configuration: config, logger: Logger(label: "bramble-server"))
    }

    static func isName(_ s: String) -> Bool {
        (1...64).contains(s.count) && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
    }
}
