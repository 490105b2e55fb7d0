import Foundation

/// One item a device showed: what `--json` prints, one JSON object per line.
public struct ShownItem: Codable, Sendable, Equatable {
    public var pin: String
    public var ref: UInt64
    public var pushID: String
    public var service: String
    public var subject: String
    public var bodyLength: Int
    public var receivedAt: Date

    enum CodingKeys: String, CodingKey {
        case pin, ref, service, subject
        case pushID = "push_id"
        case bodyLength = "body_length"
        case receivedAt = "received_at"
    }

    public static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true)))
        }
        return e
    }()
}
