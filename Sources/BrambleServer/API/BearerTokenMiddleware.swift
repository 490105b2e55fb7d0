import BrambleAPI
import Crypto
import Hummingbird

/// Requires `Authorization: Bearer <token>` on every route except health and metrics.
/// A missing or wrong token is a 401 and the request goes no further.
struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if HealthAPI.openPaths.contains(request.uri.path) { return try await next(request, context) }
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer "),
              Self.equalInConstantTime(String(header.dropFirst(7)), token) else {
            throw APIErrorBody(.unauthorized, "missing or wrong bearer token (see admin_token in `make status`)")
        }
        return try await next(request, context)
    }

    /// Compares SHA-256 digests so the time taken says nothing about the token.
    static func equalInConstantTime(_ a: String, _ b: String) -> Bool {
        SHA256.hash(data: Array(a.utf8)) == SHA256.hash(data: Array(b.utf8))
    }
}
