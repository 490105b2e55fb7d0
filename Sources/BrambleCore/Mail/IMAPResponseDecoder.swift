import NIOCore

/// Why bytes from an IMAP server were refused. The decoder throws only this type.
public struct IMAPError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: Equatable, Sendable {
        /// Part of a response is larger than its bound (`what`: line, literal, response).
        case tooLarge(what: String, limit: Int)
        /// Lists nested deeper than the bound.
        case tooDeep(limit: Int)
        /// Not IMAP's grammar: what was expected, and the byte offset in the response.
        case syntax(expected: String, offset: Int)
    }
    public let code: Code
    public init(_ code: Code) { self.code = code }
    public var description: String {
        switch code {
        case .tooLarge(let what, let limit): "IMAP \(what) longer than \(limit) bytes"
        case .tooDeep(let limit): "IMAP lists nested deeper than \(limit)"
        case .syntax(let expected, let offset): "IMAP syntax: expected \(expected) at byte \(offset)"
        }
    }
}

/// Reads IMAP responses from bytes as a server sends them, literals included. Pure and
/// bounded: a response larger than `Limits` is refused with a typed error before it is
/// buffered whole, and nesting is limited, so a hostile server cannot exhaust the node.
public enum IMAPResponseDecoder {
    public struct Limits: Sendable, Equatable {
        /// Bytes of one line (between literals).
        public var maxLine = 1 << 20
        /// Bytes of one literal (a fetched body part: fetch large parts in ranges).
        public var maxLiteral = 16 << 20
        /// Bytes of one whole response.
        public var maxResponse = 32 << 20
        /// Nesting of lists (a BODYSTRUCTURE of nested multiparts).
        public var maxDepth = 32
        public init() {}
    }

    /// The next whole response at the front of `buffer`, consumed; nil (nothing consumed)
    /// when the buffer does not hold a whole response yet.
    public static func decode(from buffer: inout ByteBuffer, limits: Limits = .init()) throws(IMAPError) -> IMAPResponse? {
        var parser = IMAPParser(bytes: buffer.readableBytesView, limits: limits)
        do throws(IMAPParseStop) {
            let response = try parser.response()
            buffer.moveReaderIndex(forwardBy: parser.offset)
            return response
        } catch {
            switch error {
            case .incomplete(let needed):
                // Refused as soon as it is known not to fit, before it is all buffered.
                guard needed <= limits.maxResponse else { throw IMAPError(.tooLarge(what: "response", limit: limits.maxResponse)) }
                return nil
            case .refused(let error):
                throw error
            }
        }
    }
}

/// The parser's outcome when it stops early.
enum IMAPParseStop: Error {
    /// More bytes are needed; at least this many in all.
    case incomplete(needed: Int)
    case refused(IMAPError)
}

/// A cursor over one response's bytes.
struct IMAPParser {
    let bytes: ByteBufferView
    let limits: IMAPResponseDecoder.Limits
    /// Offset from the start of `bytes`.
    private(set) var offset = 0
    /// Where the current line (after the last literal) began.
    private var lineStart = 0

    init(bytes: ByteBufferView, limits: IMAPResponseDecoder.Limits) {
        self.bytes = bytes
        self.limits = limits
    }

    // MARK: Bytes

    private func peek(_ ahead: Int = 0) throws(IMAPParseStop) -> UInt8 {
        let i = offset + ahead
        guard i < bytes.count else {
            if i - lineStart > limits.maxLine { throw .refused(IMAPError(.tooLarge(what: "line", limit: limits.maxLine))) }
            throw .incomplete(needed: i + 1)
        }
        return bytes[bytes.startIndex + i]
    }

    private mutating func next() throws(IMAPParseStop) -> UInt8 {
        let b = try peek()
        offset += 1
        if offset - lineStart > limits.maxLine { throw .refused(IMAPError(.tooLarge(what: "line", limit: limits.maxLine))) }
        return b
    }

    private func fail(_ expected: String) -> IMAPParseStop { .refused(IMAPError(.syntax(expected: expected, offset: offset))) }

    private mutating func expect(_ byte: UInt8, _ what: String) throws(IMAPParseStop) {
        guard try next() == byte else { offset -= 1; throw fail(what) }
    }

    private mutating func skipSpaces() throws(IMAPParseStop) { while try peek() == 0x20 { offset += 1 } }

    private mutating func atEndOfLine() throws(IMAPParseStop) -> Bool {
        let b = try peek()
        return b == 0x0D || b == 0x0A
    }

    private mutating func endOfLine() throws(IMAPParseStop) {
        if try peek() == 0x0D { offset += 1 }
        try expect(0x0A, "end of line")
        lineStart = offset
    }

