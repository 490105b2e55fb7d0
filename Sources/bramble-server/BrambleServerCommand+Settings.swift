import ArgumentParser
import BrambleCore
import BrambleNet
import BrambleServer
import Foundation
import Logging

/// The node's settings, read through `DaemonSettings` (flags, then `BRAMBLE_<KEY>`, then
/// the settings file, then the defaults below), and their checks.
extension BrambleServerCommand {
    /// The settings' defaults: the reads pass them, and the options' help states them.
    enum Default {
        static let node = "node-a"
        static let srpID = "bramble"
        static let leaseMs = 1000
        static let heartbeatMs = 200
        static let relay = "127.0.0.1:3101"
        static let relayTimeoutMs = 600
        static let httpListen = "127.0.0.1:8080"
        static let dbHost = "127.0.0.1"
        static let dbPort = 5432
        static let dbUser = "bramble"
        static let dbName = "bramble"
        static let maxInFlight = 5
        static let resendAfter = 4 * 3600
        static let logLevel = "info"
        static let mailServiceUser = "bramble-service"
        static let mailChunkBytes = 2048
        static let mailMaxTextBytes = 32 * 1024
        static let mailSweepMs = 30_000
        static let mailWorkers = 8
        static let mailSendDeadlineMs = 10_000
        static let mailSubmissionTimeoutMs = 5_000
        static let imSessionLimit = 5_000
    }

    /// The secrets, each read from the file its setting names.
    static let secretFiles = [
        SecretFile(key: "secret.srp-keys", pathKey: "srp-key-file", what: "SRP key", trimmed: false),
        SecretFile(key: "secret.admin-token", pathKey: "admin-token-file", what: "admin token"),
        SecretFile(key: "secret.db-password", pathKey: "db-password-file", what: "database password"),
        SecretFile(key: "secret.key-encryption-key", pathKey: "key-encryption-key-file", what: "key-encryption key"),
        SecretFile(key: "secret.previous-key-encryption-key", pathKey: "previous-key-encryption-key-file", what: "previous key-encryption key"),
        SecretFile(key: "secret.mail-service-password", pathKey: "mail-service-password-file", what: "mail service account password"),
        SecretFile(key: "secret.mail-notify-token", pathKey: "mail-notify-token-file", what: "mail notify token"),
    ]

    /// Every setting of the node, with the value its flag gave (nil: not given).
    var flags: [String: (any SettingsFlagValue)?] {
        [
            "node": node, "srp-id": srpID, "pair": pair, "advertise-url": advertiseURL,
            "lease-ms": leaseMs, "heartbeat-ms": heartbeatMs, "srp-key-file": srpKeyFile,
            "relay": relay, "relay-timeout-ms": relayTimeoutMs, "http-listen": httpListen,
            "admin-token-file": adminTokenFile, "db-host": dbHost, "db-port": dbPort,
            "patroni-api": patroniApi, "db-user": dbUser, "db-name": dbName,
            "db-password-file": dbPasswordFile, "key-encryption-key-file": keyEncryptionKeyFile, "previous-key-encryption-key-file": previousKeyEncryptionKeyFile, "max-in-flight": maxInFlight,
            "resend-after": resendAfter, "log-level": logLevel, "imap": imap, "mail-service-user": mailServiceUser,
            "mail-service-password-file": mailServicePasswordFile, "mail-chunk-bytes": mailChunkBytes,
            "mail-max-text-bytes": mailMaxTextBytes, "mail-notify-token-file": mailNotifyTokenFile, "mail-sweep-ms": mailSweepMs, "mail-workers": mailWorkers,
            "smtp-submission": smtpSubmission, "mail-send-deadline-ms": mailSendDeadlineMs, "mail-submission-timeout-ms": mailSubmissionTimeoutMs,
            "mail-device-delete": mailDeviceDelete, "xmpp": xmpp, "xmpp-domain": xmppDomain, "im-session-limit": imSessionLimit,
            "tls-ca": tlsCa, "tls-cert": tlsCert, "tls-key": tlsKey, "plaintext": plaintext,
        ]
    }

