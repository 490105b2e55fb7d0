import BrambleAPI
import BrambleCore
import Crypto
import Foundation
import HTTPTypes
import Hummingbird

/// MDS-style push API: `POST /push` answers 202 only after the commit; `GET /push/{id}`
/// reports delivery state. With an `Idempotency-Key` header a retry gets the first
/// answer and never commits twice; a failure says whether the push certainly was not
/// committed (503 `not_accepted`) or may have been (504 `outcome_unknown`).
struct PushRoutes {
    let store: ConfigStore
    let committer: PushCommitter
    let metrics: NodeMetrics

    static let defaultExpiry = 7 * 24 * 3600

    func register(on router: Router<BasicRequestContext>) {
        router.post(RouterPath(PushAPI.path)) { request, context -> Response in
            let body = try await request.decodeJSON(PushRequestBody.self, context: context)
            let push: PushRequest
            do {
                push = try Self.validate(body, idempotencyKey: request.headers[HTTPField.Name(PushAPI.idempotencyKeyHeader)!],
                                         pushApp: request.headers[BearerTokenMiddleware<BasicRequestContext>.pushAppHeader])
            } catch {
                metrics.pushRejected()
                throw error
            }
            do {
                switch try await committer.submit(push) {
                case .accepted(let pushID, let items, let replayed):
                    replayed ? metrics.pushReplayed() : metrics.pushAccepted()
                    let answer = PushAccepted(id: pushID.uuidString.lowercased(), devices: items)
                    return jsonResponse(.accepted, answer, headers: replayed ? [HTTPField.Name(PushAPI.replayedHeader)!: "true"] : [:])
                case .unknownRecipient:
                    throw APIErrorBody(.notFound, "no active device for recipient '\(body.to)'")
                case .keyInProgress:
                    throw APIErrorBody(.idempotencyKeyInProgress, "a request with this Idempotency-Key is being committed now; send it again with the same key in a moment")
                case .keyReused:
                    throw APIErrorBody(.idempotencyKeyReused, "this Idempotency-Key was already used for a different push; use a new key for a new push")
                }
            } catch let error as APIErrorBody {
                metrics.pushRejected()
                throw error
            }
        }
        router.get("/push/{id}") { request, context -> PushStatus in
            let text = try context.parameters.require("id")
            guard let id = UUID(uuidString: text) else { throw APIErrorBody(.badRequest, "push id '\(text)' is not a UUID") }
            // A push application sees its own pushes only; another's is as unknown as none.
            let items = try await store.pushStatus(id, app: request.headers[BearerTokenMiddleware<BasicRequestContext>.pushAppHeader])
            guard !items.isEmpty else { throw APIErrorBody(.notFound, "no push with id \(text)") }
            return PushStatus(id: text.lowercased(), devices: items)
        }
    }

    /// Checks a push request; an `APIErrorBody` (400) says which field is wrong.
    /// `pushApp`: the push application the request comes from; its keys are its own (a
    /// key is stored behind the application's name and a tab, which no key contains).
    static func validate(_ body: PushRequestBody, idempotencyKey: String? = nil, pushApp: String? = nil) throws -> PushRequest {
        let to = body.to.trimmingCharacters(in: .whitespaces)
        let recipient: PushRequest.Recipient
        if to.utf8.contains(0x40) {
            guard Email.isPlausible(to) else { throw APIErrorBody(.badRequest, "'to' is not a valid e-mail address") }
            recipient = .email(Email.canonical(to))
        } else if let pin = PIN(to) {
            recipient = .pin(pin)
        } else {
            throw APIErrorBody(.badRequest, "'to' must be an e-mail address or a PIN (1–8 hex digits)")
        }
        let subject = body.subject ?? ""
        let text = body.body ?? ""
        guard !subject.isEmpty || !text.isEmpty else { throw APIErrorBody(.badRequest, "a push needs a 'subject' or a 'body'") }
        guard !Email.hasNUL(subject), !Email.hasNUL(text) else { throw APIErrorBody(.badRequest, "'subject' and 'body' may not contain NUL (\\u0000)") }
        guard subject.utf8.count <= PushItem.maxSubjectLength else {
            throw APIErrorBody(.badRequest, "'subject' is longer than \(PushItem.maxSubjectLength) bytes")
        }
        guard text.utf8.count <= PushItem.maxBodyLength else {
            throw APIErrorBody(.badRequest, "'body' is longer than \(PushItem.maxBodyLength) bytes")
        }
        let expiresIn = body.expires_in ?? defaultExpiry
        guard (1...30 * 24 * 3600).contains(expiresIn) else {
            throw APIErrorBody(.badRequest, "'expires_in' must be between 1 and 2592000 seconds")
        }
        if let idempotencyKey, !PushAPI.isValidIdempotencyKey(idempotencyKey) {
            throw APIErrorBody(.badRequest, "the \(PushAPI.idempotencyKeyHeader) header must be 1–255 printable ASCII characters")
        }
        var request = PushRequest(to: recipient, subject: subject, body: text, expiresIn: expiresIn)
        request.idempotencyKey = idempotencyKey.map { key in pushApp.map { "\($0)\t\(key)" } ?? key }
        request.pushApp = pushApp
        return request
    }
}

