/// Where in an SMTP submission a server refused: MAIL FROM, one recipient's RCPT TO, DATA
/// (before any of the message), or the reply to the final "." (the message was read).
public enum SubmissionStage: Sendable, Equatable {
    case mail
    case rcpt(String)
    case data
    case finalDot
}

/// What a submission's refusal means for the mail and for whoever reads the reason: a
/// 4xx (421 included) may succeed later; a 5xx will not, and says why in words an operator
/// and the device's user can act on. The server's text is made printable and bounded.
public enum SubmissionFailure {
    public enum Classified: Sendable, Equatable {
        /// 4xx: try again later (the reason names the stage and the server's reply).
        case temporary(String)
        /// 5xx: the mail cannot go as it is.
        case permanent(String)
    }

    /// The most characters of the server's text kept in a reason.
    public static let maxServerText = 200

    /// Classifies `reply`, the server's answer at `stage`, for a message of `size` bytes
    /// (as declared to SIZE) under the server's `limit` (EHLO SIZE; nil when it named none).
    /// - 552, or the enhanced code 5.3.4, at any stage: "message too large (N bytes; the
    ///   limit is M)", except a 552 at RCPT without 5.3.4, which RFC 5321 §4.5.3.1.10 says
    ///   is the old "too many recipients" and to treat as temporary.
    /// - RCPT 550, 551, 553: "unknown recipient <x>"; another RCPT 5xx: "recipient refused
    ///   <x> (CODE text)".
    /// - MAIL 5xx: "sender refused (CODE text)"; DATA or the final dot: "message refused
    ///   (CODE text)".
    /// - A code below 400 (not a refusal, yet given as one) is temporary.
    public static func classify(stage: SubmissionStage, reply: SMTPReply, limit: Int?, size: Int) -> Classified {
        let server = "\(reply.code) \(serverText(reply))"
        let tooLarge = reply.lines.contains { $0.hasPrefix("5.3.4") }
        guard reply.isPermanentFailure else {
            return .temporary("\(stageName(stage)) temporarily refused (\(server))")
        }
        if case .rcpt = stage, reply.code == 552, !tooLarge {
            return .temporary("\(stageName(stage)) temporarily refused: too many recipients (\(server))")
        }
        if reply.code == 552 || tooLarge {
            return .permanent("message too large (\(size) bytes" + (limit.map { "; the limit is \($0))" } ?? ")"))
        }
        switch stage {
        case .rcpt(let address) where [550, 551, 553].contains(reply.code):
            return .permanent("unknown recipient <\(printable(address))>")
        case .rcpt(let address):
            return .permanent("recipient refused <\(printable(address))> (\(server))")
        case .mail:
            return .permanent("sender refused (\(server))")
        case .data, .finalDot:
            return .permanent("message refused (\(server))")
        }
    }

    /// The reply's text, printable, at most `maxServerText` characters.
    static func serverText(_ reply: SMTPReply) -> String { printable(reply.text) }

    private static func printable(_ s: String) -> String {
        let text = MailText.printable(s)
        return text.count > maxServerText ? String(text.prefix(maxServerText - 1)) + "…" : text
    }

    private static func stageName(_ stage: SubmissionStage) -> String {
        switch stage {
        case .mail: "MAIL FROM"
        case .rcpt(let address): "RCPT TO <\(printable(address))>"
        case .data: "DATA"
        case .finalDot: "the message"
        }
    }
}
