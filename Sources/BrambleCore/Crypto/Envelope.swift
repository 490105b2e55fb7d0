import CompressNIO
import Crypto
import NIOCore
import NIOFoundationCompat

/// Why a sealed body could not be opened. Never carries key material or plaintext.
public enum EnvelopeError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The tag did not verify: wrong key, tampered body or header, or a reflected frame.
    case authenticationFailed
    /// The body is shorter than nonce + length + tag.
    case truncated
    /// The declared plaintext length exceeds the caller's bound.
    case payloadTooLarge(Int)
    /// The compressed stream is corrupt or does not inflate to the declared length.
    case decompressionFailed

    public var description: String {
        switch self {
        case .authenticationFailed: "authentication failed (wrong key or tampered frame)"
        case .truncated: "sealed body truncated"
        case .payloadTooLarge(let n): "declared payload of \(n) bytes exceeds the bound"
        case .decompressionFailed: "compressed payload is corrupt"
        }
    }
}

/// Compress-then-encrypt for device data (DESIGN: "compress before encrypting, never after").
///
/// Sealed body: `nonce(12) ‖ AES-256-GCM(u32 plaintextLength ‖ deflate(payload)) ‖ tag(16)`,
/// with the frame header as associated data. The length inside the ciphertext bounds
/// decompression and detects a truncated stream.
///
/// Holds a zlib stream for reuse, so it is not Sendable: keep one per task or actor.
public final class Envelope {
    public static let nonceLength = 12
    public static let tagLength = 16
    public static let minimumSealedLength = nonceLength + 4 + tagLength
    /// Default bound on an opened payload.
    public static let defaultMaxPayload = 1 << 20
    /// zlib level used for every envelope (and by the benchmark's baseline).
    public static let compressionLevel: Int32 = 6

    private let compressor: ZlibCompressor
    private let decompressor: ZlibDecompressor
    private var scratch: ByteBuffer

    public init() {
        // Both initialisers fail only when zlib cannot allocate its state.
        self.compressor = try! ZlibCompressor(
            algorithm: .deflate, configuration: .init(compressionLevel: Envelope.compressionLevel))
        self.decompressor = try! ZlibDecompressor(algorithm: .deflate)
        self.scratch = ByteBufferAllocator().buffer(capacity: 4096)
    }

    /// Compresses and encrypts `payload` for the frame whose header is `header`.
    public func seal(_ payload: [UInt8], key: SymmetricKey, header: DataFrame) -> [UInt8] {
        var input = ByteBufferAllocator().buffer(bytes: payload)
        scratch.clear()
        scratch.writeInteger(UInt32(payload.count))
        scratch.reserveCapacity(minimumWritableBytes: compressor.maxSize(from: input))
        do {
            try compressor.reset()
            try compressor.deflate(from: &input, to: &scratch, flush: .finish)
        } catch {
            // deflateBound() sized the buffer, so overflow cannot happen.
            preconditionFailure("zlib deflate failed: \(error)")
        }
        let plaintext = scratch.readableBytesView
        let box = try! AES.GCM.seal(plaintext, using: key, nonce: AES.GCM.Nonce(), authenticating: header.associatedData)
        return Array(box.combined!)
    }

    /// Verifies, decrypts and inflates a sealed body; bounded by `maxPayload`.
    public func open(
        _ frame: DataFrame, key: SymmetricKey, maxPayload: Int = Envelope.defaultMaxPayload
    ) throws(EnvelopeError) -> [UInt8] {
        guard frame.body.count >= Envelope.minimumSealedLength else { throw .truncated }
        let plaintext: Data
        do {
            let box = try AES.GCM.SealedBox(combined: frame.body)
            plaintext = try AES.GCM.open(box, using: key, authenticating: frame.associatedData)
        } catch {
            throw .authenticationFailed
        }
        var compressed = ByteBufferAllocator().buffer(bytes: plaintext)
        guard let declared = compressed.readInteger(as: UInt32.self) else { throw .truncated }
        let length = Int(declared)
        guard length <= maxPayload else { throw .payloadTooLarge(length) }
        // One spare byte: inflating into exactly `length` would hide a longer stream.
        var output = ByteBufferAllocator().buffer(capacity: length + 1)
        do {
            try decompressor.reset()
            try decompressor.inflate(from: &compressed, to: &output)
        } catch {
            throw .decompressionFailed
        }
        guard output.readableBytes == length, compressed.readableBytes == 0 else { throw .decompressionFailed }
        return output.readBytes(length: length)!
    }
}

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
