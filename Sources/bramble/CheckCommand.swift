import ArgumentParser
import AsyncHTTPClient
import BrambleAPI
import BrambleCore
import BrambleNet
import Foundation
import NIOCore
import Synchronization

/// `bramble check`: a Nagios/Icinga plugin. The verdicts are `BrambleCore`'s
/// (`PairCheck`, `NodeCheck`, `RelayCheck`, `MailboxCheck`); this only parses, fetches and
/// prints. Nagios reads an exit code above 3 (ArgumentParser's 64 for a usage error) as
/// garbage, so the checks' own arguments are parsed here, where every error is UNKNOWN (3).
struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "A Nagios/Icinga plugin: check the pair, one node, the relay or a mailbox; one status line with performance data.",
        discussion: """
            bramble check pair [--url A --url B] [--ca-file F] [--timeout S] [--score-warning N] [--queue-warning N] [--queue-critical N]
            bramble check node --url A [--ca-file F] [--timeout S] [--score-warning N] [--queue-warning N] [--queue-critical N]
            bramble check relay --url RELAY [--srp-id ID ...] [--ca-file F] [--timeout S] [--stored-warning MIB] [--stored-critical MIB]
            bramble check mailbox EMAIL [--url A ...] [--token-file F] [--ca-file F] [--plaintext] [--timeout S] [--age-warning S] [--age-critical S]

            Exit codes (Nagios plugin API): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (bad arguments, an answer that cannot be read, the check not done within --timeout). Each node is given 80% of --timeout to answer, so one that does not is reported as not answering (WARNING for the standby, CRITICAL for `check node`) rather than as a time-out. The first line is `BRAMBLE PAIR OK - what was found | performance data`; lines after it explain a problem (each unhealthy health parameter with its detail).

            pair: CRITICAL when no node or both nodes serve as primary, when the primary is below the failover threshold, or when the primary is not healthy and no standby could take over; WARNING when the standby is unreachable or could not take over (/health/ready), the primary is degraded or not ready, or a node has an unhealthy parameter (its score below --score-warning, default all 12). node: the same for one node; a node that does not answer is CRITICAL. relay: CRITICAL when it does not answer or no node is registered for an --srp-id; WARNING when no node is registered at all. mailbox: CRITICAL when the Messaging Agent's last check of the user's INBOX failed, or its last good check is older than --age-critical (300 s); WARNING past --age-warning (120 s), for a user with no device, or a mailbox not checked yet.

            pair, node and relay read the open endpoints (/health, /health/ready, /metrics; no token). The nodes come from --url, else BRAMBLE_URL, else the local cluster's status file, as for the other commands; mailbox asks the admin API with the admin token (--token-file or BRAMBLE_TOKEN) exactly as `bramble user show` does. `bramble check pair --help` shows each check's options.
            """)

    @Argument(parsing: .captureForPassthrough, help: ArgumentHelp("pair, node, relay or mailbox, then its arguments.", valueName: "check"))
    var words: [String] = []

    func run() async throws {
        let started = ContinuousClock.now
        if let first = words.first, ["--help", "-h", "help"].contains(first) {
            print(Self.helpMessage())
            return
        }
        guard let name = words.first, ["pair", "node", "relay", "mailbox"].contains(name) else {
            let said = words.first.map { "unknown check '\($0)'" } ?? "no check given"
            throw ExitCode(CheckOutput.finish(.unknown("\(said): use pair, node, relay or mailbox", details: Self.usage), service: "BRAMBLE CHECK")!)
        }
        let service = "BRAMBLE " + name.uppercased()
        let prepared: PreparedCheck
        do {
            prepared = try Self.prepare(name, Array(words.dropFirst()))
        } catch let usage as UsageProblem {
            if usage.isHelp { print(usage.text); throw ExitCode.success }
            throw ExitCode(CheckOutput.finish(.unknown(usage.text, details: usage.usage), service: service)!)
        } catch {
            // The nodes, the token or the CA as the other commands find them: what is missing.
            throw ExitCode(CheckOutput.finish(.unknown("\(error)"), service: service)!)
        }
        let timeout = prepared.timeout
        // The watchdog: past --timeout the answer is UNKNOWN, whatever is still under way.
        Task.detached {
            try? await Task.sleep(for: .milliseconds(Int64(timeout * 1000)))
            if let code = CheckOutput.finish(.unknown("timed out after \(PerfDatum.number(timeout)) s"), service: service) { Foundation.exit(code) }
        }
        var result = await prepared.run(timeout * 0.8)
        let elapsed = ContinuousClock.now - started
        result.perfdata.append(PerfDatum("time", Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18,
                                         unit: .seconds, min: 0))
        guard let code = CheckOutput.finish(result, service: service) else {
            try await Task.sleep(for: .seconds(3600))  // the watchdog printed first and is exiting
            throw ExitCode(NagiosState.unknown.rawValue)
        }
        throw ExitCode(code)
    }

    static var usage: [String] { [Pair.usageString(), Node.usageString(), Relay.usageString(), Mailbox.usageString()] }

    /// A check parsed and ready: its time limit and the work, given the time it may take
    /// for its requests (a little less than the limit, so that a node that does not
    /// answer is reported as such rather than as a time-out of the whole check).
    struct PreparedCheck {
        var timeout: Double
        var run: (_ budget: Double) async -> NagiosResult
    }

    static func prepare(_ check: String, _ arguments: [String]) throws -> PreparedCheck {
        switch check {
        case "pair": try parse(Pair.self, arguments).prepared()
        case "node": try parse(Node.self, arguments).prepared()
        case "relay": try parse(Relay.self, arguments).prepared()
        case "mailbox": try parse(Mailbox.self, arguments).prepared()
        default: throw UsageProblem(text: "unknown check '\(check)'", usage: usage)
        }
    }

    /// Why the arguments were refused (or help was asked for), with the check's usage.
    struct UsageProblem: Error {
        var text: String
        var usage: [String]
        var isHelp = false
    }

    static func parse<C: ParsableCommand>(_ type: C.Type, _ arguments: [String]) throws -> C {
        do {
            return try C.parse(arguments)
        } catch {
            if C.exitCode(for: error) == .success { throw UsageProblem(text: C.fullMessage(for: error), usage: [], isHelp: true) }
            throw UsageProblem(text: C.message(for: error), usage: [C.usageString()])
        }
    }
}

