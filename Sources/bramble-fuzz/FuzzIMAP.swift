#if BRAMBLE_FUZZ
import BrambleCore
import NIOCore

/// `imap`: the IMAP response decoder, as the Messaging Agent reads a mail server's bytes:
/// a stream of responses with small limits (so every limit is reached) whole and in two
/// reads, the same with the Agent's limits, and the input as a literal's and a quoted
/// string's contents, which must come back byte for byte; then the input as a mailbox name
/// in modified UTF-7 (what decodes encodes back to the same bytes, and the reverse) and as
/// a UID set (bounded expansion).
enum IMAPTarget {
    static let target = FuzzTarget(
        name: "imap",
        covers: "IMAPResponseDecoder: responses (small limits: whole vs two reads; default limits), literals, quoted strings; MailboxName; IMAPUIDSet",
        run: run)

    static let small: IMAPResponseDecoder.Limits = {
        var l = IMAPResponseDecoder.Limits()
        (l.maxLine, l.maxLiteral, l.maxResponse, l.maxDepth) = (512, 1024, 4096, 8)
        return l
    }()

    static func run(_ bytes: [UInt8]) {
        // 1. Small limits, one read and two. The limits refuse a response as soon as it is
        //    known not to fit, before it is buffered whole, so two reads may refuse (as too
        //    large) what one read accepts; otherwise they must agree.
        let (whole, split) = wholeAndSplit(bytes) { (b: inout ByteBuffer) throws(IMAPError) in
            try IMAPResponseDecoder.decode(from: &b, limits: small)
        }
        let n = min(whole.messages.count, split.messages.count)
        require(whole.messages.prefix(n) == split.messages.prefix(n), "two reads decoded other responses than one")
        if case .tooLarge? = split.failure?.code {
            require(whole.messages.count >= split.messages.count, "two reads decoded more than one before refusing")
        } else {
            require(whole == split, "two reads decoded differently from one: \(whole) vs \(split)")
        }
        for response in whole.messages { read(response) }

        // 2. The Agent's limits, where the small ones refused (else the outcome is the same).
        switch whole.failure?.code {
        case .tooLarge?, .tooDeep?:
            let outcome = decodeStream([bytes[...]]) { (b: inout ByteBuffer) throws(IMAPError) in try IMAPResponseDecoder.decode(from: &b) }
            require(outcome.messages.starts(with: whole.messages), "larger limits decoded other responses")
            outcome.messages.forEach(read)
        case .syntax?, nil:
            break
        }

        // 3. The bytes as a literal (and a literal8) in a FETCH: they come back as they were.
        for open in ["{", "~{"] {
            var literal = ByteBuffer(string: "* 1 FETCH (UID 9 BODY[1]<0> \(open)\(bytes.count)}\r\n")
            literal.writeBytes(bytes)
            literal.writeString(")\r\n")
            let response = try? IMAPResponseDecoder.decode(from: &literal)
            require(response == .untagged(.fetch(sequence: 1, attributes: [
                IMAPFetchAttribute(name: "UID", value: .number(9)), IMAPFetchAttribute(name: "BODY[1]<0>", value: .string(bytes)),
            ])) && literal.readableBytes == 0, "a literal of \(bytes.count) bytes did not come back whole: \(String(describing: response))")
        }

        // 4. The bytes as a quoted string (\ and " escaped), when they hold no line break.
        if !bytes.contains(0x0A) && !bytes.contains(0x0D) {
            var quoted = ByteBuffer(string: "* 2 FETCH (INTERNALDATE \"")
            for b in bytes {
                if b == 0x22 || b == 0x5C { quoted.writeInteger(UInt8(0x5C)) }
                quoted.writeInteger(b)
            }
            quoted.writeString("\")\r\n")
            let response = try? IMAPResponseDecoder.decode(from: &quoted)
            require(response == .untagged(.fetch(sequence: 2, attributes: [IMAPFetchAttribute(name: "INTERNALDATE", value: .string(bytes))])),
                    "a quoted string did not come back whole: \(String(describing: response))")
        }

        names(bytes)
    }

    /// 5. Modified UTF-7: a name that decodes is in its one canonical form; any text
    ///    encodes to a name that decodes back to it. 6. UID sets expand within their bound.
    static func names(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        if let name = MailboxName.decode(text) {
            require(MailboxName.encode(name) == text, "\(text.debugDescription) decoded to \(name.debugDescription), which encodes otherwise")
        }
        if text.utf8.count <= MailboxName.maxEncodedBytes / 8 {
            let encoded = MailboxName.encode(text)
            require(MailboxName.decode(encoded) == text, "\(text.debugDescription) encoded to \(encoded.debugDescription), which does not decode back")
        }
        if let uids = IMAPUIDSet.expand(text, maxCount: 1_000) {
            require(uids.count <= 1_000 && uids.allSatisfy { $0 >= 1 && $0 <= UInt64(UInt32.max) }, "a UID set expanded out of bounds")
            require(IMAPUIDSet.string(uids).flatMap { IMAPUIDSet.expand($0, maxCount: 1_000) }.map(Set.init) == Set(uids),
                    "a UID set written back is another set")
        }
    }

    /// What the session and the Agent read of a response: codes, numbers, texts, lists.
    static func read(_ response: IMAPResponse) {
        switch response {
        case .tagged(_, _, let code, let text):
            _ = (code?.number, text.utf8.count)
        case .untagged(.status(_, let code, _)):
            _ = code.map { ($0.number, $0.values.map(walk)) }
        case .untagged(.fetch(_, let attributes)):
            _ = (attributes["UID"]?.number, attributes["INTERNALDATE"]?.text.flatMap(IMAPDate.parse))
            for a in attributes { walk(a.value) }
        case .untagged(.other(_, let values)):
            values.forEach(walk)
        case .untagged, .continuation:
            break
        }
    }

    static func walk(_ value: IMAPValue) {
        _ = (value.number, value.text, value.bytes)
        value.list?.forEach(walk)
    }
}

#endif
