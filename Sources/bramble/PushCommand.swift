import ArgumentParser
import BrambleAPI
import BrambleNet
import Foundation

struct PushCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "push", abstract: "Push an item to a user's devices (by e-mail) or to one device (by PIN).",
        discussion: """
            Prints the push id once a node has committed the item; follow it with `bramble message status ID`. The push carries an Idempotency-Key (a fresh one unless --idempotency-key gives it), so when a node fails or does not answer the next node is asked with the same key, and the item is never committed twice.
            """)
    @OptionGroup var connection: Connection
    @Option(help: "E-mail address or PIN.") var to: String
    @Option(help: "Subject line.") var subject = ""
    @Option(help: "Body text.") var body = ""
    @Option(help: "Seconds until an undelivered item expires (default 7 days).") var expiresIn: Int?
    @Option(help: "The push's Idempotency-Key (1–255 printable ASCII characters; default: a new UUID). Repeating a push with its key never commits it twice (keys are kept \(PushAPI.idempotencyRetentionHours) h).")
    var idempotencyKey: String?

    func validate() throws {
        guard !subject.isEmpty || !body.isEmpty else { throw ValidationError("give --subject or --body") }
        if let idempotencyKey, !PushAPI.isValidIdempotencyKey(idempotencyKey) {
            throw ValidationError("--idempotency-key must be 1–255 printable ASCII characters")
        }
    }

    func run() async throws {
        let key = idempotencyKey ?? UUID().uuidString.lowercased()
        let accepted: PushAccepted
        do {
            accepted = try await connection.call(
                .POST, PushAPI.path, body: PushRequestBody(to: to, subject: subject, body: body, expires_in: expiresIn), expect: 202,
                as: PushAccepted.self, headers: [(PushAPI.idempotencyKeyHeader, key)], idempotent: true,
                retryElsewhere: [.notAccepted, .outcomeUnknown, .unavailable])
        } catch let failure as Failure where failure.status == 0 || failure.status >= 500 || failure.status == 409 {
            // It may have been committed: the key is how to send it again without a copy.
            throw Failure(status: failure.status,
                          message: failure.message + "; to send it again without risking a second copy, add --idempotency-key \(key)")
        }
        try connection.show(accepted) { "accepted \($0.id) for \($0.devices.joined(separator: ","))" }
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
            guard UUID(uuidString: id) != nil else { throw ValidationError("the push id must be a UUID, got '\(id)'") }
            let status = try await connection.call(.GET, PushAPI.statusPath(id), as: PushStatus.self)
            try connection.show(status) { s in
                ([("\(s.id)\t\(s.state.rawValue)")] + s.devices.map { "  \($0.pin)\tseq \($0.seq)\t\($0.state.rawValue)" }).joined(separator: "\n")
            }
        }
    }
}