// MARK: The checks' arguments

extension CheckCommand {
    /// Where to ask and how long to wait: every check takes these.
    struct Target: ParsableArguments {
        @Option(help: ArgumentHelp("A node's (or the relay's) URL, e.g. https://10.0.0.21:8080; repeat it for each node of the pair.", valueName: "url")) var url: [String] = []
        @Option(help: ArgumentHelp("The private CA's certificate (PEM) the HTTPS certificates must chain to (else BRAMBLE_CA_FILE, else the local cluster's).",
                                   valueName: "file"))
        var caFile: String?
        @Option(help: ArgumentHelp("Seconds for the whole check (0.5–120); past it the answer is UNKNOWN. A node gets 80% of it to answer.",
                                   valueName: "seconds"))
        var timeout: Double = 10

        func validate() throws {
            guard (0.5...120).contains(timeout) else { throw ValidationError("--timeout must be 0.5…120 seconds") }
        }

        /// The URLs as given (the nodes': or else from BRAMBLE_URL or the local cluster's
        /// status file), each without a trailing `/health`, and the CA their HTTPS needs.
        func resolved(nodes: Bool) throws -> (urls: [String], ca: String?) {
            let env = ProcessInfo.processInfo.environment.filter { !$0.value.isEmpty }
            var urls = url
            var ca = caFile ?? env["BRAMBLE_CA_FILE"]
            if urls.isEmpty && nodes {
                if let list = env["BRAMBLE_URL"] {
                    urls = list.split(separator: ",").map { String($0) }
                } else if let local = try Connection.localStatus(env) {
                    urls = local.nodes?.map { String($0.push_url.dropLast(PushAPI.path.count)) } ?? []
                    ca = ca ?? local.tls?.ca
                }
            }
            urls = urls.map { u in
                var u = u.trimmingCharacters(in: .whitespaces)
                while u.hasSuffix("/") { u.removeLast() }
                return u.hasSuffix(HealthAPI.health) ? String(u.dropLast(HealthAPI.health.count)) : u
            }
            for u in urls {
                guard let c = URLComponents(string: u), ["http", "https"].contains(c.scheme?.lowercased()), c.host?.isEmpty == false else {
                    throw ValidationError("'\(u)' is not an http:// or https:// URL")
                }
                if c.scheme?.lowercased() == "https" && ca == nil {
                    throw ValidationError("\(u) is HTTPS: give --ca-file (the private CA's certificate) or set BRAMBLE_CA_FILE")
                }
            }
            return (urls, ca)
        }
    }

