#if BRAMBLE_FUZZ
import BrambleCore

/// `xmpp`: the XMPP stream parser, as the IM client reads a server's bytes: the input
/// whole, in chunks whose sizes the input picks (the parser looks at each byte once, so
/// the events and the error must be the same), after a reset, and with small limits
/// (which may only refuse earlier); every stanza and open tag re-serializes to XML that
/// parses back equal. Then the input as a SCRAM-SHA-1 server-first message (iteration
/// counts above 16 refused, so no input costs more than a few HMACs) and server-final.
enum XMPPTarget {
    static let target = FuzzTarget(
        name: "xmpp",
        covers: "XMPPStreamParser: whole vs chunked vs after reset, small limits; serialize/parse round trip; SCRAMClient server-first/final",
        run: run)

    static let small = XMPPStreamParser.Limits(maxStanzaBytes: 512, maxDepth: 4, maxAttributes: 4, maxNameBytes: 16)

    struct Outcome: Equatable {
        var events: [XMPPStreamEvent] = []
        var failure: XMPPStreamError?
    }

    static func parse(_ parts: [ArraySlice<UInt8>], into parser: inout XMPPStreamParser) -> Outcome {
        var outcome = Outcome()
        for part in parts {
            do throws(XMPPStreamError) {
                try parser.feed(part, into: &outcome.events)
            } catch {
                outcome.failure = error
                // Failed for good: the same error again, no more events.
                let again = try? parser.feed(part)
                require(again == nil && parser.failure == error, "a failed parser did not stay failed")
                break
            }
        }
        return outcome
    }

    static func parse(_ parts: [ArraySlice<UInt8>], limits: XMPPStreamParser.Limits = .standard) -> Outcome {
        var parser = XMPPStreamParser(limits: limits)
        return parse(parts, into: &parser)
    }

    /// Cuts the input in chunks of 1 to 32 bytes, their sizes read from the input.
    static func chunks(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        var parts: [ArraySlice<UInt8>] = []
        var i = 0
        var k = bytes.count / 2
        while i < bytes.count {
            let size = 1 + Int(bytes[k] % 32)
            parts.append(bytes[i..<min(i + size, bytes.count)])
            i += size
            k = (k * 7 + 3) % bytes.count
        }
        return parts
    }

    static func isLimit(_ reason: XMPPStreamError.Reason) -> Bool {
        switch reason {
        case .tooLarge, .tooDeep, .tooManyAttributes, .nameTooLong: true
        default: false
        }
    }

    static func run(_ bytes: [UInt8]) {
        // 1. Whole, chunked, after a reset: the same.
        var parser = XMPPStreamParser()
        let whole = parse([bytes[...]], into: &parser)
        require(whole.failure == nil || whole.failure!.offset < bytes.count, "an error past the input's end")
        let chunked = parse(chunks(bytes))
        require(chunked == whole, "chunks read differently from the whole: \(chunked) vs \(whole)")
        parser.reset()
        require(parse([bytes[...]], into: &parser) == whole, "a reset parser read differently from a new one")

        // 2. Small limits refuse earlier or not at all; what they let through is the same.
        let limited = parse([bytes[...]], limits: small)
        if let reason = limited.failure?.reason, isLimit(reason) {
            require(whole.events.starts(with: limited.events), "small limits read other events")
        } else {
            require(limited == whole, "small limits changed more than where it stops: \(limited) vs \(whole)")
        }

        // 3. What was read serializes to XML that reads back equal.
        for event in whole.events { roundTrip(event) }

        scram(bytes.lossyText)
    }

    static let roomy = XMPPStreamParser.Limits(maxStanzaBytes: 8 << 20, maxDepth: 32, maxAttributes: 64, maxNameBytes: 256)
    static let header = Array("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>".utf8)

    static func roundTrip(_ event: XMPPStreamEvent) {
        switch event {
        case .opened(let open):
            let again = parse([Array(open.serializedOpenTag().utf8)[...]], limits: roomy)
            require(again == Outcome(events: [.opened(open)]), "an open tag did not read back: \(open.serializedOpenTag().debugDescription) gave \(again)")
        case .stanza(let stanza):
            let xml = stanza.serialized()
            let again = parse([(header + Array(xml.utf8))[...]], limits: roomy)
            require(again.failure == nil && again.events.last == .stanza(stanza) && again.events.count == 2,
                    "a stanza did not read back: \(xml.debugDescription) gave \(again)")
            _ = (stanza.text, stanza.xmlns, stanza.localName, stanza.child("body"), stanza.children("x", xmlns: "y"))
        case .closed:
            break
        }
    }

    /// The input as a server's SCRAM messages, against RFC 5802's client.
    static func scram(_ text: String) {
        var client = SCRAMClient(username: "user", credential: .password("pencil"), clientNonce: "fyko+d2lbbFgONRv9qkxdawL")
        client.maxIterations = 16
        do throws(SCRAMError) {
            let final = try client.clientFinalMessage(serverFirst: text)
            let keys = client.keys!
            require(final.hasPrefix("c=biws,r=fyko+d2lbbFgONRv9qkxdawL") && keys.iterations <= 16, "a client-final message out of shape: \(final)")
            // Cached keys answer the same.
            var cached = SCRAMClient(username: "user", credential: .keys(keys), clientNonce: "fyko+d2lbbFgONRv9qkxdawL")
            require((try? cached.clientFinalMessage(serverFirst: text)) == final, "cached keys answered otherwise")
            _ = try? client.verify(serverFinal: text)
        } catch {
            if case .iterationsOutOfBounds(let n) = error.reason { require(n < 1 || n > 16, "\(n) iterations refused") }
            require(client.keys == nil, "keys kept after a refusal")
            require(!error.description.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }, "an unprintable error")
        }
    }
}

#endif
