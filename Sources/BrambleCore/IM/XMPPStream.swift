// XMPP's XML stream (RFC 6120 §4, §11): one long document, <stream:stream> open for the
// whole session, whose depth-1 elements are the stanzas. Read incrementally, from bytes a
// server sends in reads of any size, under limits, in XMPP's restricted XML.

/// An XML element as XMPP uses it: a qualified name as written, attributes in document
/// order (namespace declarations among them), and children.
///
/// Namespaces are not resolved: `xmlns` is the element's own `xmlns` attribute, not one it
/// inherits, and a prefix is only part of `name`. A `<body>` inside
/// `<message xmlns='jabber:client'>` has `xmlns` nil, as it was written.
public struct XMPPElement: Equatable, Sendable {
    /// The qualified name as written: "message", "stream:features".
    public var name: String
    /// In document order, `xmlns` and `xmlns:prefix` declarations included.
    public var attributes: [(name: String, value: String)]
    public var children: [XMPPNode]

    /// An element from its parts, as the parser makes them.
    public init(_ name: String, attributes: [(String, String)] = [], children: [XMPPNode] = []) {
        self.name = name
        self.attributes = attributes.map { (name: $0.0, value: $0.1) }
        self.children = children
    }

    /// The builder: always names `xmlns` (nil for none), which tells it from the other
    /// initializer. The attributes are `xmlns` (when not nil) then `attributes`; the
    /// children are `text` (when not nil nor empty) then `children`.
    ///
    ///     XMPPElement("message", xmlns: "jabber:client", attributes: [("to", jid), ("type", "chat")],
    ///                children: [XMPPElement("body", xmlns: nil, text: "hi")])
    public init(_ name: String, xmlns: String?, attributes: [(String, String)] = [], text: String? = nil, children: [XMPPElement] = []) {
        var nodes: [XMPPNode] = []
        if let text, !text.isEmpty { nodes.append(.text(text)) }
        nodes += children.map(XMPPNode.element)
        self.init(name, attributes: (xmlns.map { [("xmlns", $0)] } ?? []) + attributes, children: nodes)
    }

    public static func == (a: XMPPElement, b: XMPPElement) -> Bool {
        a.name == b.name && a.attributes.count == b.attributes.count
            && zip(a.attributes, b.attributes).allSatisfy { $0.name == $1.name && $0.value == $1.value }
            && a.children == b.children
    }

    /// The first attribute with that name (qualified, as written: "xml:lang").
    public subscript(attribute name: String) -> String? { attributes.first { $0.name == name }?.value }

    /// The element's own `xmlns` attribute (not inherited).
    public var xmlns: String? { self[attribute: "xmlns"] }

    /// The name after its prefix: "features" for "stream:features".
    public var localName: String {
        guard let colon = name.firstIndex(of: ":") else { return name }
        return String(name[name.index(after: colon)...])
    }

    /// The first element child with that local name and, unless `xmlns` is nil, that
    /// `xmlns` attribute of its own.
    public func child(_ localName: String, xmlns: String? = nil) -> XMPPElement? {
        for case .element(let e) in children where e.localName == localName && (xmlns == nil || e.xmlns == xmlns) { return e }
        return nil
    }

    /// Every element child with that local name (and `xmlns`, unless nil), in order.
    public func children(_ localName: String, xmlns: String? = nil) -> [XMPPElement] {
        elements.filter { $0.localName == localName && (xmlns == nil || $0.xmlns == xmlns) }
    }

    /// The element children, in order.
    public var elements: [XMPPElement] {
        children.compactMap { if case .element(let e) = $0 { e } else { nil } }
    }

    /// The direct text children, concatenated.
    public var text: String {
        children.reduce(into: "") { if case .text(let t) = $1 { $0 += t } }
    }

    /// The element as XML: attribute values quoted with ' and `& < > " '` (and tab, line
    /// feed, carriage return) escaped; text with `& < >` (and carriage return) escaped.
    /// Characters XML cannot carry (controls other than tab, LF and CR; U+FFFE, U+FFFF)
    /// become U+FFFD, so what is sent is always well-formed. Parsing the result gives the
    /// element back when its text children are non-empty and no two are adjacent (as the
    /// parser makes them) and its names are XML names.
    public func serialized() -> String {
        var out = ""
        serialize(into: &out)
        return out
    }

