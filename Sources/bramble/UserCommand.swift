import ArgumentParser
import BrambleAPI
import BrambleNet

struct UserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user", abstract: "Add, list, show, change and remove users.",
        subcommands: [Add.self, List.self, Show.self, Set.self, Remove.self])

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change a user's settings.",
            discussion: """
                --reconciliation on|off: whether the user's devices and mailbox stay reconciled
                both ways (on by default). On, a device's read, unread, delete and file change
                the mailbox, and changes made in the mailbox by any client reach the devices as
                "state" lines; off, neither: a device's such request fails and nothing is sent.
                --im on|off: whether the user may log in to instant messaging from their devices
                (on by default). Off also logs out their sessions (the device hears "logged-out").
                """)
        @OptionGroup var connection: Connection
        @Argument(help: "The user's e-mail address.") var email: String
        @Option(help: "on or off.") var reconciliation: String?
        @Option(help: "on or off: instant messaging.") var im: String?

        func validate() throws {
            guard Email.isPlausible(email.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("'\(email)' is not an e-mail address") }
            guard reconciliation != nil || im != nil else { throw ValidationError("nothing to set: give --reconciliation on|off or --im on|off") }
            for (name, value) in [("reconciliation", reconciliation), ("im", im)] where value != nil && !["on", "off"].contains(value!) {
                throw ValidationError("--\(name) must be on or off")
            }
        }

        func run() async throws {
            let user = try await connection.call(.PATCH, AdminAPI.user(email), body: UserSettings(reconciliation: reconciliation.map { $0 == "on" }, im: im.map { $0 == "on" }),
                                                 as: UserRecord.self)
            try connection.show(user) { "user \($0.email): reconciliation \($0.reconciliation == false ? "off" : "on"), IM \($0.im == false ? "off" : "on")" }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a user by e-mail address.")
        @OptionGroup var connection: Connection
        @Option(help: "The user's e-mail address.") var email: String
        @Option(help: "Display name.") var name: String?

        func run() async throws {
            let user = try await connection.call(.POST, AdminAPI.users, body: NewUser(email: email, name: name), expect: 201, as: UserRecord.self)
            try connection.show(user) { "added user \(describe($0))" }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users, their devices and their mailbox's state (watched, failing, not checked yet).")
        @OptionGroup var connection: Connection

        func run() async throws {
            let list = try await connection.call(.GET, AdminAPI.users, as: UserList.self)
            try connection.show(list) { $0.users.isEmpty ? "no users" : $0.users.map(describe).joined(separator: "\n") }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show one user and the watch of their mailbox: watermark, last check, last mail seen, last error.")
        @OptionGroup var connection: Connection
        @Argument(help: "The user's e-mail address.") var email: String

        func validate() throws {
            guard Email.isPlausible(email.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("'\(email)' is not an e-mail address") }
        }

        func run() async throws {
            try connection.show(try await connection.call(.GET, AdminAPI.user(email), as: UserRecord.self), human: describeInDetail)
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a user, their devices and their queued items.")
        @OptionGroup var connection: Connection
        @Argument(help: "The user's e-mail address.") var email: String

        func run() async throws {
            let removed = try await connection.call(.DELETE, AdminAPI.user(email), as: Removed.self)
            try connection.show(removed) { "removed user \($0.removed)" }
        }
    }
}