    /// The thresholds of a node's score and queue.
    struct NodeThresholds: ParsableArguments {
        @Option(help: ArgumentHelp("WARNING when a node's score is below N, 0–12 (default 12: any unhealthy parameter).", valueName: "n")) var scoreWarning: Int?
        @Option(help: ArgumentHelp("WARNING when the primary has more than N items queued or in flight (bramble_queue_depth).", valueName: "n")) var queueWarning: Int?
        @Option(help: ArgumentHelp("CRITICAL when the primary has more than N items queued or in flight.", valueName: "n")) var queueCritical: Int?

        func validate() throws {
            if let s = scoreWarning, !(0...NodeCheck.parameterCount).contains(s) { throw ValidationError("--score-warning must be 0…12") }
            if [queueWarning, queueCritical].contains(where: { ($0 ?? 0) < 0 }) { throw ValidationError("queue thresholds must not be negative") }
        }

        var limits: NodeCheck.Limits { .init(scoreWarning: scoreWarning, queueWarning: queueWarning, queueCritical: queueCritical) }
    }

    struct Pair: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bramble check pair",
            abstract: "Check the HA pair: one node serving as primary with a valid lease, a standby that could take over, every parameter healthy.",
            discussion: "Give both nodes' URLs. Performance data: each node's score (NODE_score), epoch, failover_threshold, promotion_threshold, queue_depth, time.")
        @OptionGroup var target: Target
        @OptionGroup var thresholds: NodeThresholds

        func prepared() throws -> PreparedCheck {
            let (urls, ca) = try target.resolved(nodes: true)
            guard urls.count == 2 else { throw UsageProblem(text: "a pair has two nodes: give --url twice (got \(urls.count))", usage: [Self.usageString()]) }
            let limits = thresholds.limits
            return PreparedCheck(timeout: target.timeout) { budget in
                async let a = NodeProbe.observe(urls[0], ca: ca, budget: budget)
                async let b = NodeProbe.observe(urls[1], ca: ca, budget: budget)
                let members = await [a, b].enumerated().map { PairCheck.Member(place: NodeProbe.place(urls[$0.offset]), observation: $0.element) }
                return PairCheck.verdict(members, limits: limits)
            }
        }
    }

    struct Node: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bramble check node",
            abstract: "Check one node: its role, its score against the pair's thresholds, each unhealthy parameter.",
            discussion: "Performance data: score, failover_threshold, promotion_threshold, epoch (a primary), queue_depth, time.")
        @OptionGroup var target: Target
        @OptionGroup var thresholds: NodeThresholds

        func prepared() throws -> PreparedCheck {
            let (urls, ca) = try target.resolved(nodes: true)
            guard urls.count == 1 else { throw UsageProblem(text: "give one node's --url (got \(urls.count))", usage: [Self.usageString()]) }
            let limits = thresholds.limits
            return PreparedCheck(timeout: target.timeout) { budget in
                NodeCheck.verdict(await NodeProbe.observe(urls[0], ca: ca, budget: budget), at: NodeProbe.place(urls[0]), limits: limits)
            }
        }
    }

    struct Relay: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bramble check relay",
            abstract: "Check the relay through its /health (its --http-listen).",
            discussion: "Performance data: connected_devices, connections, unauthenticated_connections, registered_device_keys, sessions, stored_for_devices, stored_for_servers, stored (bytes), time.")
        @OptionGroup var target: Target
        @Option(help: ArgumentHelp("An SRP ID that must have a node registered (CRITICAL without); repeatable.", valueName: "id")) var srpID: [String] = []
        @Option(help: ArgumentHelp("WARNING when the relay stores more than this many MiB for offline devices and absent nodes.", valueName: "mib")) var storedWarning: Double?
        @Option(help: ArgumentHelp("CRITICAL when it stores more than this many MiB (its cap is --store-max-mib, 64).", valueName: "mib")) var storedCritical: Double?

        func validate() throws {
            if [storedWarning, storedCritical].contains(where: { ($0 ?? 0) < 0 }) { throw ValidationError("stored thresholds must not be negative") }
        }

        func prepared() throws -> PreparedCheck {
            let (urls, ca) = try target.resolved(nodes: false)
            guard urls.count == 1 else { throw UsageProblem(text: "give the relay's --url once (got \(urls.count))", usage: [Self.usageString()]) }
            let limits = RelayCheck.Limits(srpIDs: srpID, storedWarningBytes: storedWarning.map { Int($0 * 1_048_576) },
                                           storedCriticalBytes: storedCritical.map { Int($0 * 1_048_576) })
            return PreparedCheck(timeout: target.timeout) { budget in
                RelayCheck.verdict(await NodeProbe.observeRelay(urls[0], ca: ca, budget: budget), at: NodeProbe.place(urls[0]), limits: limits)
            }
        }
    }

    struct Mailbox: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bramble check mailbox",
            abstract: "Check that the Messaging Agent watches a user's mailbox and its last check worked recently.",
            discussion: "Asks the admin API (either node; the admin token as for `bramble user show`). Performance data: last_check_age (seconds since the last good check), time.")
        @Argument(help: "The user's e-mail address.") var email: String
        @OptionGroup var target: Target
        @Option(help: ArgumentHelp("File holding the admin token (mode 0600; else BRAMBLE_TOKEN).", valueName: "file")) var tokenFile: String?
        @Flag(help: "Allow http:// node URLs (also BRAMBLE_PLAINTEXT=yes): the token then crosses the network in the clear.") var plaintext = false
        @Option(help: ArgumentHelp("WARNING when the last good check is older than this many seconds.", valueName: "seconds")) var ageWarning: Double = 120
        @Option(help: ArgumentHelp("CRITICAL when it is older than this many seconds.", valueName: "seconds")) var ageCritical: Double = 300

        func validate() throws {
            guard Email.isPlausible(email.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("'\(email)' is not an e-mail address") }
            guard ageWarning >= 0, ageCritical >= 0 else { throw ValidationError("age thresholds must not be negative") }
        }

        func prepared() throws -> PreparedCheck {
            // The other commands' own rules for the nodes, the token and the CA.
            var connection = try Connection.parse([])
            (connection.url, connection.caFile, connection.tokenFile, connection.plaintext) = (target.url, target.caFile, tokenFile, plaintext)
            let clients = try connection.clients()
            let email = email.trimmingCharacters(in: .whitespaces)
            let limits = MailboxCheck.Limits(ageWarning: ageWarning, ageCritical: ageCritical)
            return PreparedCheck(timeout: target.timeout) { budget in
                let (observation, now) = await MailboxProbe.observe(email, clients: clients, budget: budget)
                return MailboxCheck.verdict(email: email, observation, now: now, limits: limits)
            }
        }
    }
}