    /// The start tag alone, `<name attributes…>`: a stream's open tag.
    public func serializedOpenTag() -> String {
        var out = ""
        startTag(into: &out)
        out += ">"
        return out
    }

    private func startTag(into out: inout String) {
        out += "<"
        out += name
        for a in attributes {
            out += " "
            out += a.name
            out += "='"
            XMPPElement.escape(a.value, attribute: true, into: &out)
            out += "'"
        }
    }

    private func serialize(into out: inout String) {
        startTag(into: &out)
        guard !children.isEmpty else { out += "/>"; return }
        out += ">"
        for child in children {
            switch child {
            case .element(let e): e.serialize(into: &out)
            case .text(let t): XMPPElement.escape(t, attribute: false, into: &out)
            }
        }
        out += "</"
        out += name
        out += ">"
    }

    private static func escape(_ s: String, attribute: Bool, into out: inout String) {
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\r": out += "&#13;"
            case "\"" where attribute: out += "&quot;"
            case "'" where attribute: out += "&apos;"
            case "\t" where attribute: out += "&#9;"
            case "\n" where attribute: out += "&#10;"
            default: out.unicodeScalars.append(isXMLChar(c.value) ? c : "\u{FFFD}")
            }
        }
    }
}

/// A child of an element: an element, or text (entities decoded).
public enum XMPPNode: Equatable, Sendable {
    case element(XMPPElement)
    case text(String)
}

/// What the parser reads from a stream.
public enum XMPPStreamEvent: Equatable, Sendable {
    /// The `<stream:stream …>` open tag (no children): its id, from, version, namespaces.
    case opened(XMPPElement)
    /// A complete depth-1 element: a stanza, stream:features, stream:error, a SASL element…
    case stanza(XMPPElement)
    /// `</stream:stream>`.
    case closed
}

/// Why bytes of an XMPP stream were refused. The parser throws only this type.
public struct XMPPStreamError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Reason: Equatable, Sendable {
        /// A stanza (or the stream's header) longer than the limit, refused before it completed.
        case tooLarge(limit: Int)
        /// Elements nested deeper than the limit (the stanza is depth 1).
        case tooDeep(limit: Int)
        case tooManyAttributes(limit: Int)
        /// An element or attribute name longer than the limit.
        case nameTooLong(limit: Int)
        /// `<!-- … -->` (RFC 6120 §11.1: not allowed).
        case comment
        /// `<?…?>` other than one XML declaration before the stream's open tag.
        case processingInstruction
        /// `<!DOCTYPE …>` or another markup declaration.
        case doctype
        /// An entity reference other than the five predefined ones (its name, made printable).
        case undefinedEntity(String)
        /// A numeric character reference to no XML character (NUL, a surrogate, above U+10FFFF…).
        case invalidCharacterReference(String)
        /// A character XML does not allow, written as itself: a control character other
        /// than tab, line feed and carriage return, U+FFFE or U+FFFF (its code point).
        case invalidCharacter(UInt32)
        case invalidUTF8
        case mismatchedEndTag(expected: String, found: String)
        case duplicateAttribute(String)
        /// The first element is not a `stream` open tag in http://etherx.jabber.org/streams.
        case notAStream
        /// Text other than whitespace between stanzas.
        case textOutsideStanza
        /// Something other than whitespace after `</stream:stream>`.
        case afterClose
        /// Not XML's grammar: what was expected.
        case syntax(expected: String)
    }
    public let reason: Reason
    /// Bytes of the stream (since the parser was made or reset) before the one refused.
    public let offset: Int

    public init(_ reason: Reason, offset: Int) {
        self.reason = reason
        self.offset = offset
    }

    public var description: String {
        let what: String
        switch reason {
        case .tooLarge(let limit): what = "a stanza longer than \(limit) bytes"
        case .tooDeep(let limit): what = "elements nested deeper than \(limit)"
        case .tooManyAttributes(let limit): what = "more than \(limit) attributes on an element"
        case .nameTooLong(let limit): what = "a name longer than \(limit) bytes"
        case .comment: what = "a comment"
        case .processingInstruction: what = "a processing instruction"
        case .doctype: what = "a DOCTYPE or markup declaration"
        case .undefinedEntity(let name): what = "the undefined entity &\(Self.printable(name));"
        case .invalidCharacterReference(let ref): what = "a reference to no XML character, &\(Self.printable(ref));"
        case .invalidCharacter(let c): what = "the character U+\(String(c, radix: 16, uppercase: true)), which XML does not allow"
        case .invalidUTF8: what = "invalid UTF-8"
        case .mismatchedEndTag(let expected, let found): what = "</\(Self.printable(found))> where </\(Self.printable(expected))> was expected"
        case .duplicateAttribute(let name): what = "the attribute \(Self.printable(name)) twice"
        case .notAStream: what = "a first element other than <stream:stream>"
        case .textOutsideStanza: what = "text between stanzas"
        case .afterClose: what = "bytes after </stream:stream>"
        case .syntax(let expected): what = "bad XML, expected \(expected)"
        }
        return "XMPP stream: \(what) at byte \(offset)"
    }

    /// Text from the stream fit for a log line: no control characters, at most 64 characters.
    static func printable(_ s: String) -> String { MailText.printable(String(s.prefix(64))) }
}

