#if BRAMBLE_FUZZ
import BrambleCore
import Crypto
import NIOCore

// libFuzzer entry point: every decoder that reads bytes from the network or from a
// sealed body. Built only by `make fuzz` (-sanitize=fuzzer,address); libFuzzer supplies
// `main`. Any crash, leak or unbounded allocation is a finding.

private let fuzzKey = SymmetricKey(data: [UInt8](repeating: 0x42, count: 32))
// libFuzzer calls the entry point from one thread.
nonisolated(unsafe) private let envelope = Envelope()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDecoders(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))

    // 1. The stream decoder: frames until it needs more bytes or throws.
    var buffer = ByteBuffer(bytes: bytes)
    do {
        while let frame = try Frame.decode(from: &buffer, maxLength: 4096) {
            // Whatever decodes must encode back to a frame that decodes equal.
            var again = frame.encoded()
            precondition((try? Frame.decode(from: &again)) == frame, "re-encoding changed the frame")
        }
    } catch {
        _ = error.code
    }

    // 1b. The input as the fields of each frame type behind a valid header, so every
    //     field parser (the epoch refusal's reason byte and held epoch among them) sees
    //     every input, not only the few that guess a length, version and type.
    for type in Frame.FrameType.allCases {
        var framed = ByteBuffer()
        framed.writeInteger(UInt32(2 + bytes.count))
        framed.writeInteger(Frame.version)
        framed.writeInteger(type.rawValue)
        framed.writeBytes(bytes)
        if let frame = try? Frame.decode(from: &framed, maxLength: 4096) {
            precondition(frame.type == type, "a \(type) header decoded as \(frame.type)")
            var again = frame.encoded()
            precondition((try? Frame.decode(from: &again)) == frame, "re-encoding changed the frame")
        }
    }

    // 2. The envelope, with the bytes as a sealed body (almost always rejected by GCM).
    let frame = DataFrame(pin: PIN(1), service: .push, ref: 1, flags: [], body: bytes)
    _ = try? envelope.open(frame, key: fuzzKey, maxPayload: 1 << 16)

    // 3. The payload parsers, which run only after authentication but are bounded anyway.
    _ = try? PushItem.decode(bytes)
    _ = try? AckList.decode(bytes)
    //     The tagged-field payloads: whatever decodes must encode back to itself.
    if let mail = try? MailItem.decode(bytes) {
        precondition((try? MailItem.decode(mail.encoded())) == mail, "re-encoding changed the mail")
        // The filter rules read what a mail item decodes to.
        for field in MailFilterRule.Field.allCases {
            _ = MailFilterRule(id: 1, position: 1, field: field, contains: mail.subject, action: .forward).matches(mail)
        }
    }
    if let more = try? MoreChunk.decode(bytes) { precondition((try? MoreChunk.decode(more.encoded())) == more, "re-encoding changed the chunk") }
    if let request = try? DeviceRequest.decode(bytes) {
        precondition((try? DeviceRequest.decode(request.encoded())) == request, "re-encoding changed the request")
    }
    _ = (try? PayloadFields(bytes)).map { try? $0.records(9, maxCount: 4, "records") }
    _ = IMAPDate.parse(String(decoding: bytes, as: UTF8.self))
    // A message's Importance / X-Priority header block (bytes from the mail server), and
    // chunking of whatever text it makes, from any offset the chunks could reach.
    _ = MailImportance.parse(headers: bytes)
    let text = String(decoding: bytes, as: UTF8.self)
    var offset = 0, more = true
    while more {
        let chunk = MailText.chunk(text, offset: offset, maxBytes: 64)
        precondition(chunk.end >= offset && chunk.end <= text.utf8.count, "a chunk ended outside the text")
        precondition(chunk.end > offset || !chunk.moreAvailable, "a chunk made no progress")
        (offset, more) = (chunk.end, chunk.moreAvailable)
    }

    // 3b. The IMAP response decoder (bytes from a mail server), with small bounds so the
    //     limits themselves are exercised; then the same bytes as a literal's body.
    var limits = IMAPResponseDecoder.Limits()
    (limits.maxLine, limits.maxLiteral, limits.maxResponse, limits.maxDepth) = (512, 1024, 4096, 8)
    var imap = ByteBuffer(bytes: bytes)
    _ = try? { while try IMAPResponseDecoder.decode(from: &imap, limits: limits) != nil {} }()
    var literal = ByteBuffer(string: "* 1 FETCH (BODY[] {\(bytes.count)}\r\n")
    literal.writeBytes(bytes)
    literal.writeString(")\r\n")
    _ = try? IMAPResponseDecoder.decode(from: &literal, limits: limits)

    // 3b'. What the Messaging Agent makes of a message: headers, transfer encodings,
    //      charsets, HTML, and the summary of any FETCH the decoder accepts.
    let lossy = String(decoding: bytes, as: UTF8.self)
    _ = MailText.decodeHeader(lossy)
    _ = MailText.decode(MailText.decodeTransfer(bytes, encoding: "quoted-printable"), charset: "windows-1252")
    _ = MailText.base64(bytes)
    _ = MailText.prefix(MailText.plainText(fromHTML: lossy), maxBytes: 2048)
    var fetch = ByteBuffer(string: "* 1 FETCH (ENVELOPE ")
    fetch.writeBytes(bytes)
    fetch.writeString(")\r\n")
    if case .untagged(.fetch(_, let attributes))? = try? IMAPResponseDecoder.decode(from: &fetch, limits: limits) {
        for attribute in attributes {
            _ = MailEnvelope(attribute.value)
            let parts = MailStructure.parts(attribute.value)
            _ = MailStructure.attachments(parts, text: MailStructure.textPart(parts))
        }
    }

    // 3c. SMTP replies (bytes from a mail server).
    var smtp = ByteBuffer(bytes: bytes)
    _ = try? { while try SMTPReplyDecoder.decode(from: &smtp) != nil {} }()

    // 4. The pair's notification payloads (text from PostgreSQL NOTIFY): whatever parses
    //    must format back to itself.
    if let text = String(validating: bytes, as: UTF8.self), let n = try? OutboundNotification(payload: text) {
        precondition((try? OutboundNotification(payload: n.payload)) == n, "re-formatting changed the notification")
    }
    return 0
}

// SwiftPM links an executable's entry as `<target>_main`; hand control to libFuzzer's
// driver from there.
@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

@_cdecl("bramble_fuzz_main")
public func brambleFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, fuzzDecoders)
}

#endif
