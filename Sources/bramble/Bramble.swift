import ArgumentParser
import BrambleAPI
import BrambleCore
import BrambleNet
import AsyncHTTPClient
import Foundation
import NIOHTTP1

@main
struct Bramble: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bramble",
        abstract: "Administer a Bramble HA pair: users, devices, push applications, mail filters, pushes, status, failover.",
        discussion: """
            Talks to a node's admin API; either node of the pair will do. The nodes' URLs and the token come from --url (repeatable) or BRAMBLE_URL (comma-separated) with --token-file or BRAMBLE_TOKEN; else both from the local cluster that `make up` started in the checkout this binary was built in (its .run/status.json, or $BRAMBLE_STATUS; never one in the current directory; it must be yours and mode 0600). A token given on the command line or in the environment is never sent to a URL read from a file; token files must be mode 0600. When a node cannot be reached the next one is asked.
            """,
        subcommands: [UserCommand.self, DeviceCommand.self, PolicyCommand.self, AppCommand.self, KeysCommand.self, FilterCommand.self, PushCommand.self, MessageCommand.self, IMCommand.self,
                      StatusCommand.self, FailoverCommand.self, PairCommand.self, CheckCommand.self])
}

/// Options every subcommand takes: where the nodes are and how to print.
struct Connection: ParsableArguments {
    @Option(help: "Node URL, e.g. https://127.0.0.1:8080; repeat it for each node of the pair.") var url: [String] = []
    @Option(help: "File holding the admin token.") var tokenFile: String?
    @Option(help: "The private CA's certificate (PEM) the nodes' HTTPS certificates must chain to (else BRAMBLE_CA_FILE, else the local cluster's).")
    var caFile: String?
    @Flag(help: "Print the node's JSON answer.") var json = false
    @Flag(help: "Allow http:// node URLs (also BRAMBLE_PLAINTEXT=yes): the token then crosses the network in the clear.")
    var plaintext = false

    struct LocalStatus: Decodable {
        struct Node: Decodable { var name: String; var push_url: String }
        struct TLS: Decodable { var ca: String }
        var nodes: [Node]?
        var admin_token: String?
        var tls: TLS?
    }

    /// The local cluster's status file: $BRAMBLE_STATUS, else the one `make up` wrote in
    /// the checkout this binary was built in (the nearest `.run/status.json` above the
    /// binary, e.g. CHECKOUT/.build/x86_64-unknown-linux-gnu/release/bramble). Never one
    /// found from the current directory: a planted file there must not choose where a
    /// token goes. It must be the caller's own, mode 0600, like the token it holds.
    static func localStatus(_ env: [String: String]) throws -> LocalStatus? {
        var path = env["BRAMBLE_STATUS"]
        if path == nil {
            var dir = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
                          ?? CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
            for _ in 0..<5 where path == nil {
                dir.deleteLastPathComponent()
                if FileManager.default.fileExists(atPath: dir.path + "/.run/status.json") { path = dir.path + "/.run/status.json" }
            }
        }
        guard let path, FileManager.default.fileExists(atPath: path) else { return nil }
        let data: Data
        do { data = Data(try SecretFilePermissions.read(path, what: "local cluster status")) } catch { throw ValidationError("\(error)") }
        return try? JSONDecoder().decode(LocalStatus.self, from: data)
    }