/// Reads an XMPP stream incrementally: `feed` takes each read as it comes (split anywhere,
/// even inside a UTF-8 sequence, a tag or an entity) and returns what it completed.
///
/// RFC 6120 §11's restricted XML: an optional `<?xml …?>` declaration before the stream's
/// open tag; no comments, other processing instructions, DOCTYPE or entities other than
/// the five predefined ones (numeric character references to XML characters are read);
/// CDATA sections are read as text. Whitespace between stanzas (keepalives) is dropped.
/// Text has its line ends normalized (CR LF and CR to LF) and attribute values their
/// whitespace (tab, CR, LF to space), as XML requires.
///
/// Bounded: a stanza's bytes, its depth, each element's attributes and each name are held
/// to `Limits`, and a stanza is refused as soon as it outgrows them, before it completes.
/// Bytes are looked at once: the work is linear in the stream's length however it is cut.
/// After an error the parser stays failed (each `feed` throws it again) until `reset()`.
public struct XMPPStreamParser: Sendable {
    public struct Limits: Sendable, Equatable {
        /// Bytes of one stanza, as sent (and of the stream's header: declaration and open tag).
        public var maxStanzaBytes = 256 * 1024
        /// Nesting of elements in a stanza, the stanza itself being depth 1.
        public var maxDepth = 32
        /// Attributes of one element.
        public var maxAttributes = 64
        /// Bytes of one element or attribute name.
        public var maxNameBytes = 256

        public init() {}
        public init(maxStanzaBytes: Int, maxDepth: Int, maxAttributes: Int, maxNameBytes: Int) {
            (self.maxStanzaBytes, self.maxDepth, self.maxAttributes, self.maxNameBytes) = (maxStanzaBytes, maxDepth, maxAttributes, maxNameBytes)
        }
        public static let standard = Limits()
    }

    /// Where the stream is.
    private enum Phase: Sendable { case prolog, stream, closed }
    /// What the byte at hand is part of.
    private enum Lexeme: Sendable {
        /// Character data (or whitespace between stanzas, or in the prolog).
        case text
        /// The byte after `<`.
        case open
        /// A start or end tag, its bytes in `token`; `quote` is the quote of the attribute
        /// value we are in, or 0.
        case tag(quote: UInt8)
        /// After `<!`: must become `<![CDATA[`.
        case bang
        /// Inside a CDATA section, its bytes in `token`.
        case cdata
        /// After `<?`: the XML declaration, its bytes in `token`.
        case declaration
    }

