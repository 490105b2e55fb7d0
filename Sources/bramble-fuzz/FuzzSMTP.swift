#if BRAMBLE_FUZZ
import BrambleCore
import NIOCore

/// `smtp`: the SMTP reply decoder (bytes from a mail server), whole and in two reads.
enum SMTPTarget {
    static let target = FuzzTarget(name: "smtp", covers: "SMTPReplyDecoder: replies, whole and in two reads", run: run)

    static func run(_ bytes: [UInt8]) {
        let (whole, split) = wholeAndSplit(bytes) { (b: inout ByteBuffer) throws(SMTPReplyDecoder.Failure) in
            try SMTPReplyDecoder.decode(from: &b)
        }
        require(whole == split, "two reads decoded differently from one: \(whole) vs \(split)")
        for reply in whole.messages {
            require((200...599).contains(reply.code), "reply code \(reply.code)")
            require((1...SMTPReplyDecoder.maxLines).contains(reply.lines.count), "\(reply.lines.count) lines")
            _ = (reply.isPositive, reply.isIntermediate, reply.isPermanentFailure, reply.text)
        }
    }
}

/// `notify`: the pair's NOTIFY payloads (text from PostgreSQL, written by the peer node).
enum NotifyTarget {
    static let target = FuzzTarget(name: "notify", covers: "OutboundNotification(payload:): parse, format, parse", run: run)

    static func run(_ bytes: [UInt8]) {
        // PostgreSQL hands the listener text; the input as UTF-8 and, lossily, as anything.
        for text in [String(validating: bytes, as: UTF8.self), bytes.lossyText].compactMap({ $0 }) {
            guard let n = try? OutboundNotification(payload: text) else { continue }
            require((try? OutboundNotification(payload: n.payload)) == n, "re-formatting changed the notification")
            for r in n.ranges ?? [] { require(r.first <= r.last, "a range from \(r.first) to \(r.last)") }
        }
    }
}

#endif
