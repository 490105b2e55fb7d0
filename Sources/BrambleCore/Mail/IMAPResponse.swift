/// One response from an IMAP server (RFC 9051 §7), as `IMAPResponseDecoder` reads it:
/// tagged completion, untagged data or status, or a continuation request. Values keep
/// the grammar's shape (atoms, numbers, strings, NIL, lists); the Messaging Agent picks
/// what it needs from them.
public enum IMAPResponse: Equatable, Sendable {
    /// `TAG OK|NO|BAD [code] text`: a command finished.
    case tagged(tag: String, status: IMAPStatus, code: IMAPResponseCode?, text: String)
    /// `* …`
    case untagged(IMAPUntagged)
    /// `+ text`: the server waits for more of the command (a literal, AUTHENTICATE, IDLE).
    case continuation(String)
}

public enum IMAPStatus: String, Equatable, Sendable {
    case ok = "OK", no = "NO", bad = "BAD", bye = "BYE", preauth = "PREAUTH"
}

/// `[NAME values]` in a status response: `[UIDVALIDITY 3]`, `[UIDNEXT 17]`,
/// `[HIGHESTMODSEQ 9]`, `[CAPABILITY …]`, `[APPENDUID 3 17]`.
public struct IMAPResponseCode: Equatable, Sendable {
    public var name: String
    public var values: [IMAPValue]
    public init(name: String, values: [IMAPValue]) { (self.name, self.values) = (name, values) }

    /// The first value as a number (`UIDVALIDITY`, `UIDNEXT`, `HIGHESTMODSEQ`).
    public var number: UInt64? { values.first?.number }
}

public enum IMAPUntagged: Equatable, Sendable {
    case status(IMAPStatus, code: IMAPResponseCode?, text: String)
    case capability([String])
    case flags([String])
    /// `* N EXISTS`, `* N RECENT`, `* N EXPUNGE` (message sequence numbers).
    case exists(UInt32)
    case recent(UInt32)
    case expunge(UInt32)
    /// `* N FETCH (NAME value …)`, in the order the server sent them; names upper-cased,
    /// sections kept as sent (`BODY[HEADER.FIELDS (MESSAGE-ID)]`, `BODY[1]<0>`).
    case fetch(sequence: UInt32, attributes: [IMAPFetchAttribute])
    /// `* STATUS mailbox (NAME n …)`.
    case mailboxStatus(mailbox: String, items: [String: UInt64])
    /// `* SEARCH n n …`
    case search([UInt32])
    /// `* VANISHED [(EARLIER)] uid-set` (QRESYNC): the set as sent.
    case vanished(earlier: Bool, uids: String)
    /// `* ENABLED CAP …`
    case enabled([String])
    /// `* LIST (flags) delimiter name`
    case list(attributes: [String], delimiter: String?, mailbox: String)
    /// Anything else: its keyword and values.
    case other(keyword: String, values: [IMAPValue])
}

public struct IMAPFetchAttribute: Equatable, Sendable {
    public var name: String
    public var value: IMAPValue
    public init(name: String, value: IMAPValue) { (self.name, self.value) = (name, value) }
}

/// A value of the IMAP grammar.
public indirect enum IMAPValue: Equatable, Sendable {
    case atom(String)
    case number(UInt64)
    /// A quoted string or a literal: bytes, not necessarily UTF-8 (a message's raw text).
    case string([UInt8])
    case `nil`
    case list([IMAPValue])

    public var number: UInt64? {
        switch self {
        case .number(let n): n
        case .atom(let a): UInt64(a)
        case .string, .nil, .list: nil
        }
    }

    /// An atom's or a string's text (lossy for bytes that are not UTF-8); nil for NIL.
    public var text: String? {
        switch self {
        case .atom(let a): a
        case .string(let bytes): String(decoding: bytes, as: UTF8.self)
        case .number(let n): String(n)
        case .nil, .list: nil
        }
    }

    public var bytes: [UInt8]? { if case .string(let b) = self { b } else { nil } }
    public var list: [IMAPValue]? { if case .list(let l) = self { l } else { nil } }
}

extension Array where Element == IMAPFetchAttribute {
    /// The value of the attribute `name` (upper case), e.g. `UID`, `FLAGS`, `BODY[1]<0>`.
    public subscript(name: String) -> IMAPValue? { first { $0.name == name }?.value }
}