    public let limits: Limits
    private var phase = Phase.prolog
    private var declarationSeen = false
    private var lexeme = Lexeme.text
    /// The bytes of the tag, CDATA section or declaration being read.
    private var token: [UInt8] = []
    /// The character data since the last markup, as sent.
    private var raw: [UInt8] = []
    /// Decoded text of the open element not yet made a node (character data and CDATA).
    private var text = ""
    /// The open elements of the stanza being read, the stanza first.
    private var stack: [XMPPElement] = []
    /// The stream's open tag's name ("stream:stream"), which its end tag must repeat.
    private var streamName = ""
    /// Bytes of the current stanza (or stream header) so far.
    private var unitBytes = 0
    /// Bytes of the stream read (since the parser was made or reset).
    public private(set) var offset = 0
    /// The error that ended the stream, if any.
    public private(set) var failure: XMPPStreamError?

    public init(limits: Limits = .standard) {
        self.limits = limits
    }

    /// Reads `bytes`, the next part of the stream; returns the events it completed.
    /// Events completed in this part before an error are lost with it: `feed(_:into:)`
    /// keeps them.
    public mutating func feed(_ bytes: some Collection<UInt8>) throws(XMPPStreamError) -> [XMPPStreamEvent] {
        var events: [XMPPStreamEvent] = []
        try feed(bytes, into: &events)
        return events
    }

    /// Reads `bytes`, appending each event to `events` as it completes; an error is thrown
    /// after the events that preceded it were appended.
    public mutating func feed(_ bytes: some Collection<UInt8>, into events: inout [XMPPStreamEvent]) throws(XMPPStreamError) {
        if let failure { throw failure }
        if bytes.withContiguousStorageIfAvailable({ read($0, into: &events) }) == nil {
            Array(bytes).withUnsafeBufferPointer { read($0, into: &events) }
        }
        if let failure { throw failure }
    }

    /// For a stream restart (after SASL success, RFC 6120 §6.4.6): forgets everything, a
    /// failure too; a new stream's open tag is expected, an XML declaration first or not.
    public mutating func reset() {
        self = XMPPStreamParser(limits: limits)
    }

    // MARK: Bytes

    private mutating func read(_ bytes: UnsafeBufferPointer<UInt8>, into events: inout [XMPPStreamEvent]) {
        do throws(XMPPStreamError) {
            for b in bytes {
                try step(b, &events)
                offset += 1
            }
        } catch {
            failure = error
        }
    }

    private func fail(_ reason: XMPPStreamError.Reason) -> XMPPStreamError { XMPPStreamError(reason, offset: offset) }

    private mutating func step(_ b: UInt8, _ events: inout [XMPPStreamEvent]) throws(XMPPStreamError) {
        // Between stanzas and after the end: whitespace only, neither kept nor counted.
        if case .text = lexeme, stack.isEmpty, phase != .prolog, b != ascii("<") || phase == .closed {
            guard isSpace(b) else { throw fail(phase == .closed ? .afterClose : .textOutsideStanza) }
            return
        }
        unitBytes += 1
        guard unitBytes <= limits.maxStanzaBytes else { throw fail(.tooLarge(limit: limits.maxStanzaBytes)) }

        switch lexeme {
        case .text:
            if b == ascii("<") {
                try endOfCharacterData()
                lexeme = .open
            } else if stack.isEmpty {
                // The prolog: whitespace before the declaration or the open tag.
                guard isSpace(b) else { throw fail(.syntax(expected: "the stream's open tag")) }
            } else {
                raw.append(b)
            }
        case .open:
            token.removeAll(keepingCapacity: true)
            switch b {
            case ascii("?"):
                guard phase == .prolog && !declarationSeen else { throw fail(.processingInstruction) }
                lexeme = .declaration
            case ascii("!"):
                lexeme = .bang
            default:
                lexeme = .tag(quote: 0)
                try tagByte(b, quote: 0, &events)
            }
        case .tag(let quote):
            try tagByte(b, quote: quote, &events)
        case .bang:
            token.append(b)
            guard Self.cdataOpen.starts(with: token) else { throw fail(token[0] == ascii("-") ? .comment : .doctype) }
            if token.count == Self.cdataOpen.count {
                guard !stack.isEmpty else { throw fail(.syntax(expected: "CDATA only inside a stanza")) }
                token.removeAll(keepingCapacity: true)
                lexeme = .cdata
            }
        case .cdata:
            token.append(b)
            let n = token.count
            if b == ascii(">") && n >= 3 && token[n - 2] == ascii("]") && token[n - 3] == ascii("]") {
                text += try decode(token[..<(n - 3)], attribute: false, references: false)
                lexeme = .text
            }
        case .declaration:
            token.append(b)
            let n = token.count
            // The target must be `xml` (`<?xml-stylesheet` and the like are other PIs).
            if n == 4 && !(token.starts(with: Self.xmlTarget) && isSpace(token[3])) { throw fail(.processingInstruction) }
            if b == ascii(">") && n >= 2 && token[n - 2] == ascii("?") {
                guard n >= 6 else { throw fail(.processingInstruction) }
                try declaration(token[3..<(n - 2)])
                lexeme = .text
            }
        }
    }

