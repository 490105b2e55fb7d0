import Testing

@testable import BrambleCore

/// The XMPP stream parser on what Prosody 0.12 sends, cut at every byte, and on hostile input.
@Suite struct XMPPStreamTests {
    static let streamHeader = """
        <?xml version='1.0'?><stream:stream xmlns='jabber:client' xml:lang='en' \
        xmlns:stream='http://etherx.jabber.org/streams' id='7c1f5e2a-6a51-4f1e-9e0b-2c3d4e5f6a7b' \
        from='example.test' version='1.0'>
        """

    /// A login as Prosody sends it: header, features with SASL mechanisms, a SASL
    /// challenge, a chat message with a stanza-id, a whitespace keepalive, the end.
    static let prosody = streamHeader + """
        <stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\
        <mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism>\
        <mechanism>PLAIN</mechanism></mechanisms></stream:features>
        <challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>cj1meWtvK2QybGJiRmdPTlJ2OXFreGRhd0wzcmZjTkhZSlkxWlZ2V1ZzN2oscz1RU1hDUitRNnNlazhiZjkyLGk9NDA5Ng==</challenge>\
        <message xmlns='jabber:client' type='chat' to='alice@example.test/bramble' from="bob@example.test/phone" id='m-1'>\
        <body>Hi &amp; welcome &lt;3 — «ça va?»</body>\
        <stanza-id xmlns='urn:xmpp:sid:0' by='alice@example.test' id='2f7fe6c4-1c35-4c8b-b3e4-5a7c9c0d1e2f'/>\
        <active xmlns='http://jabber.org/protocol/chatstates'/></message>  \n \t</stream:stream>
        """

    func parse(_ text: String, limits: XMPPStreamParser.Limits = .standard) throws(XMPPStreamError) -> [XMPPStreamEvent] {
        var parser = XMPPStreamParser(limits: limits)
        return try parser.feed(Array(text.utf8))
    }

    /// The error `bytes` end with, fed whole.
    func failure(_ bytes: [UInt8], limits: XMPPStreamParser.Limits = .standard) -> XMPPStreamError.Reason? {
        var parser = XMPPStreamParser(limits: limits)
        do throws(XMPPStreamError) {
            _ = try parser.feed(bytes)
            return nil
        } catch {
            return error.reason
        }
    }

    func failure(_ text: String, limits: XMPPStreamParser.Limits = .standard) -> XMPPStreamError.Reason? {
        failure(Array(text.utf8), limits: limits)
    }

    /// `stanza` inside a stream header.
    func inStream(_ stanza: String) -> String { Self.streamHeader + stanza }

    @Test func aProsodyLoginParsesToItsEvents() throws {
        let events = try parse(Self.prosody)
        #expect(events.count == 5)
        guard case .opened(let open) = events[0] else { Issue.record("\(events[0])"); return }
        #expect(open.name == "stream:stream" && open.localName == "stream" && open.children.isEmpty)
        #expect(open.xmlns == "jabber:client" && open[attribute: "xml:lang"] == "en" && open[attribute: "version"] == "1.0")
        #expect(open[attribute: "id"] == "7c1f5e2a-6a51-4f1e-9e0b-2c3d4e5f6a7b")

        guard case .stanza(let features) = events[1] else { Issue.record("\(events[1])"); return }
        #expect(features.name == "stream:features" && features.localName == "features" && features.xmlns == nil)
        let mechanisms = try #require(features.child("mechanisms", xmlns: "urn:ietf:params:xml:ns:xmpp-sasl"))
        #expect(mechanisms.children("mechanism").map(\.text) == ["SCRAM-SHA-1", "PLAIN"])
        #expect(features.child("mechanisms", xmlns: "jabber:client") == nil)
        #expect(features.child("starttls") != nil && features.elements.count == 2)

        guard case .stanza(let challenge) = events[2] else { Issue.record("\(events[2])"); return }
        #expect(challenge.localName == "challenge" && challenge.text.hasPrefix("cj1meWtv") && challenge.text.hasSuffix("=="))

        guard case .stanza(let message) = events[3] else { Issue.record("\(events[3])"); return }
        #expect(message.attributes.map(\.name) == ["xmlns", "type", "to", "from", "id"])
        #expect(message[attribute: "from"] == "bob@example.test/phone" && message[attribute: "type"] == "chat")
        #expect(message.child("body")?.text == "Hi & welcome <3 — «ça va?»")
        let stanzaID = try #require(message.child("stanza-id", xmlns: "urn:xmpp:sid:0"))
        #expect(stanzaID[attribute: "id"] == "2f7fe6c4-1c35-4c8b-b3e4-5a7c9c0d1e2f" && stanzaID[attribute: "by"] == "alice@example.test")
        #expect(message.elements.map(\.localName) == ["body", "stanza-id", "active"])

        #expect(events[4] == .closed)
    }