    /// One client per node URL, in the order to try them. The URLs and the token come
    /// from the same place: the command line or environment, or else the local cluster's
    /// status file; a token given here never goes to a URL read from that file.
    func clients() throws -> [BrambleClient] {
        let env = ProcessInfo.processInfo.environment
        var bases = url
        if bases.isEmpty, let list = env["BRAMBLE_URL"] { bases = list.split(separator: ",").map { String($0) } }
        var token: String? = env["BRAMBLE_TOKEN"]
        var local: LocalStatus? = nil
        if bases.isEmpty {
            local = try Self.localStatus(env)
            bases = local?.nodes?.map { String($0.push_url.dropLast(PushAPI.path.count)) } ?? []
            guard !bases.isEmpty else {
                throw ValidationError("no node given: use --url, set BRAMBLE_URL, or start the local cluster with `make up`")
            }
            guard tokenFile == nil else {
                throw ValidationError("--token-file needs --url or BRAMBLE_URL: a token is not sent to the local cluster's URLs")
            }
            token = local?.admin_token
        }
        if let tokenFile {
            let text: String
            do { text = String(decoding: try SecretFilePermissions.read(tokenFile, what: "token"), as: UTF8.self) } catch {
                throw ValidationError("\(error)")
            }
            token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard let token, !token.isEmpty else {
            throw ValidationError("no admin token: use --token-file or set BRAMBLE_TOKEN")
        }
        let http = try httpClient(ca: caFile ?? env["BRAMBLE_CA_FILE"] ?? local?.tls?.ca, for: bases)
        return bases.map { BrambleClient(baseURL: $0, token: token, http: http) }
    }

    /// The client for `bases`: one that trusts only the private CA when one is given (an
    /// https URL needs it), the shared one for plain http.
    private func httpClient(ca: String?, for bases: [String]) throws -> HTTPClient {
        if let plain = bases.first(where: { !$0.lowercased().hasPrefix("https:") }),
           !plaintext, ProcessInfo.processInfo.environment["BRAMBLE_PLAINTEXT"] != "yes" {
            throw ValidationError("\(plain) is not HTTPS: the token would cross the network in the clear; use https://, or --plaintext if you mean it")
        }
        guard let ca else {
            if let secure = bases.first(where: { $0.hasPrefix("https:") }) {
                throw ValidationError("\(secure) is HTTPS: give --ca-file (the private CA's certificate) or set BRAMBLE_CA_FILE")
            }
            return .shared
        }
        do { return try .bramble(caFile: ca) } catch { throw ValidationError("\(error)") }
    }

    /// Calls the first node that answers. A request goes to the next node only when it
    /// certainly did not reach the one before (`unreachable`), or, for reads and for
    /// requests that are safe to repeat (`idempotent`), when no answer came; a node's own
    /// error answer is final, except `retryElsewhere` codes (e.g. `not_primary`).
    func call<T: Decodable>(_ method: HTTPMethod, _ path: String, body: (any Encodable)? = nil, expect: Int = 200, as type: T.Type,
                            headers: [(String, String)] = [], idempotent: Bool = false,
                            retryElsewhere: Set<APIErrorCode> = []) async throws -> T {
        var failures: [String] = []
        for client in try clients() {
            do {
                return try await client.call(method, path, body: body, expect: expect, as: type, headers: headers, timeout: .seconds(10))
            } catch {
                failures.append("\(client.baseURL): \(error)")
                switch error {
                case .unreachable: continue
                case .noAnswer where method == .GET || idempotent: continue
                case .api(_, let answer) where retryElsewhere.contains(answer.code): continue
                case .api(let status, let answer): throw Failure(status: status, message: answer.error)
                case .malformed: throw Failure(status: 0, message: "\(client.baseURL): \(error)")
                case .noAnswer:
                    throw Failure(status: 0, message: "\(client.baseURL) did not answer (\(error)); the request may have taken effect: check before repeating it")
                }
            }
        }
        throw Failure(status: 0, message: "no node answered: " + failures.joined(separator: "; "))
    }

    /// Prints the answer as JSON or through `human`.
    func show<T: Encodable>(_ value: T, human: (T) -> String) throws {
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            encoder.dateEncodingStrategy = .iso8601
            print(String(decoding: try encoder.encode(value), as: UTF8.self))
        } else {
            print(human(value))
        }
    }
}

struct Failure: Error, CustomStringConvertible {
    let status: Int
    let message: String
    var description: String { status == 0 ? message : "\(message) (HTTP \(status))" }
}

/// `bramble user list`'s line; an activation password set shows its state at the end
/// (`show` gives the whole activation on a line of its own).
func describe(_ u: UserRecord, activation: Bool = true) -> String {
    "\(u.email)\t\(u.display_name.isEmpty ? "-" : u.display_name)\tdevices: \(u.devices.isEmpty ? "none" : u.devices.joined(separator: ","))"
        + "\tmailbox: \(mailboxState(u))"
        + (activation ? u.activation.flatMap { $0.state == "none" ? nil : "\tactivation: \($0.state.replacingOccurrences(of: "_", with: " "))" } ?? "" : "")
}

