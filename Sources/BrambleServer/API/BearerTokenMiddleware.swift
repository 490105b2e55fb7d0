import BrambleAPI
import Crypto
import Hummingbird

/// Requires `Authorization: Bearer <token>` on every route except health and metrics:
/// the admin token, except on the mail server's notification, which takes only the mail
/// notify token (so the mail host never holds the admin token). A missing or wrong token
/// is a 401 and the request goes no further.
struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String
    /// Nil: the node takes no mail notifications.
    let mailNotifyToken: String?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        if HealthAPI.openPaths.contains(path) { return try await next(request, context) }
        if path == MailAPI.notify, mailNotifyToken == nil {
            throw APIErrorBody(.notFound, "this node takes no mail notifications (no mail-notify-token-file is set)")
        }
        let expected = path == MailAPI.notify ? mailNotifyToken : token
        guard let expected, let header = request.headers[.authorization], header.hasPrefix("Bearer "),
              Self.equalInConstantTime(String(header.dropFirst(7)), expected) else {
            throw APIErrorBody(.unauthorized, path == MailAPI.notify ? "missing or wrong mail notify token"
                                                                       : "missing or wrong bearer token (see admin_token in `make status`)")
        }
        return try await next(request, context)
    }

    /// Compares SHA-256 digests so the time taken says nothing about the token.
    static func equalInConstantTime(_ a: String, _ b: String) -> Bool {
        SHA256.hash(data: Array(a.utf8)) == SHA256.hash(data: Array(b.utf8))
    }
}