    @Test func feedingByteByByteOrCutAnywhereGivesTheSameEvents() throws {
        let bytes = Array(Self.prosody.utf8)
        let whole = try parse(Self.prosody)
        var parser = XMPPStreamParser()
        var oneByOne: [XMPPStreamEvent] = []
        for b in bytes { oneByOne += try parser.feed([b]) }
        #expect(oneByOne == whole)
        for cut in 1..<bytes.count {
            var p = XMPPStreamParser()
            let events = try p.feed(bytes[..<cut]) + p.feed(bytes[cut...])
            #expect(events == whole, "cut at \(cut)")
        }
    }

    @Test func whitespaceKeepalivesBetweenStanzasAreDroppedButTextIsNot() throws {
        let events = try parse(inStream(" \n <presence/> \t\r\n <presence/>   "))
        #expect(Array(events.dropFirst()) == [.stanza(XMPPElement("presence")), .stanza(XMPPElement("presence"))])
        #expect(failure(inStream("<presence/>hello")) == .textOutsideStanza)
        #expect(failure(inStream("<presence/></stream:stream> x")) == .afterClose)
        #expect(failure(inStream("</stream:stream><presence/>")) == .afterClose)
        // Whitespace inside a stanza is its text.
        let stanza = try parse(inStream("<message> <body>a\r\nb\rc</body> </message>")).last
        #expect(stanza == .stanza(XMPPElement("message", children: [.text(" "), .element(XMPPElement("body", children: [.text("a\nb\nc")])), .text(" ")])))
    }

    @Test func entitiesAndCharacterReferencesAreDecoded() throws {
        let events = try parse(inStream("<m a='&lt;&amp;&#x41;&#66;&quot;&apos;&gt; \"x\"' b=\"it's\tok\n\">&#x1F600;&#233; &lt;b&gt; &#x0000041;<![CDATA[<raw> & ]] ]]>!</m>"))
        guard case .stanza(let m) = events.last else { Issue.record("\(events)"); return }
        #expect(m[attribute: "a"] == "<&AB\"'> \"x\"")
        #expect(m[attribute: "b"] == "it's ok ", "attribute whitespace normalized to spaces")
        #expect(m.children == [.text("😀é <b> A<raw> & ]] !")], "CDATA joins the text around it")
        #expect(try parse(inStream("<m>&#13;&#9;&#10;</m>")).last == .stanza(XMPPElement("m", children: [.text("\r\t\n")])))
    }

