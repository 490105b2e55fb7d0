import ArgumentParser
import BrambleAPI
import BrambleCore
import BrambleNet
import Foundation

struct UserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user", abstract: "Add, list, show, change and remove users.",
        subcommands: [Add.self, List.self, Show.self, Set.self, Activation.self, Remove.self])

    struct Activation: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set a one-time activation password for activating a device over the air.",
            discussion: """
                The user types their e-mail address and this password on the device
                (`bramble-device activate`). The password is 8–64 characters, valid once, for
                --expires (default 48h, as BES; e.g. 30m, 12h, 7d; at most 30d); the node keeps
                only a slow salted hash of it, sealed under the key-encryption key, and logs it
                nowhere. Five activation runs that fail (a wrong password) lock the activation
                until a new password is set here, which also clears the failures.
                --generate makes a 12-character password and prints it once; --password-file
                reads one from a file ('-': standard input), never from the command line.
                --send-instructions mails the user what to type (address and password) through
                the mail server's submission service. `bramble user show EMAIL` gives the
                activation's state: none, pending, in progress, locked, completed or expired,
                with its last event.
                """)
        @OptionGroup var connection: Connection
        @Argument(help: "The user's e-mail address.") var email: String
        @Flag(help: "Make the password (printed once).") var generate = false
        @Option(help: "Read the password from this file ('-': standard input).") var passwordFile: String?
        @Option(help: "How long the password stays valid: Nm, Nh or Nd (default 48h).") var expires = "48h"
        @Flag(help: "Mail the user the activation instructions, password included.") var sendInstructions = false

        func validate() throws {
            guard Email.isPlausible(email.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("'\(email)' is not an e-mail address") }
            guard generate != (passwordFile != nil) else { throw ValidationError("give --generate or --password-file (one of them)") }
            guard Self.seconds(expires) != nil else { throw ValidationError("--expires must be Nm, Nh or Nd (1m to 30d), got '\(expires)'") }
        }

        /// "30m", "48h", "7d" in seconds, within 1 minute and 30 days.
        static func seconds(_ text: String) -> Int? {
            guard let unit = text.last, let n = Int(text.dropLast()), n > 0 else { return nil }
            let factor: Int? = switch unit { case "m": 60; case "h": 3_600; case "d": 86_400; default: nil }
            guard let factor else { return nil }
            let (seconds, overflow) = n.multipliedReportingOverflow(by: factor)
            guard !overflow, (60...NewActivation.maxExpirySeconds).contains(seconds) else { return nil }
            return seconds
        }

        func run() async throws {
            var password: String?
            if let passwordFile {
                password = PasswordFile.read(passwordFile)
                guard password != nil else { throw ValidationError("cannot read the password from \(passwordFile)") }
                do { try ActivationPassword.validate(password!) } catch { throw ValidationError(error.description) }
            }
            let set = try await connection.call(.POST, AdminAPI.activation(email), body: NewActivation(
                password: password, generate: generate ? true : nil, expires_seconds: Self.seconds(expires), send_instructions: sendInstructions ? true : nil),
                as: ActivationSet.self)
            try connection.show(set) { s in
                var lines = ["activation for \(s.email): \(describe(s.activation))"]
                if let p = s.password { lines.append("activation password: \(p)") }
                if s.instructions_sent { lines.append("instructions mailed to \(s.email)") }
                if let error = s.instructions_error { lines.append("instructions NOT mailed: \(error)") }
                return lines.joined(separator: "\n")
            }
        }
    }

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
            try connection.show(list) { $0.users.isEmpty ? "no users" : $0.users.map { describe($0) }.joined(separator: "\n") }
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
