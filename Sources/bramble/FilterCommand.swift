import ArgumentParser
import BrambleAPI
import BrambleCore
import BrambleNet

/// The Messaging Agent's global filter rules.
struct FilterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "filter", abstract: "Add, list, remove and reorder the global mail filter rules.",
        discussion: """
            Each new mail is tried against the rules in order; the first rule that matches decides
            what happens to it, and a mail no rule matches is forwarded. A rule matches one field
            (from, to, cc, subject: case-insensitive substring; importance: high, normal or low,
            from the Importance and X-Priority headers) and takes one action: forward,
            forward_high_priority (shown marked on the device) or do_not_forward. Rules apply to
            mail that arrives after the change.
            """,
        subcommands: [Add.self, List.self, Remove.self, Move.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a rule, e.g. `bramble filter add --field subject --contains newsletter --action do_not_forward`.")
        @OptionGroup var connection: Connection
        @Option(help: "What the rule looks at: \(MailFilterRule.Field.allCases.map(\.rawValue).joined(separator: ", ")).") var field: String
        @Option(help: "The text it looks for (for importance: high, normal or low).") var contains: String
        @Option(help: "What it does: \(MailFilterRule.Action.allCases.map(\.rawValue).joined(separator: ", ")).") var action: String
        @Option(help: "Its place in the order, 1 first (default: last).") var position: Int?

        func validate() throws {
            guard MailFilterRule.Field(rawValue: field) != nil else {
                throw ValidationError("--field must be one of \(MailFilterRule.Field.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard MailFilterRule.Action(rawValue: action) != nil else {
                throw ValidationError("--action must be one of \(MailFilterRule.Action.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if let position, position < 1 { throw ValidationError("--position must be 1 or more") }
        }

        func run() async throws {
            let rule = try await connection.call(.POST, AdminAPI.filters, body: NewFilter(field: field, contains: contains, action: action, position: position),
                                                 expect: 201, as: MailFilterRule.self)
            try connection.show(rule) { "added rule \(describe($0))" }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the rules in their order.")
        @OptionGroup var connection: Connection

        func run() async throws {
            let list = try await connection.call(.GET, AdminAPI.filters, as: FilterList.self)
            try connection.show(list) {
                $0.filters.isEmpty ? "no rules: every mail is forwarded" : $0.filters.map(describe).joined(separator: "\n") + "\n(otherwise: forward)"
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a rule by its id.")
        @OptionGroup var connection: Connection
        @Argument(help: "The rule's id (see `bramble filter list`).") var id: Int64

        func run() async throws {
            let removed = try await connection.call(.DELETE, AdminAPI.filter(id), as: Removed.self)
            try connection.show(removed) { "removed rule \($0.removed)" }
        }
    }

    struct Move: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Move a rule to another place in the order.")
        @OptionGroup var connection: Connection
        @Argument(help: "The rule's id.") var id: Int64
        @Option(help: "Its new place, 1 first.") var to: Int

        func validate() throws { if to < 1 { throw ValidationError("--to must be 1 or more") } }

        func run() async throws {
            let rule = try await connection.call(.POST, AdminAPI.moveFilter(id), body: FilterMove(position: to), as: MailFilterRule.self)
            try connection.show(rule) { "moved rule \(describe($0))" }
        }
    }
}

func describe(_ r: MailFilterRule) -> String {
    "\(r.position). [id \(r.id)] if \(r.field.rawValue) \(r.field == .importance ? "is" : "contains") \"\(r.contains)\": \(r.action.rawValue)"
}