    /// The rest of the line as text (lossy UTF-8), CRLF consumed.
    private mutating func restOfLine() throws(IMAPParseStop) -> String {
        let start = offset
        while try !atEndOfLine() { offset += 1 }
        let text = String(decoding: bytes[(bytes.startIndex + start)..<(bytes.startIndex + offset)], as: UTF8.self)
        try endOfLine()
        return text
    }

    private static func isAtomByte(_ b: UInt8) -> Bool {
        b > 0x20 && b < 0x7F && b != 0x28 && b != 0x29 && b != 0x7B && b != 0x22 && b != 0x5D && b != 0x5B
    }

    private mutating func atom() throws(IMAPParseStop) -> String {
        let start = offset
        while Self.isAtomByte(try peek()) { offset += 1 }
        guard offset > start else { throw fail("an atom") }
        return String(decoding: bytes[(bytes.startIndex + start)..<(bytes.startIndex + offset)], as: UTF8.self)
    }

    private mutating func digits() throws(IMAPParseStop) -> UInt64 {
        var n: UInt64 = 0
        var count = 0
        while case let b = try peek(), b >= 0x30 && b <= 0x39 {
            let (m, overflow1) = n.multipliedReportingOverflow(by: 10)
            let (s, overflow2) = m.addingReportingOverflow(UInt64(b - 0x30))
            guard !overflow1 && !overflow2 else { throw fail("a number below 2^64") }
            n = s
            offset += 1
            count += 1
        }
        guard count > 0 else { throw fail("a number") }
        return n
    }

    // MARK: Responses

    mutating func response() throws(IMAPParseStop) -> IMAPResponse {
        switch try peek() {
        case 0x2B:  // +
            offset += 1
            if try peek() == 0x20 { offset += 1 }
            return .continuation(try restOfLine())
        case 0x2A:  // *
            offset += 1
            try expect(0x20, "a space after *")
            return .untagged(try untagged())
        default:
            let tag = try atom()
            try expect(0x20, "a space after the tag")
            let word = try atom().uppercased()
            guard let status = IMAPStatus(rawValue: word) else { throw fail("OK, NO or BAD") }
            let (code, text) = try responseText()
            return .tagged(tag: tag, status: status, code: code, text: text)
        }
    }

    private mutating func untagged() throws(IMAPParseStop) -> IMAPUntagged {
        if case let b = try peek(), b >= 0x30 && b <= 0x39 {
            let n = try digits()
            guard n <= UInt64(UInt32.max) else { throw fail("a message number") }
            try expect(0x20, "a space after the number")
            let keyword = try atom().uppercased()
            switch keyword {
            case "EXISTS": try endOfLine(); return .exists(UInt32(n))
            case "RECENT": try endOfLine(); return .recent(UInt32(n))
            case "EXPUNGE": try endOfLine(); return .expunge(UInt32(n))
            case "FETCH":
                try expect(0x20, "a space after FETCH")
                let attributes = try fetchAttributes()
                try endOfLine()
                return .fetch(sequence: UInt32(n), attributes: attributes)
            default:
                return .other(keyword: keyword, values: [.number(n)] + (try valuesToEndOfLine()))
            }
        }
        let keyword = try atom().uppercased()
        if let status = IMAPStatus(rawValue: keyword) {
            let (code, text) = try responseText()
            return .status(status, code: code, text: text)
        }
        switch keyword {
        case "CAPABILITY", "ENABLED":
            let words = try valuesToEndOfLine().compactMap(\.text)
            return keyword == "CAPABILITY" ? .capability(words) : .enabled(words)
        case "FLAGS":
            try skipSpaces()
            let flags = try value(depth: 0).list?.compactMap(\.text) ?? []
            try endOfLine()
            return .flags(flags)
        case "SEARCH":
            return .search(try valuesToEndOfLine().compactMap { $0.number.flatMap { UInt32(exactly: $0) } })
        case "STATUS":
            try skipSpaces()
            guard let mailbox = try value(depth: 0).text else { throw fail("a mailbox name") }
            try skipSpaces()
            let items = try value(depth: 0).list ?? []
            try endOfLine()
            var result: [String: UInt64] = [:]
            var i = 0
            while i + 1 < items.count {
                if let name = items[i].text?.uppercased(), let value = items[i + 1].number { result[name] = value }
                i += 2
            }
            return .mailboxStatus(mailbox: mailbox, items: result)
        case "VANISHED":
            var values = try valuesToEndOfLine()
            var earlier = false
            if case .list(let l)? = values.first, l.first?.text?.uppercased() == "EARLIER" {
                earlier = true
                values.removeFirst()
            }
            return .vanished(earlier: earlier, uids: values.compactMap(\.text).joined(separator: " "))
        case "LIST", "LSUB":
            let values = try valuesToEndOfLine()
            guard values.count >= 3, let attributes = values[0].list else { throw fail("LIST (attributes) delimiter name") }
            return .list(attributes: attributes.compactMap(\.text), delimiter: values[1].text, mailbox: values[2].text ?? "")
        default:
            return .other(keyword: keyword, values: try valuesToEndOfLine())
        }
    }