// MARK: Fetching

/// The open endpoints, asked with a bounded body and a deadline; every failure typed.
enum NodeProbe {
    enum Fetched {
        case answer(status: Int, body: Data)
        case unreachable(String)
        case unreadable(String)
    }

    /// Larger answers are refused unread: a node's `/health` is a few KB.
    static let maxBody = 1 << 20

    /// A node's `/health`, `/health/ready` and queue depth (from `/metrics`), asked at once.
    static func observe(_ base: String, ca: String?, budget: Double) async -> NodeCheck.Observation {
        async let health = get(base + HealthAPI.health, ca: ca, budget: budget)
        async let ready = get(base + HealthAPI.ready, ca: ca, budget: budget)
        async let metrics = get(base + HealthAPI.metrics, ca: ca, budget: budget, limit: 8 << 20)
        let h: NodeHealth
        switch await health {
        case .unreachable(let reason): return .unreachable(reason)
        case .unreadable(let reason): return .unreadable(reason)
        case .answer(let status, _) where status >= 500: return .unreachable("/health answered HTTP \(status)")
        case .answer(let status, _) where status != 200: return .unreadable("/health answered HTTP \(status): not a Bramble node?")
        case .answer(_, let body):
            do { h = try JSONDecoder().decode(NodeHealth.self, from: body) } catch {
                return .unreadable("/health is not a Bramble node's answer (\(describe(decoding: error)))")
            }
        }
        var readiness: NodeCheck.Facts.Readiness?
        if case .answer(let status, let body) = await ready, let r = try? JSONDecoder().decode(Readiness.self, from: body) {
            readiness = .init(ready: status == 200 && r.ready == "true", reason: r.reason)
        }
        var queue: Int?
        if case .answer(200, let body) = await metrics, let depth = MetricsText.value(of: "bramble_queue_depth", in: String(decoding: body, as: UTF8.self)),
           depth >= 0, depth < 1e15 {
            queue = Int(depth)
        }
        return .answered(NodeCheck.Facts(
            node: h.node, role: h.role, epoch: h.epoch, leaseValid: h.lease_valid, score: h.score, failoverThreshold: h.failover_threshold,
            promotionThreshold: h.promotion_threshold, parameters: h.parameters, srpLinkUp: h.relay.srp_link_up, databaseError: h.database.error,
            readiness: readiness, peer: h.peer.map { .init(node: $0.node, score: $0.score, heartbeatAgeMs: $0.heartbeat_age_ms) },
            queueDepth: queue))
    }

