import AsyncHTTPClient
import BrambleAPI
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// A client of one node's HTTP API, decoding every answer through `BrambleAPI`'s one
/// definition: the `bramble` CLI, the benches and the tests all use it.
public struct BrambleClient: Sendable {
    public let baseURL: String
    public let token: String
    let http: HTTPClient

    public init(baseURL: String, token: String, http: HTTPClient = .shared) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.token = token
        self.http = http
    }

    /// Why a call failed, typed so a caller can decide what to do next.
    public enum Failure: Error, CustomStringConvertible {
        /// No connection could be made: nothing reached the node, so asking another node
        /// is always safe.
        case unreachable(url: String, reason: String)
        /// The request may have reached the node but no answer came (a reset, a time-out).
        case noAnswer(url: String, reason: String)
        /// The node answered with an error.
        case api(status: Int, APIErrorBody)
        /// The node answered something this client cannot read.
        case malformed(status: Int, reason: String)

        public var description: String {
            switch self {
            case .unreachable(let url, let reason): "\(url) cannot be reached: \(reason)"
            case .noAnswer(let url, let reason): "\(url) did not answer: \(reason)"
            case .api(let status, let body): "\(body.error) (HTTP \(status))"
            case .malformed(let status, let reason): "unreadable answer (HTTP \(status)): \(reason)"
            }
        }

        /// The node's error code, when it answered with one.
        public var code: APIErrorCode? { if case .api(_, let body) = self { body.code } else { nil } }
    }

    /// An answer as it came (tests that probe the API's refusals).
    public struct Reply: Sendable {
        public var status: Int
        public var body: Data
        public var headers: HTTPHeaders
        /// The error body, if the answer is one.
        public var error: APIErrorBody? { try? JSONDecoder().decode(APIErrorBody.self, from: body) }
        public func decode<T: Decodable>(_ type: T.Type) throws -> T { try BrambleClient.decoder.decode(type, from: body) }
    }

    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return d
    }()

    /// Sends a request and returns the answer whatever its status; throws only `unreachable`
    /// or `noAnswer`.
    public func raw(_ method: HTTPMethod, _ path: String, body: (any Encodable)? = nil, headers: [(String, String)] = [],
                    timeout: TimeAmount = .seconds(30)) async throws(Failure) -> Reply {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        if !token.isEmpty { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            guard let data = try? JSONEncoder().encode(body) else { throw .malformed(status: 0, reason: "request body does not encode") }
            request.body = .bytes(ByteBuffer(bytes: data))
        }
        do {
            let response = try await http.execute(request, timeout: timeout)
            let data = try await response.body.collect(upTo: 16 << 20)
            return Reply(status: Int(response.status.code), body: Data(buffer: data), headers: response.headers)
        } catch {
            throw Self.isUnreachable(error) ? .unreachable(url: baseURL, reason: "\(error)") : .noAnswer(url: baseURL, reason: "\(error)")
        }
    }

    /// Sends a request; decodes the answer as `T` when its status is `expect`, else throws
    /// `.api` with the node's error.
    public func call<T: Decodable>(_ method: HTTPMethod, _ path: String, body: (any Encodable)? = nil, expect: Int = 200,
                                   as type: T.Type, headers: [(String, String)] = [], timeout: TimeAmount = .seconds(30)) async throws(Failure) -> T {
        let reply = try await raw(method, path, body: body, headers: headers, timeout: timeout)
        guard reply.status == expect else {
            if let error = reply.error { throw .api(status: reply.status, error) }
            throw .malformed(status: reply.status, reason: String(decoding: reply.body.prefix(200), as: UTF8.self))
        }
        do { return try reply.decode(type) } catch { throw .malformed(status: reply.status, reason: "\(error)") }
    }

    /// `POST /push`, optionally under an Idempotency-Key (then a retry is always safe).
    public func push(_ body: PushRequestBody, idempotencyKey: String? = nil, timeout: TimeAmount = .seconds(30)) async throws(Failure) -> PushAccepted {
        try await call(.POST, PushAPI.path, body: body, expect: 202, as: PushAccepted.self,
                       headers: idempotencyKey.map { [(PushAPI.idempotencyKeyHeader, $0)] } ?? [], timeout: timeout)
    }

    /// No connection was made: refused, no route, timed out connecting, name unknown.
    static func isUnreachable(_ error: any Error) -> Bool {
        switch error {
        // No connection for the request, so it was never sent.
        case let e as HTTPClientError: return e == .connectTimeout || e == .socksHandshakeTimeout || e == .getConnectionFromPoolTimeout
        case is NIOConnectionError: return true
        case let e as ChannelError: if case .connectTimeout = e { return true } else { return false }
        case let e as IOError: return [ECONNREFUSED, EHOSTUNREACH, ENETUNREACH].contains(e.errnoCode)
        case is SocketAddressError: return true
        default: return false
        }
    }
}