    private static let cdataOpen = Array("[CDATA[".utf8)
    private static let xmlTarget = Array("xml".utf8)
    private static let streamsNamespace = "http://etherx.jabber.org/streams"

    private mutating func tagByte(_ b: UInt8, quote: UInt8, _ events: inout [XMPPStreamEvent]) throws(XMPPStreamError) {
        if quote != 0 {
            if b == quote { lexeme = .tag(quote: 0) }
            token.append(b)
            return
        }
        switch b {
        case ascii(">"):
            lexeme = .text
            if token.first == ascii("/") { try endTag(&events) } else { try startTag(&events) }
        case ascii("\""), ascii("'"):
            lexeme = .tag(quote: b)
            token.append(b)
        case ascii("<"):
            throw fail(.syntax(expected: "'>' ending the tag"))
        default:
            token.append(b)
        }
    }

    /// At `<`: the character data before it becomes text of the open element.
    private mutating func endOfCharacterData() throws(XMPPStreamError) {
        guard !raw.isEmpty else { return }
        text += try decode(raw[...], attribute: false, references: true)
        raw.removeAll(keepingCapacity: true)
    }

    /// Before a tag: the open element's pending text becomes its child.
    private mutating func flushText() {
        guard !text.isEmpty, !stack.isEmpty else { return }
        stack[stack.count - 1].children.append(.text(text))
        text = ""
    }

    // MARK: Markup

    private mutating func startTag(_ events: inout [XMPPStreamEvent]) throws(XMPPStreamError) {
        var i = 0
        let name = try readName(&i)
        var selfClosing = false
        var element = XMPPElement(name)
        element.attributes = try readAttributes(&i, selfClosing: &selfClosing)
        switch phase {
        case .prolog:
            let prefix = name.firstIndex(of: ":").map { String(name[..<$0]) }
            let declared = element[attribute: prefix.map { "xmlns:" + $0 } ?? "xmlns"]
            guard !selfClosing, element.localName == "stream", declared == Self.streamsNamespace else { throw fail(.notAStream) }
            streamName = name
            phase = .stream
            unitBytes = 0
            events.append(.opened(element))
        case .stream:
            flushText()
            guard stack.count < limits.maxDepth else { throw fail(.tooDeep(limit: limits.maxDepth)) }
            if selfClosing { close(element, &events) } else { stack.append(element) }
        case .closed:
            throw fail(.afterClose)
        }
    }

    private mutating func endTag(_ events: inout [XMPPStreamEvent]) throws(XMPPStreamError) {
        var i = 1
        let name = try readName(&i)
        _ = skipSpaces(&i)
        guard i == token.count else { throw fail(.syntax(expected: "'>' after the end tag's name")) }
        guard phase == .stream else { throw fail(.syntax(expected: "the stream's open tag")) }
        flushText()
        if let open = stack.popLast() {
            guard open.name == name else { throw fail(.mismatchedEndTag(expected: open.name, found: name)) }
            close(open, &events)
        } else {
            guard name == streamName else { throw fail(.mismatchedEndTag(expected: streamName, found: name)) }
            phase = .closed
            unitBytes = 0
            events.append(.closed)
        }
    }

    /// A complete element: a child of the open one, or a stanza.
    private mutating func close(_ element: XMPPElement, _ events: inout [XMPPStreamEvent]) {
        if stack.isEmpty {
            events.append(.stanza(element))
            unitBytes = 0
        } else {
            stack[stack.count - 1].children.append(.element(element))
        }
    }

