import ArgumentParser
import BrambleCore
import BrambleNet
import Foundation
import NIOHTTP1

@main
struct Bramble: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bramble",
        abstract: "Administer a Bramble HA pair: users, devices, pushes, status, failover.",
        discussion: """
            Talks to a node's admin API; either node of the pair will do. The nodes' URLs and the token come from --url (repeatable) and --token-file, else from BRAMBLE_URL (comma-separated) and BRAMBLE_TOKEN, else from the local cluster that `make up` started (.run/status.json, or $BRAMBLE_STATUS). When a node cannot be reached the next one is asked.
            """,
        subcommands: [UserCommand.self, DeviceCommand.self, PushCommand.self, MessageCommand.self,
                      StatusCommand.self, FailoverCommand.self, PairCommand.self])
}

/// Options every subcommand takes: where the node is and how to print.
struct Connection: ParsableArguments {
    @Option(help: "Node URL, e.g. http://127.0.0.1:8080; repeat it for each node of the pair.") var url: [String] = []
    @Option(help: "File holding the admin token.") var tokenFile: String?
    @Flag(help: "Print the node's JSON answer.") var json = false

    struct LocalStatus: Decodable {
        struct Node: Decodable { var name: String; var push_url: String }
        var nodes: [Node]?
        var admin_token: String?
    }

    /// One client per node URL, in the order to try them.
    func clients() throws -> [AdminClient] {
        let env = ProcessInfo.processInfo.environment
        let local: LocalStatus? = {
            let path = env["BRAMBLE_STATUS"] ?? ".run/status.json"
            guard let data = FileManager.default.contents(atPath: path) else { return nil }
            return try? JSONDecoder().decode(LocalStatus.self, from: data)
        }()
        var bases = url
        if bases.isEmpty, let list = env["BRAMBLE_URL"] { bases = list.split(separator: ",").map { String($0) } }
        if bases.isEmpty { bases = local?.nodes?.map { $0.push_url.replacingOccurrences(of: "/push", with: "") } ?? [] }
        guard !bases.isEmpty else {
            throw ValidationError("no node given: use --url, set BRAMBLE_URL, or start the local cluster with `make up`")
        }
        var token: String? = env["BRAMBLE_TOKEN"] ?? local?.admin_token
        if let tokenFile {
            guard let text = try? String(contentsOfFile: tokenFile, encoding: .utf8) else {
                throw ValidationError("cannot read token file \(tokenFile)")
            }
            token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard let token, !token.isEmpty else {
            throw ValidationError("no admin token: use --token-file or set BRAMBLE_TOKEN")
        }
        return bases.map { AdminClient(baseURL: $0, token: token) }
    }

    /// Sends to the first node that can be reached. A request is sent to the next node
    /// only when the connection to one could not be made (or, for reads, failed in any
    /// way), so a push is never committed twice.
    func send(_ method: HTTPMethod, _ path: String, json: (any Encodable)? = nil) async throws -> AdminClient.Reply {
        var failures: [String] = []
        for client in try clients() {
            do {
                return try await client.send(method, path, json: json, timeout: .seconds(10))
            } catch {
                let text = String(describing: error)
                failures.append("\(client.baseURL): \(text)")
                let unreached = text.localizedCaseInsensitiveContains("connect") || text.localizedCaseInsensitiveContains("refused")
                if method != .GET && !unreached { break }
            }
        }
        throw Failure(status: 0, message: "no node answered: " + failures.joined(separator: "; "))
    }

    /// Prints the reply (JSON or via `human`) or fails with the node's message.
    func show<T: Decodable>(_ reply: AdminClient.Reply, as type: T.Type, expect: Int, human: (T) -> String) throws {
        guard reply.status == expect else { throw Failure(status: reply.status, message: reply.errorMessage) }
        if json {
            print(String(decoding: reply.body, as: UTF8.self))
        } else {
            print(human(try reply.decode(type)))
        }
    }
}

struct Failure: Error, CustomStringConvertible {
    let status: Int
    let message: String
    var description: String { status == 0 ? message : "\(message) (HTTP \(status))" }
}

// MARK: Shapes of the node's answers

struct User: Decodable { var email: String; var display_name: String; var created_at: Date; var devices: [String] }
struct Users: Decodable { var users: [User] }
struct Device: Decodable { var pin: String; var email: String; var status: String; var last_seq: Int; var pending: Int }
struct Devices: Decodable { var devices: [Device] }
struct Provisioned: Decodable { var device: Device; var credential: DeviceCredential }
struct Accepted: Decodable { var id: String; var devices: [String] }
struct PushStatus: Decodable {
    struct Item: Decodable { var pin: String; var seq: Int; var state: String }
    var id: String
    var state: String
    var devices: [Item]
}

func describe(_ u: User) -> String {
    "\(u.email)\t\(u.display_name.isEmpty ? "-" : u.display_name)\tdevices: \(u.devices.isEmpty ? "none" : u.devices.joined(separator: ","))"
}

func describe(_ d: Device) -> String {
    "\(d.pin)\t\(d.email)\t\(d.status)\titems: \(d.last_seq)\tpending: \(d.pending)"
}
