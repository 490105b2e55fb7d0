import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// A small JSON client for a node's HTTP API, used by the `bramble` CLI, the benchmark
/// and the tests.
public struct AdminClient: Sendable {
    public let baseURL: String
    public let token: String
    let http: HTTPClient

    public init(baseURL: String, token: String, http: HTTPClient = .shared) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.token = token
        self.http = http
    }

    public struct Reply: Sendable {
        public var status: Int
        public var body: Data

        /// The `error` field of a JSON error body, or the body as text.
        public var errorMessage: String {
            if let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
               let message = object["error"] as? String { return message }
            return String(decoding: body, as: UTF8.self)
        }

        public func decode<T: Decodable>(_ type: T.Type) throws -> T {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            return try decoder.decode(type, from: body)
        }
    }

    public func send(_ method: HTTPMethod, _ path: String, json: (any Encodable)? = nil,
                     timeout: TimeAmount = .seconds(30)) async throws -> Reply {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(json)))
        }
        let response = try await http.execute(request, timeout: timeout)
        let body = try await response.body.collect(upTo: 16 << 20)
        return Reply(status: Int(response.status.code), body: Data(buffer: body))
    }

    /// POST /push: the accepted push's id, or nil when the node answered anything but 202
    /// (then `reply` says why).
    public func push(to: String, subject: String, body: String,
                     timeout: TimeAmount = .seconds(30)) async throws -> (id: String?, reply: Reply) {
        struct Body: Encodable { var to: String; var subject: String; var body: String }
        struct Accepted: Decodable { var id: String }
        let reply = try await send(.POST, "/push", json: Body(to: to, subject: subject, body: body), timeout: timeout)
        return (reply.status == 202 ? try reply.decode(Accepted.self).id : nil, reply)
    }
}
