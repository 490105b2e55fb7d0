import Foundation
import Hummingbird

/// An API failure: its status and a message for the operator, as `{"error": "…"}`.
struct APIError: HTTPResponseError {
    let status: HTTPResponse.Status
    let message: String

    init(_ status: HTTPResponse.Status, _ message: String) {
        self.status = status
        self.message = message
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = (try? JSONEncoder().encode(["error": message])) ?? Data()
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}

extension Request {
    /// Decodes a JSON body; any decoding failure becomes a 400 that says what is wrong.
    func decodeJSON<T: Decodable>(_ type: T.Type, context: some RequestContext) async throws -> T {
        do {
            return try await decode(as: type, context: context)
        } catch let error as HTTPError {
            throw APIError(error.status, error.body ?? "request body is not valid JSON for this endpoint")
        }
    }
}
