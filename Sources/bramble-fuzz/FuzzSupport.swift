#if BRAMBLE_FUZZ
import NIOCore

// What several targets share: feeding a stream decoder the way a channel does (reads
// appended to one buffer, decoded until it needs more), and reading input as text.

/// Where the input splits into two reads: a position the input itself picks, so the
/// fuzzer can move it.
func splitPoint(_ bytes: [UInt8]) -> Int {
    guard bytes.count > 1 else { return 0 }
    let pick = Int(bytes[bytes.count - 1]) << 8 | Int(bytes[bytes.count / 2])
    return 1 + pick % (bytes.count - 1)
}

/// What a stream decoder made of bytes: the messages (with the bytes each consumed), the
/// error that ended it, if any, and the bytes left waiting for more.
struct StreamOutcome<Message: Equatable, Failure: Error & Equatable>: Equatable {
    var messages: [Message] = []
    var raw: [[UInt8]] = []
    var failure: Failure?
    var leftover = 0
}

/// Runs `decode` as `ByteToMessageDecoder` does: each part is appended to the buffer, then
/// decoded until it returns nil (it must then have consumed nothing) or throws (which ends
/// the stream, as it closes a connection).
func decodeStream<Message: Equatable, Failure: Error & Equatable>(
    _ parts: [ArraySlice<UInt8>], _ decode: (inout ByteBuffer) throws(Failure) -> Message?
) -> StreamOutcome<Message, Failure> {
    var buffer = ByteBuffer()
    var outcome = StreamOutcome<Message, Failure>()
    for part in parts {
        buffer.writeBytes(part)
        while true {
            let (start, before) = (buffer.readerIndex, buffer)
            let message: Message?
            do throws(Failure) {
                message = try decode(&buffer)
            } catch {
                outcome.failure = error
                return outcome
            }
            guard let message else {
                require(buffer.readerIndex == start, "a decoder that needs more bytes consumed some")
                break
            }
            require(buffer.readerIndex > start, "a decoder returned a message and consumed nothing")
            outcome.messages.append(message)
            outcome.raw.append(before.getBytes(at: start, length: buffer.readerIndex - start)!)
        }
    }
    outcome.leftover = buffer.readableBytes
    return outcome
}

/// The input whole, and in two reads split where the input picks.
func wholeAndSplit<Message: Equatable, Failure: Error & Equatable>(
    _ bytes: [UInt8], _ decode: (inout ByteBuffer) throws(Failure) -> Message?
) -> (whole: StreamOutcome<Message, Failure>, split: StreamOutcome<Message, Failure>) {
    let whole = decodeStream([bytes[...]], decode)
    let at = splitPoint(bytes)
    return (whole, at == 0 ? whole : decodeStream([bytes[..<at], bytes[at...]], decode))
}

extension Array where Element == UInt8 {
    /// The bytes as text, invalid UTF-8 replaced (what a tolerant reader sees).
    var lossyText: String { String(decoding: self, as: UTF8.self) }
}

#endif
