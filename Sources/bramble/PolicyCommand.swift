import ArgumentParser
import BrambleAPI
import BrambleCore
import Foundation

struct PolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "List, show, change and assign IT policies (the Policy Service).",
        discussion: """
            An IT policy is what a device must apply: whether a device password is required
            and its minimum length, the lock timeout, and which services (push, mail, im) its
            service books may offer. Every user has "default" until assigned another. The
            primary signs a policy with the domain's key and sends it to every device of its
            users whenever it changes or is assigned; each device checks the signature,
            applies it and confirms (or refuses, and says why); a policy left unconfirmed is
            sent again. `bramble device show PIN` gives the policy on a device.
            """,
        subcommands: [List.self, Show.self, Set.self, Assign.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the IT policies, their users and how many devices applied them.")
        @OptionGroup var connection: Connection

        func run() async throws {
            let list = try await connection.call(.GET, AdminAPI.policies, as: PolicyList.self)
            try connection.show(list) { $0.policies.map(describe).joined(separator: "\n") }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one IT policy.")
        @OptionGroup var connection: Connection
        @Argument(help: "The policy's name.") var name: String

        func run() async throws {
            try connection.show(try await connection.call(.GET, AdminAPI.policy(name), as: PolicyRecord.self), human: describe)
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create or change an IT policy; it reaches every device of its users.",
            discussion: """
                A new policy starts from the built-in rules (no password, no lock timeout,
                every service), not from a changed "default". Each change raises the
                policy's version. Names are 1–64 ASCII letters, digits, '-', '_' or '.',
                with a letter or digit.
                """)
        @OptionGroup var connection: Connection
        @Argument(help: "The policy's name.") var name: String
        @Option(help: "on or off: whether the device must have a password.") var passwordRequired: String?
        @Option(help: "The device password's minimum length, 0–64.") var minPasswordLength: Int?
        @Option(help: "Minutes without use before the device locks, 0–1440 (0: never).") var lockTimeout: Int?
        @Option(help: "The services the device may use, comma-separated, of push, mail, im ('' for none).") var services: String?

        func validate() throws {
            guard passwordRequired != nil || minPasswordLength != nil || lockTimeout != nil || services != nil else {
                throw ValidationError("nothing to set: give --password-required, --min-password-length, --lock-timeout or --services")
            }
            if let p = passwordRequired, !["on", "off"].contains(p) { throw ValidationError("--password-required must be on or off") }
            if let n = minPasswordLength, !(0...64).contains(n) { throw ValidationError("--min-password-length must be 0–64") }
            if let n = lockTimeout, !(0...1_440).contains(n) { throw ValidationError("--lock-timeout must be 0–1440 minutes") }
            if let list = serviceList, let bad = list.first(where: { !ITPolicy.services.contains($0) }) {
                throw ValidationError("unknown service '\(bad)': the services are \(ITPolicy.services.joined(separator: ", "))")
            }
        }

        var serviceList: [String]? {
            services.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
        }

        func run() async throws {
            let change = PolicyChange(password_required: passwordRequired.map { $0 == "on" }, min_password_length: minPasswordLength,
                                      lock_timeout_minutes: lockTimeout, allowed_services: serviceList)
            let policy = try await connection.call(.PUT, AdminAPI.policy(name), body: change, as: PolicyRecord.self)
            try connection.show(policy) { "policy \(describe($0))" }
        }
    }

    struct Assign: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Give users an IT policy ('default' gives them the default back); it reaches their devices.")
        @OptionGroup var connection: Connection
        @Argument(help: "The policy's name.") var name: String
        @Argument(help: "The users' e-mail addresses.") var emails: [String]

        func validate() throws {
            guard !emails.isEmpty else { throw ValidationError("give at least one user's e-mail address") }
            if let bad = emails.first(where: { !Email.isPlausible($0.trimmingCharacters(in: .whitespaces)) }) {
                throw ValidationError("'\(bad)' is not an e-mail address")
            }
        }

        func run() async throws {
            let assigned = try await connection.call(.POST, AdminAPI.policyAssignment(name), body: PolicyAssignment(emails: emails),
                                                     as: PolicyAssigned.self)
            try connection.show(assigned) { "policy \($0.policy) assigned to \($0.users.joined(separator: ", ")); on its way to \($0.devices) device(s)" }
        }
    }
}
