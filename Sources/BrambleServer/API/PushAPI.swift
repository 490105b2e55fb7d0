import BrambleCore
import Foundation
import Hummingbird

/// MDS-style push API: `POST /push` answers 202 only after the commit; `GET /push/{id}`
/// reports delivery state.
struct PushAPI {
    let store: ConfigStore
    let committer: PushCommitter
    let metrics: NodeMetrics

    static let defaultExpiry = 7 * 24 * 3600

    struct Body: Decodable {
        var to: String
        var subject: String?
        var body: String?
        var expires_in: Int?
    }

    struct Accepted: ResponseEncodable {
        var id: String
        var devices: [String]
    }

    struct Status: ResponseEncodable {
        var id: String
        var state: String
        var devices: [PushItemStatus]
    }

    func register(on router: Router<BasicRequestContext>) {
        router.post("/push") { request, context -> EditedResponse<Accepted> in
            let body = try await request.decodeJSON(Body.self, context: context)
            let push: PushRequest
            do {
                push = try Self.validate(body)
            } catch let error as APIError {
                metrics.pushesRejected.increment()
                throw error
            }
            switch try await committer.submit(push) {
            case .accepted(let pushID, let items):
                metrics.pushesAccepted.increment()
                return EditedResponse(status: .accepted,
                                      response: Accepted(id: pushID.uuidString.lowercased(), devices: items.map(\.pin.description)))
            case .unknownRecipient:
                metrics.pushesRejected.increment()
                throw APIError(.notFound, "no active device for recipient '\(body.to)'")
            }
        }
        router.get("/push/{id}") { request, context -> Status in
            let text = try context.parameters.require("id")
            guard let id = UUID(uuidString: text) else { throw APIError(.badRequest, "push id '\(text)' is not a UUID") }
            let items = try await store.pushStatus(id)
            guard !items.isEmpty else { throw APIError(.notFound, "no push with id \(text)") }
            return Status(id: text.lowercased(), state: Self.overallState(items.map(\.state)), devices: items)
        }
    }

    /// Checks a push request; an `APIError` (400) says which field is wrong.
    static func validate(_ body: Body) throws -> PushRequest {
        let to = body.to.trimmingCharacters(in: .whitespaces)
        let recipient: PushRequest.Recipient
        if to.contains("@") {
            guard Email.isPlausible(to) else { throw APIError(.badRequest, "'to' is not a valid e-mail address") }
            recipient = .email(to.lowercased())
        } else if let pin = PIN(to) {
            recipient = .pin(pin)
        } else {
            throw APIError(.badRequest, "'to' must be an e-mail address or a PIN (1–8 hex digits)")
        }
        let subject = body.subject ?? ""
        let text = body.body ?? ""
        guard !subject.isEmpty || !text.isEmpty else { throw APIError(.badRequest, "a push needs a 'subject' or a 'body'") }
        guard subject.utf8.count <= PushItem.maxSubjectLength else {
            throw APIError(.badRequest, "'subject' is longer than \(PushItem.maxSubjectLength) bytes")
        }
        guard text.utf8.count <= PushItem.maxBodyLength else {
            throw APIError(.badRequest, "'body' is longer than \(PushItem.maxBodyLength) bytes")
        }
        let expiresIn = body.expires_in ?? defaultExpiry
        guard (1...30 * 24 * 3600).contains(expiresIn) else {
            throw APIError(.badRequest, "'expires_in' must be between 1 and 2592000 seconds")
        }
        return PushRequest(to: recipient, subject: subject, body: text, expiresIn: expiresIn)
    }

    /// The push's state across its devices: the least advanced one, with `expired` only
    /// when nothing is still on its way.
    static func overallState(_ states: [String]) -> String {
        if states.contains("queued") { return "queued" }
        if states.contains("sent") { return "sent" }
        if states.contains("expired") { return "expired" }
        return "acked"
    }
}

enum Email {
    /// One `@`, a non-empty local part, a dotted domain, no spaces: enough to catch typos.
    static func isPlausible(_ s: String) -> Bool {
        let parts = s.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[1].contains("."), !parts[1].hasPrefix("."),
              !parts[1].hasSuffix("."), s.utf8.count <= 254 else { return false }
        return !s.contains(where: { $0.isWhitespace })
    }
}
