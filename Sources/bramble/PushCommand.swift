import ArgumentParser
import BrambleNet

struct PushCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "push", abstract: "Push an item to a user's devices (by e-mail) or to one device (by PIN).",
        discussion: "Prints the push id once the node has committed the item; follow it with `bramble message status ID`.")
    @OptionGroup var connection: Connection
    @Option(help: "E-mail address or PIN.") var to: String
    @Option(help: "Subject line.") var subject = ""
    @Option(help: "Body text.") var body = ""
    @Option(help: "Seconds until an undelivered item expires (default 7 days).") var expiresIn: Int?

    func validate() throws {
        guard !subject.isEmpty || !body.isEmpty else { throw ValidationError("give --subject or --body") }
    }

    func run() async throws {
        struct Body: Encodable { var to: String; var subject: String; var body: String; var expires_in: Int? }
        let reply = try await connection.send(.POST, "/push", json: Body(to: to, subject: subject, body: body, expires_in: expiresIn))
        try connection.show(reply, as: Accepted.self, expect: 202) { "accepted \($0.id) for \($0.devices.joined(separator: ","))" }
    }
}

struct MessageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "message", abstract: "Follow pushed items.", subcommands: [Status.self])

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a push's delivery state: queued, sent, acked or expired.")
        @OptionGroup var connection: Connection
        @Argument(help: "The push id `bramble push` printed.") var id: String

        func run() async throws {
            let reply = try await connection.send(.GET, "/push/\(pathEscaped(id))")
            try connection.show(reply, as: PushStatus.self, expect: 200) { s in
                ([("\(s.id)\t\(s.state)")] + s.devices.map { "  \($0.pin)\tseq \($0.seq)\t\($0.state)" }).joined(separator: "\n")
            }
        }
    }
}
