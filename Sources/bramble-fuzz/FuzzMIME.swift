#if BRAMBLE_FUZZ
import BrambleCore
import NIOCore

/// `mime`: what the Messaging Agent makes of a message. The Agent never parses a whole
/// MIME message: the server's ENVELOPE and BODYSTRUCTURE say the headers and the parts,
/// and it fetches the text part and the Importance / X-Priority headers. So the input is
/// read as a server's FETCH responses and put through the Agent's steps (MailEnvelope,
/// MailStructure, MailComposer, MailImportance), and, whole, through the text functions
/// those steps use: RFC 2047 headers, base64 and quoted-printable, charsets, HTML, chunks.
enum MIMETarget {
    static let target = FuzzTarget(
        name: "mime",
        covers: "MailEnvelope, MailStructure, MailComposer, MailImportance, MailHeaders, MailText (headers, transfer encodings, charsets, HTML, chunks), IMAPDate",
        run: run)

    /// The server's smallest chunk (256 bytes) and a small cap on the text kept.
    static let chunkBytes = 256
    static let maxTextBytes = 1024
    static let charsets: [String?] = [
        nil, "utf-8", "US-ASCII", "iso-8859-1", "ISO-8859-2", "windows-1250", "windows-1251", "windows-1252",
        "windows-1253", "windows-1254", "utf-16", "UTF-16BE", "utf-16le", "\"koi8-r\"", "x-unknown",
    ]

    static func run(_ bytes: [UInt8]) {
        let text = bytes.lossyText

        // The text functions, with the bounds they promise (at most a fixed multiple of
        // what they are given: invalid bytes become U+FFFD, three bytes each).
        let header = MailText.decodeHeader(text)
        require(header.utf8.count <= 3 * text.utf8.count, "a decoded header grew from \(text.utf8.count) to \(header.utf8.count) bytes")
        require(MailText.base64(bytes).count <= bytes.count * 3 / 4, "base64 made more than 3 bytes of 4")
        require(MailText.quotedPrintable(bytes).count <= bytes.count, "quoted-printable grew")
        require(MailText.quotedPrintable(bytes, underscoreIsSpace: true).count <= bytes.count, "Q encoding grew")
        _ = MailText.decodeTransfer(bytes, encoding: ["base64", "QUOTED-PRINTABLE", "7bit", nil][Int(bytes.first ?? 0) % 4])
        // One charset per input (the input's last byte picks it): the decoders are Foundation's.
        let charset = charsets[Int(bytes.last ?? 0) % charsets.count]
        let decoded = MailText.decode(bytes, charset: charset)
        require(decoded.utf8.count <= 3 * bytes.count + 3, "\(charset ?? "nil") grew \(bytes.count) bytes to \(decoded.utf8.count)")
        let plain = MailText.plainText(fromHTML: text)
        require(plain.utf8.count <= text.utf8.count, "text from HTML grew")
        // Each chunk re-reads the rest of the text: the first 512 bytes, in chunks of 8 to 71.
        checkChunks(MailText.prefix(plain, maxBytes: 512), first: 0, maxBytes: 8 + Int(bytes.first ?? 0) % 64)
        _ = MailImportance.parse(headers: bytes)
        // A reply's References, as the Agent reads it from the original's header block.
        if let references = MailHeaders.value("References", in: bytes) {
            require(references == MailText.printable(references), "a header value with a control character")
            require(references.utf8.count <= 3 * MailHeaders.maxHeaderBytes, "a header value past the block's bound")
        }
        _ = IMAPDate.parse(String(text.prefix(48)))  // an INTERNALDATE is 26 characters

        // The Agent's reading of FETCH responses.
        var buffer = ByteBuffer(bytes: bytes)
        var budget = 8
        while budget > 0, let response = try? IMAPResponseDecoder.decode(from: &buffer) {
            budget -= 1
            if case .untagged(.fetch(_, let attributes)) = response { compose(attributes) }
        }
    }