    /// `[CODE values] text` after a status word.
    private mutating func responseText() throws(IMAPParseStop) -> (IMAPResponseCode?, String) {
        if try atEndOfLine() { try endOfLine(); return (nil, "") }
        try skipSpaces()
        var code: IMAPResponseCode?
        if try peek() == 0x5B {  // [
            offset += 1
            let name = try atom().uppercased()
            var values: [IMAPValue] = []
            while try peek() != 0x5D {
                try skipSpaces()
                if try peek() == 0x5D { break }
                values.append(try value(depth: 1))
            }
            offset += 1
            code = IMAPResponseCode(name: name, values: values)
            if try peek() == 0x20 { offset += 1 }
        }
        return (code, try restOfLine())
    }

    private mutating func valuesToEndOfLine() throws(IMAPParseStop) -> [IMAPValue] {
        var values: [IMAPValue] = []
        while true {
            try skipSpaces()
            if try atEndOfLine() { break }
            values.append(try value(depth: 0))
        }
        try endOfLine()
        return values
    }

    /// `(NAME value NAME value …)` of a FETCH.
    private mutating func fetchAttributes() throws(IMAPParseStop) -> [IMAPFetchAttribute] {
        try expect(0x28, "( after FETCH")
        var attributes: [IMAPFetchAttribute] = []
        while true {
            try skipSpaces()
            if try peek() == 0x29 { offset += 1; return attributes }
            let name = try attributeName()
            try skipSpaces()
            attributes.append(IMAPFetchAttribute(name: name, value: try value(depth: 1)))
        }
    }

    /// `UID`, `FLAGS`, or a section: `BODY[HEADER.FIELDS (MESSAGE-ID)]<0>` kept whole.
    private mutating func attributeName() throws(IMAPParseStop) -> String {
        var name = try atom().uppercased()
        if try peek() == 0x5B {  // [section]: brackets may hold a list
            let start = offset
            var depth = 0
            repeat {
                let b = try next()
                if b == 0x5B || b == 0x28 { depth += 1 }
                if b == 0x5D || b == 0x29 { depth -= 1 }
                if b == 0x0D || b == 0x0A { throw fail("] ending a section") }
            } while depth > 0
            name += String(decoding: bytes[(bytes.startIndex + start)..<(bytes.startIndex + offset)], as: UTF8.self).uppercased()
            if try peek() == 0x3C {  // <origin>
                let originStart = offset
                while try next() != 0x3E {}
                name += String(decoding: bytes[(bytes.startIndex + originStart)..<(bytes.startIndex + offset)], as: UTF8.self)
            }
        }
        return name
    }

    private mutating func value(depth: Int) throws(IMAPParseStop) -> IMAPValue {
        switch try peek() {
        case 0x28:  // (
            guard depth < limits.maxDepth else { throw .refused(IMAPError(.tooDeep(limit: limits.maxDepth))) }
            offset += 1
            var items: [IMAPValue] = []
            while true {
                try skipSpaces()
                if try peek() == 0x29 { offset += 1; return .list(items) }
                if try atEndOfLine() { throw fail(") closing a list") }
                items.append(try value(depth: depth + 1))
            }
        case 0x22:  // "
            offset += 1
            var out: [UInt8] = []
            while true {
                let b = try next()
                if b == 0x22 { return .string(out) }
                if b == 0x0D || b == 0x0A { throw fail("\" closing a quoted string") }
                out.append(b == 0x5C ? try next() : b)
            }
        case 0x7B, 0x7E:  // {n} or ~{n}: a literal
            if try peek() == 0x7E { offset += 1 }
            try expect(0x7B, "{")
            let length = try digits()
            if try peek() == 0x2B { offset += 1 }  // LITERAL+ from a server is not expected, but harmless
            try expect(0x7D, "}")
            try endOfLine()
            guard length <= UInt64(limits.maxLiteral) else { throw .refused(IMAPError(.tooLarge(what: "literal", limit: limits.maxLiteral))) }
            let n = Int(length)
            guard offset + n <= bytes.count else { throw .incomplete(needed: offset + n) }
            let literal = Array(bytes[(bytes.startIndex + offset)..<(bytes.startIndex + offset + n)])
            offset += n
            lineStart = offset
            return .string(literal)
        case let b where b >= 0x30 && b <= 0x39:
            let start = offset
            let n = try digits()
            // "12:34" or "5,6" are sequence sets: atoms.
            if Self.isAtomByte(try peek()) { offset = start; return .atom(try atom()) }
            return .number(n)
        default:
            let word = try atom()
            if word.uppercased() == "NIL" { return .nil }
            return .atom(word)
        }
    }
}