    /// `<?xml version='1.x' encoding='UTF-8'?>`, its pseudo-attributes.
    private mutating func declaration(_ bytes: ArraySlice<UInt8>) throws(XMPPStreamError) {
        // Read as a tag's attributes: the same grammar.
        token = Array(bytes)
        var i = 0
        var selfClosing = false
        let attributes = try readAttributes(&i, selfClosing: &selfClosing)
        let version = attributes.first { $0.name == "version" }?.value
        let encoding = attributes.first { $0.name == "encoding" }?.value.lowercased()
        guard !selfClosing, version?.hasPrefix("1.") == true, encoding == nil || encoding == "utf-8" else {
            throw fail(.syntax(expected: "an XML 1.x declaration in UTF-8"))
        }
        declarationSeen = true
    }

    // MARK: Tags

    /// A qualified name at `i` in `token`: an NCName, or two joined by one colon.
    private func readName(_ i: inout Int) throws(XMPPStreamError) -> String {
        let start = i
        guard i < token.count, isNameStart(token[i]) else { throw fail(.syntax(expected: "a name")) }
        var colons = 0
        while i < token.count, isNameByte(token[i]) {
            if token[i] == ascii(":") { colons += 1 }
            i += 1
        }
        guard i - start <= limits.maxNameBytes else { throw fail(.nameTooLong(limit: limits.maxNameBytes)) }
        guard colons == 0 || (colons == 1 && token[i - 1] != ascii(":")) else { throw fail(.syntax(expected: "a name with at most one colon, inside it")) }
        guard let name = String(validating: token[start..<i], as: UTF8.self) else { throw fail(.invalidUTF8) }
        return name
    }

    /// The attributes from `i` to the end of `token` (a `/` last makes `selfClosing`).
    private func readAttributes(_ i: inout Int, selfClosing: inout Bool) throws(XMPPStreamError) -> [(name: String, value: String)] {
        var attributes: [(name: String, value: String)] = []
        while true {
            let spaced = skipSpaces(&i)
            if i == token.count { break }
            if token[i] == ascii("/") && i == token.count - 1 {
                selfClosing = true
                break
            }
            guard spaced else { throw fail(.syntax(expected: "whitespace before an attribute")) }
            guard attributes.count < limits.maxAttributes else { throw fail(.tooManyAttributes(limit: limits.maxAttributes)) }
            let name = try readName(&i)
            _ = skipSpaces(&i)
            guard i < token.count, token[i] == ascii("=") else { throw fail(.syntax(expected: "'=' after an attribute's name")) }
            i += 1
            _ = skipSpaces(&i)
            guard i < token.count, token[i] == ascii("'") || token[i] == ascii("\"") else { throw fail(.syntax(expected: "a quoted attribute value")) }
            let quote = token[i]
            i += 1
            let start = i
            while i < token.count && token[i] != quote { i += 1 }
            guard i < token.count else { throw fail(.syntax(expected: "the attribute value's closing quote")) }
            let value = try decode(token[start..<i], attribute: true, references: true)
            i += 1
            guard !attributes.contains(where: { $0.name == name }) else { throw fail(.duplicateAttribute(name)) }
            attributes.append((name: name, value: value))
        }
        return attributes
    }

    /// Skips whitespace in `token`; whether there was any.
    private func skipSpaces(_ i: inout Int) -> Bool {
        let start = i
        while i < token.count && isSpace(token[i]) { i += 1 }
        return i > start
    }

    // MARK: Character data