    /// The relay's `/health` (BrambleAPI's `RelayHealth`).
    static func observeRelay(_ base: String, ca: String?, budget: Double) async -> RelayCheck.Observation {
        switch await get(base + HealthAPI.health, ca: ca, budget: budget) {
        case .unreachable(let reason): return .unreachable(reason)
        case .unreadable(let reason): return .unreadable(reason)
        case .answer(let status, _) where status >= 500: return .unreachable("/health answered HTTP \(status)")
        case .answer(let status, _) where status != 200: return .unreadable("/health answered HTTP \(status): not a Bramble relay?")
        case .answer(_, let body):
            guard let h = try? JSONDecoder().decode(RelayHealth.self, from: body) else { return .unreadable("/health is not a Bramble relay's answer") }
            return .answered(.init(status: h.status, connectedDevices: h.connected_devices, connections: h.connections,
                                   unauthenticatedConnections: h.unauthenticated_connections, registeredDeviceKeys: h.registered_device_keys,
                                   sessions: h.sessions, storedForDevices: h.stored_for_devices, storedForServers: h.stored_for_servers,
                                   storedBytes: h.stored_bytes))
        }
    }

    /// GET `url` within `budget` seconds, at most `limit` bytes of body.
    static func get(_ url: String, ca: String?, budget: Double, limit: Int = maxBody) async -> Fetched {
        let http: HTTPClient
        do { http = try HTTPClient.bramble(caFile: url.lowercased().hasPrefix("https:") ? ca : nil, failingFast: true) } catch { return .unreadable("\(error)") }
        do {
            let response = try await http.execute(HTTPClientRequest(url: url), timeout: .milliseconds(Int64(budget * 1000)))
            var body = Data()
            for try await chunk in response.body {
                guard body.count + chunk.readableBytes <= limit else { return .unreadable("an answer larger than \(limit >> 20) MiB") }
                body.append(contentsOf: chunk.readableBytesView)
            }
            return .answer(status: Int(response.status.code), body: body)
        } catch {
            return .unreachable(describe(error, budget: budget))
        }
    }

