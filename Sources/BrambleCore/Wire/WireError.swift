/// Why a frame was rejected. The decoder throws only this type.
public struct WireError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: Equatable, Sendable {
        /// The length prefix is below the minimum or above the configured maximum.
        case badLength(Int)
        case unsupportedVersion(UInt8)
        case unknownFrameType(UInt8)
        /// The frame ended before a field it declares.
        case truncated(field: String)
        /// Bytes left over after the last field of the frame.
        case trailingBytes(Int)
        /// A field holds a value outside its allowed range or alphabet.
        case invalidField(String)
    }

    public let code: Code

    public init(_ code: Code) { self.code = code }

    public var description: String {
        switch code {
        case .badLength(let n): return "frame length \(n) is out of bounds"
        case .unsupportedVersion(let v): return "unsupported protocol version \(v)"
        case .unknownFrameType(let t): return "unknown frame type \(t)"
        case .truncated(let field): return "frame truncated in field '\(field)'"
        case .trailingBytes(let n): return "\(n) unexpected bytes after the last field"
        case .invalidField(let f): return "invalid value in field '\(f)'"
        }
    }
}
