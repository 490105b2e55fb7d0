import ArgumentParser
import BrambleNet

struct UserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user", abstract: "Add, list, show and remove users.",
        subcommands: [Add.self, List.self, Show.self, Remove.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a user by e-mail address.")
        @OptionGroup var connection: Connection
        @Option(help: "The user's e-mail address.") var email: String
        @Option(help: "Display name.") var name: String?

        func run() async throws {
            struct Body: Encodable { var email: String; var name: String? }
            let reply = try await connection.send(.POST, "/admin/users", json: Body(email: email, name: name))
            try connection.show(reply, as: User.self, expect: 201) { "added user \(describe($0))" }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users.")
        @OptionGroup var connection: Connection

        func run() async throws {
            let reply = try await connection.send(.GET, "/admin/users")
            try connection.show(reply, as: Users.self, expect: 200) { users in
                users.users.isEmpty ? "no users" : users.users.map(describe).joined(separator: "\n")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one user.")
        @OptionGroup var connection: Connection
        @Argument(help: "The user's e-mail address.") var email: String

        func run() async throws {
            let reply = try await connection.send(.GET, "/admin/users/\(pathEscaped(email))")
            try connection.show(reply, as: User.self, expect: 200, human: describe)
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a user, their devices and their queued items.")
        @OptionGroup var connection: Connection
        @Argument(help: "The user's e-mail address.") var email: String

        func run() async throws {
            struct Removed: Decodable { var removed: String }
            let reply = try await connection.send(.DELETE, "/admin/users/\(pathEscaped(email))")
            try connection.show(reply, as: Removed.self, expect: 200) { "removed user \($0.removed)" }
        }
    }
}

func pathEscaped(_ s: String) -> String {
    s.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(.init(charactersIn: "/"))) ?? s
}

import Foundation
