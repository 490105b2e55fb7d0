import ArgumentParser
import BrambleAPI
import BrambleNet
import Foundation

/// Push applications: each gets its own token, good only for pushing (and reading back its
/// own pushes' state), revocable alone.
struct AppCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "app", abstract: "Add, list and revoke push applications (a token each, good only for POST /push and its own GET /push/{id}).",
        subcommands: [Add.self, List.self, Revoke.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a push application and make its token.",
            discussion: """
                The token is shown once (only its SHA-256 is stored): with --out it is written \
                to a new file of mode 0600 and not printed; otherwise it is printed. It can push \
                (POST /push) and read back the state of its own pushes (GET /push/{id}), nothing \
                else; `bramble app revoke NAME` ends it on both nodes at once.
                """)
        @OptionGroup var connection: Connection
        @Argument(help: "The application's name: 1–64 letters, digits, '.', '-' or '_'.") var name: String
        @Option(help: "Write the token to this new file (mode 0600) instead of printing it.") var out: String?

        func validate() throws {
            guard NewPushApp.isValidName(name) else { throw ValidationError("the name must be 1–64 letters, digits, '.', '-' or '_'") }
            // (A dangling symlink counts: the token file is never written through one.)
            if let out, FileManager.default.fileExists(atPath: out) || (try? FileManager.default.destinationOfSymbolicLink(atPath: out)) != nil {
                throw ValidationError("\(out) already exists; choose another --out")
            }
        }

        func run() async throws {
            let app = try await connection.call(.POST, AdminAPI.apps, body: NewPushApp(name: name), expect: 201, as: PushAppCreated.self)
            guard let out else {
                try connection.show(app) { "added push application \($0.name); its token (shown once): \($0.token)" }
                return
            }
            do { try SecretFilePermissions.create(out, bytes: Array((app.token + "\n").utf8), what: "push token") } catch {
                throw ValidationError("\(error) (the application \(app.name) exists: revoke it and add another)")
            }
            struct Summary: Encodable { var name: String; var token_file: String }
            try connection.show(Summary(name: app.name, token_file: out)) { "added push application \($0.name); its token is in \($0.token_file)" }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List push applications (never their tokens).")
        @OptionGroup var connection: Connection

        func run() async throws {
            let list = try await connection.call(.GET, AdminAPI.apps, as: PushAppList.self)
            try connection.show(list) { list in
                list.apps.isEmpty ? "no push applications" : list.apps.map { app in
                    "\(app.name)  added \(app.created_at.formatted(.iso8601))" + (app.revoked_at.map { "  revoked \($0.formatted(.iso8601))" } ?? "")
                }.joined(separator: "\n")
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a push application: its token pushes nothing more, on either node.")
        @OptionGroup var connection: Connection
        @Argument(help: "The application's name.") var name: String

        func run() async throws {
            let removed = try await connection.call(.DELETE, AdminAPI.app(name), as: Removed.self)
            try connection.show(removed) { "revoked push application \($0.removed)" }
        }
    }
}