/// One word or phrase for the mailbox watch: what `bramble user list` shows.
func mailboxState(_ u: UserRecord) -> String {
    guard let m = u.mailbox else { return u.devices.isEmpty ? "not watched (no device)" : "not checked yet" }
    if let error = m.last_error { return "failing: \(error)" }
    return m.uid_validity == nil ? "not checked yet" : "watched"
}

/// `bramble user show`: the user, then the mailbox watch line by line.
func describeInDetail(_ u: UserRecord) -> String {
    var lines = [describe(u, activation: false)]
    if let on = u.reconciliation { lines.append("  reconciliation: \(on ? "on" : "off")") }
    let time: (Date?) -> String = { $0.map { $0.formatted(.iso8601) } ?? "never" }
    if let a = u.activation { lines.append("  activation: " + describe(a, time: time)) }
    guard let m = u.mailbox else { return lines.joined(separator: "\n") }
    lines.append("  watermark: UIDVALIDITY \(m.uid_validity.map(String.init) ?? "-"), last UID \(m.last_uid)")
    lines.append("  last checked: \(time(m.checked_at))")
    lines.append("  last mail: \(time(m.last_mail_at))\(m.last_message_id.map { " \($0)" } ?? "")")
    lines.append("  last error: \(m.last_error.map { "\($0) (\(time(m.error_at)))" } ?? "none")")
    return lines.joined(separator: "\n")
}

/// An activation's state, failures, expiry, device and last event, on one line.
func describe(_ a: ActivationStatus, time: (Date?) -> String = { $0.map { $0.formatted(.iso8601) } ?? "never" }) -> String {
    guard a.state != "none" else { return "none (no activation password set)" }
    var parts = [a.state.replacingOccurrences(of: "_", with: " ")]
    if a.failures > 0 { parts.append("\(a.failures) failed of \(ActivationPassword.maxFailures)") }
    if let pin = a.pin { parts.append("device \(pin)") }
    if ["pending", "in_progress", "expired"].contains(a.state) { parts.append("password expires \(time(a.expires_at))") }
    if !a.last_event.isEmpty { parts.append("last: \(a.last_event) (\(time(a.last_event_at)))") }
    return parts.joined(separator: "; ")
}

func describe(_ d: DeviceRecord) -> String {
    "\(d.pin)\t\(d.email)\t\(d.status)\titems: \(d.last_seq)\tpending: \(d.pending)"
}

/// `bramble device show`: the list's line, then its policy, lock, wipe and commands.
func describeInDetail(_ d: DeviceRecord) -> String {
    let time: (Date?) -> String = { $0.map { $0.formatted(.iso8601) } ?? "never" }
    var lines = [describe(d)]
    if let p = d.policy {
        lines.append("  IT policy: \(p.name) v\(p.version) \(p.state)\(p.detail.map { ": \($0)" } ?? "") (\(time(p.updated_at)))")
    } else {
        lines.append("  IT policy: none sent")
    }
    if let locked = d.locked_at { lines.append("  locked: \(time(locked))") }
    if let wiped = d.wiped { lines.append("  wiped: \(wiped == "work" ? "work data" : "all data") (\(time(d.wiped_at)))") }
    for c in d.commands ?? [] {
        let when = c.confirmed_at ?? c.sent_at ?? c.created_at
        lines.append("  command \(c.id): \(c.command) \(c.state)\(c.detail.map { ": \($0)" } ?? "") (\(time(when)))")
    }
    return lines.joined(separator: "\n")
}

func describe(_ p: PolicyRecord) -> String {
    let rules = [p.password_required ? "password required (at least \(p.min_password_length) characters)" : "no password required",
                 p.lock_timeout_minutes > 0 ? "locks after \(p.lock_timeout_minutes) min" : "no lock timeout",
                 "services: \(p.allowed_services.isEmpty ? "none" : p.allowed_services.joined(separator: ","))"]
    return "\(p.name) v\(p.version)\t\(rules.joined(separator: "; "))\tusers: \(p.users)\tdevices: \(p.devices_applied) applied, "
        + "\(p.devices_pending) pending, \(p.devices_refused) refused"
}
