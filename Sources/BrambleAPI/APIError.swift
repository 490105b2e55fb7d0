/// Every error answer of a node's HTTP API: `{"error": "what is wrong", "code": "…"}`. The
/// message is for an operator; `code` is for programs (the CLI decides from it whether to
/// ask the other node, a client whether to retry).
public struct APIErrorBody: Codable, Sendable, Equatable, Error, CustomStringConvertible {
    public var error: String
    public var code: APIErrorCode

    public init(_ code: APIErrorCode, _ error: String) {
        self.error = error
        self.code = code
    }

    public var description: String { error }
}

public enum APIErrorCode: String, Codable, Sendable, CaseIterable {
    /// 400: the request is malformed; nothing changed.
    case badRequest = "bad_request"
    /// 401: missing or wrong bearer token.
    case unauthorized
    /// 403: a valid token, but not for this (a push application's token on anything but
    /// `POST /push`).
    case forbidden
    /// 404: no such user, device, push or recipient.
    case notFound = "not_found"
    /// 409: it exists already (a user, a PIN).
    case conflict
    /// 409: this node is not the primary; ask the primary.
    case notPrimary = "not_primary"
    /// 409: the switchover cannot start; the message says why.
    case failoverRefused = "failover_refused"
    /// 422: this Idempotency-Key was used for a different request.
    case idempotencyKeyReused = "idempotency_key_reused"
    /// 409: a request with this Idempotency-Key is being committed right now (perhaps
    /// stalled in its commit): send it again with the same key a little later.
    case idempotencyKeyInProgress = "idempotency_key_in_progress"
    /// 503: the push was certainly not committed: send it again, to either node.
    case notAccepted = "not_accepted"
    /// 504: the commit may or may not have happened: send it again with the same
    /// Idempotency-Key, which never commits twice.
    case outcomeUnknown = "outcome_unknown"
    /// 503: the node cannot answer now (stopping, the database's primary moving).
    case unavailable
    /// 500: a bug; the node's log says more.
    case `internal`

    /// The HTTP status an error of this kind is answered with.
    public var status: Int {
        switch self {
        case .badRequest: 400
        case .unauthorized: 401
        case .forbidden: 403
        case .notFound: 404
        case .conflict, .notPrimary, .failoverRefused, .idempotencyKeyInProgress: 409
        case .idempotencyKeyReused: 422
        case .notAccepted, .unavailable: 503
        case .outcomeUnknown: 504
        case .internal: 500
        }
    }
}
