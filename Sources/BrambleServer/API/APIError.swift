import BrambleAPI
import BrambleCore
import Foundation
import Hummingbird

/// An API failure answers `{"error": "…", "code": "…"}` with the code's status.
extension APIErrorBody: HTTPResponseError {
    public var status: HTTPResponse.Status { .init(code: code.status) }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        jsonResponse(status, self)
    }
}

/// A JSON answer with a status of our choosing (the routes' encoder handles the 200s).
func jsonResponse(_ status: HTTPResponse.Status, _ value: some Encodable, headers: HTTPFields = [:]) -> Response {
    let encoder = JSONEncoder()
    encoder.dateEncodingStrategy = .iso8601
    var fields = headers
    fields[.contentType] = "application/json"
    let body = (try? encoder.encode(value)) ?? Data()
    return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: body)))
}

extension Request {
    /// Decodes a JSON body; any decoding failure becomes a 400 that says what is wrong.
    func decodeJSON<T: Decodable>(_ type: T.Type, context: some RequestContext) async throws -> T {
        do {
            return try await decode(as: type, context: context)
        } catch let error as HTTPError {
            throw APIErrorBody(.badRequest, error.body ?? "request body is not valid JSON for this endpoint")
        }
    }
}

extension PushAccepted: ResponseEncodable {}
extension PushStatus: ResponseEncodable {}
extension UserRecord: ResponseEncodable {}
extension ActivationSet: ResponseEncodable {}
extension PolicyList: ResponseEncodable {}
extension PolicyRecord: ResponseEncodable {}
extension PolicyAssigned: ResponseEncodable {}
extension DeviceCommandRecord: ResponseEncodable {}
extension UserList: ResponseEncodable {}
extension IMStatus: ResponseEncodable {}
extension DeviceRecord: ResponseEncodable {}
extension PushAppCreated: ResponseEncodable {}
extension PushAppList: ResponseEncodable {}
extension KeysResealed: ResponseEncodable {}
extension DeviceList: ResponseEncodable {}
extension Removed: ResponseEncodable {}
extension Provisioned: ResponseEncodable {}
extension PairStatus: ResponseEncodable {}
extension Thresholds: ResponseEncodable {}
extension FailoverDone: ResponseEncodable {}
extension NodeHealth: ResponseEncodable {}
extension PairEventLog: ResponseEncodable {}
extension MailFilterRule: ResponseEncodable {}
extension FilterList: ResponseEncodable {}