    /// As `MessagingAgent.read`: the envelope, the Importance headers and the structure
    /// from one FETCH; the text part's first bytes from the next (here, any BODY[…] that
    /// is not the headers); then the mail item, whose invariants the device relies on.
    static func compose(_ attributes: [IMAPFetchAttribute]) {
        let envelope = attributes["ENVELOPE"].flatMap(MailEnvelope.init)
            ?? MailEnvelope(date: "", subject: "(a message whose envelope could not be read)", from: [], to: [], cc: [], messageID: "")
        let headers = attributes.first { $0.name.hasPrefix("BODY[HEADER") }?.value.bytes ?? []
        let parts = attributes["BODYSTRUCTURE"].map { MailStructure.parts($0) } ?? []
        require(parts.count <= 256, "\(parts.count) parts past the limit")
        let textPart = MailStructure.textPart(parts)
        let attachments = MailStructure.attachments(parts, text: textPart)
        require(textPart.map { !attachments.contains($0) } ?? true, "the text part is also an attachment")
        let raw = attributes.first { $0.name.hasPrefix("BODY[") && !$0.name.hasPrefix("BODY[HEADER") }?.value.bytes
        let uid = attributes["UID"]?.number ?? 1

        var composed = MailComposer.compose(envelope: envelope, parts: parts, text: textPart, rawText: raw, uidValidity: 3, uid: uid,
                                            chunkBytes: chunkBytes, maxTextBytes: maxTextBytes)
        composed.item.importance = MailImportance.parse(headers: headers)
        let item = composed.item

        // The item: a key the store can use, no NUL, the first chunk of the kept text.
        require(!item.messageID.isEmpty && item.messageID.utf8.count <= MailItem.maxMessageIDLength
                && item.messageID.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value != 0x7F }, "message ID \(item.messageID.debugDescription)")
        for field in [item.from, item.subject, item.date, item.body] + item.to + item.cc + item.attachments.flatMap({ [$0.name, $0.type] }) {
            require(!field.utf8.contains(0), "a NUL byte in the mail item")
        }
        require(composed.text.utf8.count <= maxTextBytes, "kept \(composed.text.utf8.count) bytes of text")
        require(item.body.utf8.count <= chunkBytes && composed.firstChunkBytes == item.body.utf8.count
                && composed.text.utf8.starts(with: item.body.utf8), "the first chunk is not the text's start")
        require(item.moreAvailable == (composed.firstChunkBytes < composed.text.utf8.count), "more_available is wrong")
        checkChunks(composed.text, first: composed.firstChunkBytes, maxBytes: chunkBytes)

        // What the server sends, the device must take: it decodes, and fits a frame.
        let encoded = item.encoded()
        require(encoded.count + Envelope.minimumSealedLength + 64 <= Frame.defaultMaxLength, "a mail item of \(encoded.count) bytes")
        require((try? MailItem.decode(encoded)) != nil, "the device refuses the mail item the server composed")
    }

    /// More's chunks from `first` on: each within `maxBytes`, each moving on, together the
    /// text's bytes exactly.
    static func checkChunks(_ text: String, first: Int, maxBytes: Int) {
        var joined = Array(text.utf8.prefix(first))
        var offset = first, more = first < text.utf8.count
        while more {
            let chunk = MailText.chunk(text, offset: offset, maxBytes: maxBytes)
            require(chunk.end > offset && chunk.end <= text.utf8.count, "a chunk from \(offset) ended at \(chunk.end)")
            require(chunk.body.utf8.count <= maxBytes && chunk.end - offset == chunk.body.utf8.count, "a chunk over its bound")
            joined += chunk.body.utf8
            (offset, more) = (chunk.end, chunk.moreAvailable)
        }
        require(joined == Array(text.utf8), "the chunks do not make up the text")
    }
}

#endif