    /// Character data or an attribute value as text: UTF-8 checked, line ends normalized
    /// (and in an attribute, whitespace to spaces), references (unless in CDATA) decoded.
    private func decode(_ bytes: ArraySlice<UInt8>, attribute: Bool, references: Bool) throws(XMPPStreamError) -> String {
        var plain = true
        // 0xEF may start U+FFFE or U+FFFF.
        for b in bytes where b < 0x20 || b == ascii("&") || b == ascii("<") || b == 0xEF {
            plain = false
            break
        }
        var out: [UInt8] = []
        if !plain {
            out.reserveCapacity(bytes.count)
            var i = bytes.startIndex
            while i < bytes.endIndex {
                let b = bytes[i]
                i += 1
                switch b {
                case ascii("&") where references:
                    i = try reference(bytes, from: i, into: &out)
                case ascii("<") where attribute:
                    throw fail(.syntax(expected: "'<' written &lt; in an attribute value"))
                case ascii("\r"):
                    out.append(attribute ? ascii(" ") : ascii("\n"))
                    if i < bytes.endIndex && bytes[i] == ascii("\n") { i += 1 }
                case ascii("\t"), ascii("\n"):
                    out.append(attribute ? ascii(" ") : b)
                case 0..<0x20:
                    throw fail(.invalidCharacter(UInt32(b)))
                case 0xEF where bytes[i...].starts(with: [0xBF, 0xBE]) || bytes[i...].starts(with: [0xBF, 0xBF]):
                    throw fail(.invalidCharacter(bytes[i + 1] == 0xBE ? 0xFFFE : 0xFFFF))
                default:
                    out.append(b)
                }
            }
        }
        let decoded = plain ? String(validating: bytes, as: UTF8.self) : String(validating: out, as: UTF8.self)
        guard let decoded else { throw fail(.invalidUTF8) }
        return decoded
    }

    /// The reference after a `&` at `i` (up to its `;`), its character appended to `out`;
    /// returns the index after the `;`.
    private func reference(_ bytes: ArraySlice<UInt8>, from i: Int, into out: inout [UInt8]) throws(XMPPStreamError) -> Int {
        // The longest one worth reading: "#x" and eight hex digits.
        let end = min(bytes.endIndex, i + 12)
        guard let semicolon = bytes[i..<end].firstIndex(of: ascii(";")) else {
            throw fail(.syntax(expected: "a reference ending with ';' after '&'"))
        }
        let ref = bytes[i..<semicolon]
        let name = String(decoding: ref, as: UTF8.self)
        switch name {
        case "lt": out.append(ascii("<"))
        case "gt": out.append(ascii(">"))
        case "amp": out.append(ascii("&"))
        case "quot": out.append(ascii("\""))
        case "apos": out.append(ascii("'"))
        default:
            guard ref.first == ascii("#") else { throw fail(.undefinedEntity(XMPPStreamError.printable(name))) }
            let hex = ref.dropFirst().first == ascii("x")
            let digits = ref.dropFirst(hex ? 2 : 1)
            var value: UInt32 = 0
            for d in digits {
                guard let v = hexValue(d), hex || v < 10, value <= 0x10FFFF else { value = .max; break }
                value = value * (hex ? 16 : 10) + UInt32(v)
            }
            guard !digits.isEmpty, isXMLChar(value), let scalar = Unicode.Scalar(value) else {
                throw fail(.invalidCharacterReference(XMPPStreamError.printable(name)))
            }
            out.append(contentsOf: String(Character(scalar)).utf8)
        }
        return semicolon + 1
    }
}

// MARK: Byte classes

private func ascii(_ c: Unicode.Scalar) -> UInt8 { UInt8(c.value) }

private func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }

/// A name's first byte: a letter, `_`, or any non-ASCII (checked as UTF-8 later).
private func isNameStart(_ b: UInt8) -> Bool {
    (b >= ascii("a") && b <= ascii("z")) || (b >= ascii("A") && b <= ascii("Z")) || b == ascii("_") || b >= 0x80
}

private func isNameByte(_ b: UInt8) -> Bool {
    isNameStart(b) || (b >= ascii("0") && b <= ascii("9")) || b == ascii("-") || b == ascii(".") || b == ascii(":")
}

private func hexValue(_ b: UInt8) -> UInt8? {
    switch b {
    case ascii("0")...ascii("9"): b - ascii("0")
    case ascii("a")...ascii("f"): b - ascii("a") + 10
    case ascii("A")...ascii("F"): b - ascii("A") + 10
    default: nil
    }
}

/// XML 1.0's Char: tab, LF, CR, and U+0020 up, less surrogates, U+FFFE and U+FFFF.
private func isXMLChar(_ v: UInt32) -> Bool {
    v == 0x9 || v == 0xA || v == 0xD || (0x20...0xD7FF).contains(v) || (0xE000...0xFFFD).contains(v) || (0x10000...0x10FFFF).contains(v)
}
