import BrambleAPI
import Crypto
import HTTPTypes
import Hummingbird

/// Requires `Authorization: Bearer <token>` on every route except health and metrics, and
/// lets each credential do only its own work:
/// - the admin token (operators, the `bramble` CLI): every route but the mail server's
///   notification;
/// - a push application's token (`bramble app add`): `POST /push` and `GET /push/{id}`
///   (its own pushes' state; another's is a 404) only, 403 elsewhere, until the
///   application is revoked — looked up by its SHA-256 at every request, so a
///   revocation holds at once on both nodes;
/// - the mail notify token (the mail server): `POST /mail/notify` only, so the mail host
///   never holds a token that could do more.
/// A missing or unknown token is a 401 and the request goes no further.
struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let adminToken: String
    /// Nil: the node takes no mail notifications.
    let mailNotifyToken: String?
    /// The live push application whose token has this SHA-256, or nil.
    let pushApp: @Sendable ([UInt8]) async throws -> String?

    /// Set by this middleware alone (a client's own copy is dropped): the push application
    /// a request comes from, so its Idempotency-Keys are its own.
    static var pushAppHeader: HTTPField.Name { HTTPField.Name("Bramble-Push-Application")! }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let request = Self.with(request, pushApp: nil)
        let path = request.uri.path
        if HealthAPI.openPaths.contains(path) { return try await next(request, context) }
        let presented = request.headers[.authorization].flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil }
        if path == MailAPI.notify {
            guard let mailNotifyToken else {
                throw APIErrorBody(.notFound, "this node takes no mail notifications (no mail-notify-token-file is set)")
            }
            guard let presented, Self.equalInConstantTime(presented, mailNotifyToken) else {
                throw APIErrorBody(.unauthorized, "missing or wrong mail notify token")
            }
            return try await next(request, context)
        }
        guard let presented else { throw Self.unknownToken }
        if Self.equalInConstantTime(presented, adminToken) { return try await next(request, context) }
        // Only something shaped like a push application's token, where one may be used,
        // costs a database lookup: junk tokens cannot load the pool pushes commit through.
        guard PushAppToken.isWellFormed(presented) else { throw Self.unknownToken }
        guard Self.pushAppMayUse(request.method, path) else {
            throw APIErrorBody(.forbidden, "a push application's token may only push (POST \(PushAPI.path)) and read its pushes' state (GET \(PushAPI.path)/{id})")
        }
        let app: String?
        do {
            app = try await pushApp(Array(SHA256.hash(data: Array(presented.utf8))))
        } catch {
            throw APIErrorBody(.unavailable, "the token cannot be checked now (the configuration database does not answer)")
        }
        guard let app else { throw Self.unknownToken }
        return try await next(Self.with(request, pushApp: app), context)
    }

    /// `POST /push`, or `GET /push/{id}`: a push application's routes.
    static func pushAppMayUse(_ method: HTTPRequest.Method, _ path: String) -> Bool {
        switch method {
        case .post: return path == PushAPI.path
        case .get:
            guard path.hasPrefix(PushAPI.path + "/") else { return false }
            let id = path.dropFirst(PushAPI.path.count + 1)
            return !id.isEmpty && !id.contains("/")
        default: return false
        }
    }

    /// `request` with the push-application header set to `pushApp` (or removed).
    static func with(_ request: Request, pushApp: String?) -> Request {
        guard pushApp != nil || request.headers[pushAppHeader] != nil else { return request }
        var head = request.head
        head.headerFields[pushAppHeader] = pushApp
        return Request(head: head, body: request.body)
    }

    static var unknownToken: APIErrorBody {
        APIErrorBody(.unauthorized, "missing or wrong bearer token (the admin token, or a push application's: see `make status`)")
    }

    /// Compares SHA-256 digests so the time taken says nothing about the token.
    static func equalInConstantTime(_ a: String, _ b: String) -> Bool {
        SHA256.hash(data: Array(a.utf8)) == SHA256.hash(data: Array(b.utf8))
    }
}