    /// Reads and checks every setting; bootstraps logging on the way.
    func nodeConfiguration() async throws -> NodeConfiguration {
        do { return try await readNodeConfiguration() } catch let failure as SettingsFailure { throw ValidationError(failure.description) }
    }

    private func readNodeConfiguration() async throws -> NodeConfiguration {
        let settings = try DaemonSettings(flags: flags, configFile: config, secretFiles: Self.secretFiles)
        BrambleLogging.bootstrap(level: try await settings.string("log-level", default: Default.logLevel))
        settings.logReads(to: Logger(label: "bramble-server.settings"))
        let node = try await settings.string("node", default: Default.node)
        let srpID = try await settings.string("srp-id", default: Default.srpID)
        let pair = try await settings.string("pair")
        let advertiseURL = try await settings.string("advertise-url")
        let leaseMs = try await settings.int("lease-ms", default: Default.leaseMs)
        let heartbeatMs = try await settings.int("heartbeat-ms", default: Default.heartbeatMs)
        let srpKeyFile = try await settings.requiredString("srp-key-file")
        let relay = try await settings.string("relay", default: Default.relay)
        let relayTimeoutMs = try await settings.int("relay-timeout-ms", default: Default.relayTimeoutMs)
        let httpListen = try await settings.string("http-listen", default: Default.httpListen)
        let adminTokenFile = try await settings.requiredString("admin-token-file")
        let dbHost = try await settings.string("db-host", default: Default.dbHost)
        let dbPort = try await settings.int("db-port", default: Default.dbPort)
        let patroniApi = try await settings.string("patroni-api")
        let dbUser = try await settings.string("db-user", default: Default.dbUser)
        let dbName = try await settings.string("db-name", default: Default.dbName)
        let maxInFlight = try await settings.int("max-in-flight", default: Default.maxInFlight)
        let resendAfter = try await settings.int("resend-after", default: Default.resendAfter)

        let keys = try SRPKeyFile.parse(try await settings.requiredSecret("secret.srp-keys"), path: srpKeyFile)
        guard let key = keys[srpID] else { throw ValidationError("\(srpKeyFile) has no key for SRP ID '\(srpID)'") }
        let token = try await settings.requiredSecret("secret.admin-token")
        guard token.count >= 16 else { throw ValidationError("the admin token in \(adminTokenFile) must be at least 16 characters") }
        guard let kek = MasterKeyVault.kek(base64: try await settings.requiredSecret("secret.key-encryption-key")) else {
            throw ValidationError("the key-encryption key file must hold base64 of 32 bytes (head -c 32 /dev/urandom | base64)")
        }
        var config = NodeConfiguration(srpKey: key, adminToken: token, keyEncryptionKey: kek)
        if let previous = try await settings.secret("secret.previous-key-encryption-key") {
            guard let previousKEK = MasterKeyVault.kek(base64: previous) else {
                throw ValidationError("the previous key-encryption key file must hold base64 of 32 bytes")
            }
            config.previousKeyEncryptionKey = previousKEK
        }
        guard Self.isName(node) else { throw ValidationError("--node must be 1–64 letters, digits, '.', '-' or '_', got '\(node)'") }
        config.node = node
        config.srpID = srpID
        config.pair = pair ?? srpID
        guard Self.isName(config.pair) else { throw ValidationError("--pair must be 1–64 letters, digits, '.', '-' or '_'") }
        config.advertisedURL = advertiseURL
        guard (20...60_000).contains(heartbeatMs) else { throw ValidationError("--heartbeat-ms must be 20…60000") }
        guard leaseMs >= 2 * heartbeatMs, leaseMs <= 600_000 else {
            throw ValidationError("--lease-ms must be at least twice --heartbeat-ms (\(heartbeatMs)) and at most 600000, got \(leaseMs)")
        }
        config.leaseMs = leaseMs
        config.heartbeatIntervalMs = heartbeatMs
        guard let relayAddress = HostPort(relay) else { throw ValidationError("--relay must be HOST:PORT, got '\(relay)'") }
        guard let http = HostPort(httpListen) else { throw ValidationError("--http-listen must be HOST:PORT, got '\(httpListen)'") }
        config.relay = relayAddress
        guard (30...60_000).contains(relayTimeoutMs) else { throw ValidationError("--relay-timeout-ms must be 30…60000, got \(relayTimeoutMs)") }
        config.relayTimeoutMs = UInt64(relayTimeoutMs)
        config.httpListen = http
        var hosts: [DatabaseHosts.Host] = []
        for spec in dbHost.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            guard let address = spec.contains(":") ? HostPort(spec) : HostPort(host: spec, port: dbPort), !spec.isEmpty else {
                throw ValidationError("--db-host must be HOST[:PORT][,HOST[:PORT]…], got '\(dbHost)'")
            }
            hosts.append(.init(address: address))
        }
        if let patroniApi {
            let urls = patroniApi.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard urls.count == hosts.count, urls.allSatisfy({ $0.hasPrefix("http://") || $0.hasPrefix("https://") }) else {
                throw ValidationError("--patroni-api needs one http(s) URL per --db-host entry (\(hosts.count))")
            }
            for i in hosts.indices { hosts[i].patroniURL = urls[i].hasSuffix("/") ? String(urls[i].dropLast()) : urls[i] }
        }
        config.database.hosts = hosts
        config.database.user = dbUser
        config.database.name = dbName
        config.database.password = try await settings.secret("secret.db-password")
        guard (1...64).contains(maxInFlight) else { throw ValidationError("--max-in-flight must be 1…64") }
        guard resendAfter >= 1 else { throw ValidationError("--resend-after must be at least 1 second") }
        config.dispatcher.maxInFlight = maxInFlight
        config.dispatcher.resendAfter = .seconds(resendAfter)
        config.mail = try await mailConfiguration(settings)
        config.im = try await imConfiguration(settings)
        let tls = try await settings.tlsFiles(logger: Logger(label: "bramble-server"))
        if let tls {
            do {
                config.relayTLS = try tls.clientContext()
                config.apiTLS = try tls.serverConfiguration(requireClientCertificate: false)
                // PostgreSQL, Patroni's REST API and IMAP are verified against the same CA;
                // the node presents no certificate to them (passwords authenticate it).
                config.database.tls = TLSFiles(ca: tls.ca)
                if let plain = config.database.hosts.compactMap(\.patroniURL).first(where: { !$0.hasPrefix("https://") }) {
                    throw ValidationError("--patroni-api \(plain) is not https://: with TLS on, Patroni's API is asked over HTTPS only (or set plaintext = yes)")
                }
                config.mail?.tls = try TLSFiles(ca: tls.ca).clientContext()
                config.im?.tls = try TLSFiles(ca: tls.ca).clientContext()
            } catch {
                throw ValidationError("\(error)")
            }
        }
        return config
    }

    /// (Its `tls` is set with the node's other TLS settings.)
    private func imConfiguration(_ settings: DaemonSettings) async throws -> CollaborationService.Configuration? {
        guard let xmpp = try await settings.string("xmpp") else {
            for key in ["xmpp-domain", "im-session-limit"] where try await settings.string(key) != nil {
                throw ValidationError("--\(key) is set but --xmpp is not: set --xmpp (the IM server's client listener) or drop it")
            }
            return nil
        }
        guard let address = HostPort(xmpp) else { throw ValidationError("--xmpp must be HOST:PORT, got '\(xmpp)'") }
        guard let domain = try await settings.string("xmpp-domain") else { throw ValidationError("--xmpp needs --xmpp-domain (the IM server's XMPP domain)") }
        guard !domain.isEmpty, domain.utf8.count <= 253, domain.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" }) else {
            throw ValidationError("--xmpp-domain must be a domain name, got '\(domain)'")
        }
        var im = CollaborationService.Configuration(xmpp: address, tls: nil, domain: domain.lowercased())
        let limit = try await settings.int("im-session-limit", default: Default.imSessionLimit)
        guard (1...100_000).contains(limit) else { throw ValidationError("--im-session-limit must be 1…100000") }
        im.serverSessionLimit = limit
        return im
    }

    /// (IMAPS: its `tls` is set with the node's other TLS settings.)
    private func mailConfiguration(_ settings: DaemonSettings) async throws -> MessagingAgent.Configuration? {
        guard let imap = try await settings.string("imap") else {
            var set: [String] = []
            for key in ["mail-service-password-file", "mail-notify-token-file", "mail-service-user", "smtp-submission", "mail-device-delete"] where try await settings.string(key) != nil {
                set.append(key)
            }
            for key in ["mail-chunk-bytes", "mail-max-text-bytes", "mail-sweep-ms", "mail-workers", "mail-send-deadline-ms", "mail-submission-timeout-ms"]
            where try await settings.int(key) != nil {
                set.append(key)
            }
            if let key = set.first {
                throw ValidationError("--\(key) is set but --imap is not: set --imap (the mail server's IMAP listener) or drop it")
            }
            return nil
        }
        guard let address = HostPort(imap) else { throw ValidationError("--imap must be HOST:PORT, got '\(imap)'") }
        guard try await settings.string("mail-service-password-file") != nil else {
            throw ValidationError("--imap needs --mail-service-password-file (the service account's password)")
        }
        var mail = MessagingAgent.Configuration(imap: address, tls: nil,
                                                servicePassword: try await settings.requiredSecret("secret.mail-service-password"))
        let user = try await settings.string("mail-service-user", default: Default.mailServiceUser)
        guard Self.isName(user) else { throw ValidationError("--mail-service-user must be 1–64 letters, digits, '.', '-' or '_'") }
        mail.serviceUser = user
        let chunk = try await settings.int("mail-chunk-bytes", default: Default.mailChunkBytes)
        guard (256...MailItem.maxChunkLength).contains(chunk) else { throw ValidationError("--mail-chunk-bytes must be 256…\(MailItem.maxChunkLength)") }
        let maxText = try await settings.int("mail-max-text-bytes", default: Default.mailMaxTextBytes)
        guard (chunk...(1 << 20)).contains(maxText) else { throw ValidationError("--mail-max-text-bytes must be --mail-chunk-bytes (\(chunk))…1048576") }
        let sweep = try await settings.int("mail-sweep-ms", default: Default.mailSweepMs)
        guard (100...3_600_000).contains(sweep) else { throw ValidationError("--mail-sweep-ms must be 100…3600000") }
        let workers = try await settings.int("mail-workers", default: Default.mailWorkers)
        guard (1...64).contains(workers) else { throw ValidationError("--mail-workers must be 1…64") }
        (mail.chunkBytes, mail.maxTextBytes, mail.sweepIntervalMs, mail.workers) = (chunk, maxText, UInt64(sweep), workers)
        if let submission = try await settings.string("smtp-submission") {
            guard let address = HostPort(submission) else { throw ValidationError("--smtp-submission must be HOST:PORT, got '\(submission)'") }
            mail.submission = address
        }
        let deadline = try await settings.int("mail-send-deadline-ms", default: Default.mailSendDeadlineMs)
        guard (1_000...300_000).contains(deadline) else { throw ValidationError("--mail-send-deadline-ms must be 1000…300000") }
        let serverTimeout = try await settings.int("mail-submission-timeout-ms", default: Default.mailSubmissionTimeoutMs)
        guard (1_000...3_600_000).contains(serverTimeout) else { throw ValidationError("--mail-submission-timeout-ms must be 1000…3600000") }
        (mail.sendDeadlineMs, mail.submissionServerTimeoutMs) = (deadline, serverTimeout)
        let delete = try await settings.string("mail-device-delete", default: MessagingAgent.DeviceDelete.expunge.rawValue)
        guard let deviceDelete = MessagingAgent.DeviceDelete(rawValue: delete) else {
            throw ValidationError("--mail-device-delete must be expunge or trash, got '\(delete)'")
        }
        mail.deviceDelete = deviceDelete
        if let token = try await settings.secret("secret.mail-notify-token") {
            guard token.count >= 16 else { throw ValidationError("the mail notify token must be at least 16 characters") }
            mail.notifyToken = token
        }
        return mail
    }
}