    @Test func invalidCharacterReferencesAndUndefinedEntitiesAreRefused() throws {
        for ref in ["#0", "#x0", "#xD800", "#xDFFF", "#x110000", "#1", "#x1F", "#xFFFE", "#xFFFF", "#", "#x", "#12a", "#X41", "#9999999999"] {
            #expect(failure(inStream("<m>&\(ref);</m>")) == .invalidCharacterReference(ref), "&\(ref);")
        }
        #expect(failure(inStream("<m>&nbsp;</m>")) == .undefinedEntity("nbsp"))
        #expect(failure(inStream("<m a='&eacute;'/>")) == .undefinedEntity("eacute"))
        #expect(failure(inStream("<m>fish & chips</m>")) == .syntax(expected: "a reference ending with ';' after '&'"))
        #expect(failure(inStream("<m>&ampamp</m>")) == .syntax(expected: "a reference ending with ';' after '&'"))
        #expect(failure(inStream("<m a='a<b'/>")) == .syntax(expected: "'<' written &lt; in an attribute value"))
        #expect(failure(inStream("<m>a\u{1}b</m>")) == .invalidCharacter(1))
        #expect(failure(inStream("<m a='\u{1F}'/>")) == .invalidCharacter(0x1F))
        #expect(failure(inStream("<m>\u{FFFE}</m>")) == .invalidCharacter(0xFFFE))
        #expect(failure(inStream("<m><![CDATA[\u{FFFF}]]></m>")) == .invalidCharacter(0xFFFF))
        #expect(try parse(inStream("<m a='\u{FFFD}'>\u{FF21}\u{EFFF}</m>")).count == 2, "other characters of 0xEF… are fine")
    }

    @Test func commentsProcessingInstructionsAndDoctypesAreRefused() {
        #expect(failure("<!-- hello --><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>") == .comment)
        #expect(failure(inStream("<message><!-- x --></message>")) == .comment)
        #expect(failure(inStream("<!-- between stanzas -->")) == .comment)
        #expect(failure("<?xml version='1.0'?><!DOCTYPE stream:stream [<!ENTITY x 'y'>]><stream:stream>") == .doctype)
        #expect(failure(inStream("<m><!ENTITY x 'y'></m>")) == .doctype)
        #expect(failure(inStream("<?xml version='1.0'?>")) == .processingInstruction, "a declaration after the prolog")
        #expect(failure(inStream("<m><?php echo 1?></m>")) == .processingInstruction)
        #expect(failure("<?xml-stylesheet href='a'?><stream:stream>") == .processingInstruction)
        #expect(failure("<?xml version='1.0'?><?xml version='1.0'?><stream:stream>") == .processingInstruction, "one declaration")
        #expect(failure("<?xml version='1.0' encoding='ISO-8859-1'?>") == .syntax(expected: "an XML 1.x declaration in UTF-8"))
        #expect(failure("<?xml encoding='UTF-8'?>") == .syntax(expected: "an XML 1.x declaration in UTF-8"))
        #expect(failure(inStream("<![CDATA[x]]>")) == .syntax(expected: "CDATA only inside a stanza"))
    }