    /// What went wrong, in a few words.
    static func describe(_ error: any Error, budget: Double) -> String {
        if let e = error as? HTTPClientError,
           [.deadlineExceeded, .getConnectionFromPoolTimeout, .connectTimeout, .readTimeout, .tlsHandshakeTimeout].contains(e) {
            return "no answer within \(PerfDatum.number(budget)) s"
        }
        let text = String(describing: error)
        for (symptom, said) in [("Connection refused", "connection refused"), ("No route to host", "no route to host"),
                                ("Network is unreachable", "network unreachable"), ("DNS error", "name not found"),
                                ("Connection reset", "connection reset")] where text.contains(symptom) {
            return said
        }
        return String(text.prefix(200))
    }

    static func describe(decoding error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): "no \(key.stringValue)"
        case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c):
            "\(c.codingPath.map(\.stringValue).joined(separator: ".")): \(c.debugDescription)"
        case DecodingError.dataCorrupted(let c):
            c.codingPath.isEmpty ? "not JSON" : "\(c.codingPath.map(\.stringValue).joined(separator: ".")): \(c.debugDescription)"
        default: "\(error)"
        }
    }

    /// A URL's host and port, to name a node that did not answer.
    static func place(_ url: String) -> String {
        guard let c = URLComponents(string: url), let host = c.host else { return url }
        return c.port.map { "\(host):\($0)" } ?? host
    }
}

/// The admin API's record of a user, from the first node that answers.
enum MailboxProbe {
    static func observe(_ email: String, clients: [BrambleClient], budget: Double) async -> (MailboxCheck.Observation, Date) {
        var failures: [String] = []
        let each = budget / Double(max(1, clients.count))
        for client in clients {
            let reply: BrambleClient.Reply
            do {
                reply = try await client.raw(.GET, AdminAPI.user(email), timeout: .milliseconds(Int64(each * 1000)))
            } catch {
                failures.append(NodeProbe.place(client.baseURL) + ": " + NodeProbe.describe(error, budget: each))
                continue
            }
            let now = reply.headers.first(name: "Date").flatMap(httpDate) ?? Date()
            switch reply.status {
            case 200:
                guard let user = try? reply.decode(UserRecord.self) else { return (.unavailable("the user's record cannot be read"), now) }
                let watch = user.mailbox.map {
                    MailboxCheck.Watch(checkedAt: $0.checked_at, lastMailAt: $0.last_mail_at, lastError: $0.last_error, errorAt: $0.error_at)
                }
                return (.user(devices: user.devices.count, watch: watch), now)
            case 404 where reply.error?.code == .notFound:
                return (.noSuchUser, now)
            case 500...:
                failures.append(NodeProbe.place(client.baseURL) + ": " + (reply.error?.error ?? "HTTP \(reply.status)"))
            default:
                return (.unavailable("\(reply.error?.error ?? "an unreadable answer") (HTTP \(reply.status))"), now)
            }
        }
        return (.unavailable("no node answered: " + failures.joined(separator: "; ")), Date())
    }

    /// An HTTP `Date` header (IMF-fixdate, RFC 9110).
    static func httpDate(_ text: String) -> Date? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return formatter.date(from: text)
    }
}

/// Prints a check's result once: the check's own or the watchdog's time-out, whichever
/// comes first. Returns the exit code to the one that printed, nil to the other.
enum CheckOutput {
    private static let printed = Mutex(false)

    static func finish(_ result: NagiosResult, service: String) -> Int32? {
        printed.withLock { printed in
            guard !printed else { return nil }
            printed = true
            // Unbuffered: the watchdog may exit the process right after.
            FileHandle.standardOutput.write(Data((result.rendered(service: service) + "\n").utf8))
            return result.state.rawValue
        }
    }
}