    @Test func badUTF8IsRefusedWhereverItIs() {
        let head = Array(Self.streamHeader.utf8)
        for bad: [UInt8] in [[0xC3, 0x28], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xFF], [0xE2, 0x82]] {
            #expect(failure(head + Array("<m>a".utf8) + bad + Array("</m>".utf8)) == .invalidUTF8, "text \(bad)")
            #expect(failure(head + Array("<m a='".utf8) + bad + Array("'/>".utf8)) == .invalidUTF8, "attribute \(bad)")
            #expect(failure(head + Array("<m".utf8) + bad + Array("/>".utf8)) == .invalidUTF8, "name \(bad)")
        }
        // A sequence cut between two reads is fine.
        var parser = XMPPStreamParser()
        let bytes = head + Array("<m>é</m>".utf8)
        let cut = bytes.count - 5
        #expect(throws: Never.self) {
            let events = try parser.feed(bytes[..<cut]) + parser.feed(bytes[cut...])
            #expect(events.last == .stanza(XMPPElement("m", children: [.text("é")])))
        }
    }

    @Test func tagsMustNestAndBeWellFormed() {
        #expect(failure(inStream("<a><b></a>")) == .mismatchedEndTag(expected: "b", found: "a"))
        #expect(failure(inStream("</stream:streams>")) == .mismatchedEndTag(expected: "stream:stream", found: "stream:streams"))
        #expect(failure(inStream("<a x='1' x='2'/>")) == .duplicateAttribute("x"))
        #expect(failure(inStream("<a x='1'y='2'/>")) == .syntax(expected: "whitespace before an attribute"))
        #expect(failure(inStream("<a x=1/>")) == .syntax(expected: "a quoted attribute value"))
        #expect(failure(inStream("<a / >")) == .syntax(expected: "a name"))
        #expect(failure(inStream("<a:b:c/>")) == .syntax(expected: "a name with at most one colon, inside it"))
        #expect(failure(inStream("<1a/>")) == .syntax(expected: "a name"))
        #expect(failure(inStream("<a <b/>")) == .syntax(expected: "'>' ending the tag"))
        #expect(failure("<message/>") == .notAStream)
        #expect(failure("<stream:stream xmlns:stream='jabber:client'>") == .notAStream)
        #expect(failure("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/>") == .notAStream)
        #expect(failure("hello") == .syntax(expected: "the stream's open tag"))
    }

    @Test func everyLimitIsEnforced() throws {
        let limits = XMPPStreamParser.Limits.standard
        #expect(limits.maxStanzaBytes == 256 * 1024 && limits.maxDepth == 32 && limits.maxAttributes == 64 && limits.maxNameBytes == 256)

        let nested = { (n: Int) in String(repeating: "<a>", count: n) + String(repeating: "</a>", count: n) }
        #expect(try parse(inStream(nested(32))).count == 2)
        #expect(failure(inStream(nested(33))) == .tooDeep(limit: 32))

        let attributes = { (n: Int) in "<a " + (0..<n).map { "a\($0)='\($0)'" }.joined(separator: " ") + "/>" }
        #expect(try parse(inStream(attributes(64))).count == 2)
        #expect(failure(inStream(attributes(65))) == .tooManyAttributes(limit: 64))

        let long = String(repeating: "n", count: 256)
        #expect(try parse(inStream("<\(long) \(long)='x'/>")).count == 2)
        #expect(failure(inStream("<\(long)x/>")) == .nameTooLong(limit: 256))
        #expect(failure(inStream("<a \(long)x='1'/>")) == .nameTooLong(limit: 256))

        // A stanza of exactly the limit passes; whitespace between stanzas does not count.
        let small = XMPPStreamParser.Limits(maxStanzaBytes: 64, maxDepth: 4, maxAttributes: 2, maxNameBytes: 16)
        let header = "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"
        let exact = "<m>" + String(repeating: "x", count: 64 - 7) + "</m>"
        #expect(try parse(header + exact + String(repeating: " ", count: 1000) + exact, limits: small).count == 3)
        #expect(failure(header + "<m>" + String(repeating: "x", count: 64 - 6) + "</m>", limits: small) == .tooLarge(limit: 64))
        #expect(failure(String(repeating: " ", count: 65) + header, limits: small) == .tooLarge(limit: 64), "the header too")
    }

    @Test func anOversizedStanzaIsRefusedBeforeItCompletes() {
        var parser = XMPPStreamParser()
        #expect(throws: Never.self) { _ = try parser.feed(Array(Self.streamHeader.utf8)) }
        let chunk = [UInt8](repeating: 0x61, count: 1024)
        var refusedAt: Int?
        do throws(XMPPStreamError) {
            _ = try parser.feed(Array("<message><body>".utf8))
            for i in 0..<1000 {
                refusedAt = i
                _ = try parser.feed(chunk)
            }
            refusedAt = nil
        } catch {
            #expect(error.reason == .tooLarge(limit: 256 * 1024))
            #expect(error.offset == Self.streamHeader.utf8.count + 256 * 1024)
        }
        #expect(refusedAt == 255, "refused in the read that crossed the limit")
        // And stays failed.
        #expect(throws: XMPPStreamError(.tooLarge(limit: 256 * 1024), offset: Self.streamHeader.utf8.count + 256 * 1024)) {
            _ = try parser.feed(Array("</body></message>".utf8))
        }
        #expect(parser.failure?.reason == .tooLarge(limit: 256 * 1024))
    }

    @Test func eventsBeforeAnErrorAreKeptByFeedInto() {
        var parser = XMPPStreamParser()
        var events: [XMPPStreamEvent] = []
        #expect(throws: XMPPStreamError.self) {
            try parser.feed(Array(inStream("<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>junk").utf8), into: &events)
        }
        #expect(events.count == 2 && events.last.map { if case .stanza(let e) = $0 { e.localName == "error" } else { false } } == true)
    }

    @Test func afterResetANewStreamParses() throws {
        var parser = XMPPStreamParser()
        var events = try parser.feed(Array(inStream("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>").utf8))
        #expect(events.count == 2)
        #expect(throws: XMPPStreamError.self) { _ = try parser.feed(Array("<?xml version='1.0'?>".utf8)) }
        parser = XMPPStreamParser()
        events = try parser.feed(Array(inStream("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>").utf8))
        parser.reset()
        events = try parser.feed(Array(Self.streamHeader.utf8) + Array("<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><required/></bind></stream:features>".utf8))
        #expect(events.count == 2)
        guard case .stanza(let features) = events.last else { Issue.record("\(events)"); return }
        #expect(features.child("bind", xmlns: "urn:ietf:params:xml:ns:xmpp-bind")?.child("required") != nil)
        // reset also forgets a failure; no declaration is needed.
        _ = try? parser.feed(Array("<!-- -->".utf8))
        #expect(parser.failure != nil)
        parser.reset()
        #expect(try parser.feed(Array("<stream xmlns='http://etherx.jabber.org/streams'>".utf8)).count == 1)
    }

    @Test func serializationEscapesAndRoundTrips() throws {
        let body = XMPPElement("body", xmlns: nil, text: "a < b && c > d \"q\" 'a'\r\n\ttab 😀")
        let message = XMPPElement(
            "message", xmlns: "jabber:client", attributes: [("to", "a&b@example.test"), ("id", "x'\"<>\t\n\r y")],
            children: [body, XMPPElement("stanza-id", xmlns: "urn:xmpp:sid:0", attributes: [("id", "1")])])
        #expect(message.xmlns == "jabber:client" && message.attributes.map(\.name) == ["xmlns", "to", "id"])
        #expect(body.serialized() == "<body>a &lt; b &amp;&amp; c &gt; d \"q\" 'a'&#13;\n\ttab 😀</body>")
        #expect(message.serialized().hasPrefix("<message xmlns='jabber:client' to='a&amp;b@example.test' id='x&apos;&quot;&lt;&gt;&#9;&#10;&#13; y'>"))
        #expect(XMPPElement("x", xmlns: nil).serialized() == "<x/>")
        #expect(XMPPElement("x", xmlns: nil, text: "a\u{0}b\u{FFFF}").serialized() == "<x>a\u{FFFD}b\u{FFFD}</x>", "no character XML cannot carry")

        let events = try parse(inStream(message.serialized()))
        #expect(events.last == .stanza(message))
        let open = XMPPElement("stream:stream", xmlns: "jabber:client", attributes: [("xmlns:stream", "http://etherx.jabber.org/streams"), ("to", "example.test"), ("version", "1.0")])
        #expect(open.serializedOpenTag() == "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.test' version='1.0'>")
        #expect(try parse(open.serializedOpenTag()) == [.opened(open)])

        // Everything the Prosody exchange held comes back equal.
        for case .stanza(let e) in try parse(Self.prosody) {
            #expect(try parse(inStream(e.serialized())).last == .stanza(e))
        }
    }

    @Test func errorsArePrintable() {
        let weird = "a\u{85}\u{9B}b"  // C1 controls: valid UTF-8, name bytes
        let reason = failure(inStream("<\(weird)></x>"))
        #expect(reason == .mismatchedEndTag(expected: weird, found: "x"))
        let error = XMPPStreamError(reason ?? .comment, offset: 3)
        #expect(!error.description.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) })
        #expect(XMPPStreamError(.undefinedEntity("x"), offset: 9).description == "XMPP stream: the undefined entity &x; at byte 9")
        #expect(failure(inStream("<m>&\u{1B}[2J;</m>")) == .undefinedEntity("\u{FFFD}[2J"))
    }
}
