import NIOCore
import Testing

@testable import BrambleCore

@Suite struct MailTextTests {
    @Test func encodedWordsInHeadersAreDecodedAndTheSpaceBetweenThemDropped() {
        #expect(MailText.decodeHeader("=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_Bern?=") == "Grüße aus Bern")
        #expect(MailText.decodeHeader("=?iso-8859-1?B?SGVsbG8g8A==?= =?UTF-8?B?4oKs?=") == "Hello ð€")
        #expect(MailText.decodeHeader("Re: =?utf-8?q?caf=C3=A9?= today") == "Re: café today")
        #expect(MailText.decodeHeader("=?bogus") == "=?bogus", "malformed is left as it was")
        #expect(MailText.decodeHeader("plain") == "plain")
    }

    @Test func transferEncodingsDecodeAndToleratePartialFetches() {
        #expect(MailText.base64(Array("aGVsbG8gd29ybGQ=".utf8)) == Array("hello world".utf8))
        #expect(MailText.base64(Array("aGVs\r\nbG8g\nd29y".utf8)) == Array("hello wor".utf8), "line breaks ignored, the cut tail decoded as far as it goes")
        #expect(MailText.quotedPrintable(Array("caf=C3=A9 =\r\nau lait=3D".utf8)) == Array("café au lait=".utf8))
        #expect(MailText.quotedPrintable(Array("50% =ZZ off".utf8)) == Array("50% =ZZ off".utf8), "a malformed = kept")
        #expect(MailText.decodeTransfer(Array("x".utf8), encoding: "8BIT") == Array("x".utf8))
    }

    @Test func charsetsAreDecodedAndUnknownOnesDoNotFail() {
        #expect(MailText.decode([0x63, 0x61, 0x66, 0xE9], charset: "ISO-8859-1") == "café")
        #expect(MailText.decode([0x80], charset: "windows-1252") == "€")
        #expect(MailText.decode(Array("ok".utf8), charset: "x-unknown") == "ok")
        #expect(MailText.decode([0xE9, 0x74, 0xE9], charset: "x-unknown") == "été", "not UTF-8: read as Latin-1")
        #expect(MailText.decode([0xFF, 0x41], charset: "utf-8") == "\u{FFFD}A")
    }

    @Test func htmlBecomesReadableText() {
        let html = "<html><head><style>p{color:red}</style><script>alert(1)</script></head><body><p>Hello&nbsp;<b>Bob</b> &amp; team,</p><p>see&#32;you &lt;soon&gt;</p><br/>x&#x263A;</body></html>"
        #expect(MailText.plainText(fromHTML: html) == "Hello Bob & team,\n\nsee you <soon>\n\nx☺")
    }

    @Test func aPrefixNeverCutsACharacter() {
        #expect(MailText.prefix("aé€😀", maxBytes: 3) == "aé")
        #expect(MailText.prefix("aé€😀", maxBytes: 6) == "aé€")
        #expect(MailText.prefix("abc", maxBytes: 10) == "abc")
    }

    @Test func anEnvelopeAndABodyStructureGiveTheMailSummary() throws {
        let response = """
            * 1 FETCH (UID 5 ENVELOPE ("Thu, 5 Dec 2026 10:00:00 +0000" "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=" (("=?UTF-8?Q?Ren=C3=A9?=" NIL "rene" "example.test")) NIL NIL (("Bob" NIL "bob" "example.test")("undisclosed" NIL NIL NIL)) (("Carol" NIL "carol" "example.test")) NIL NIL "<m1@example.test>") BODYSTRUCTURE ((("text" "plain" ("charset" "iso-8859-1") NIL NIL "quoted-printable" 120 4 NIL NIL NIL NIL)("text" "html" ("charset" "utf-8") NIL NIL "base64" 400 6 NIL NIL NIL NIL) "alternative" ("boundary" "b2") NIL NIL NIL)("application" "pdf" ("name" "=?UTF-8?Q?Bericht_f=C3=BCr_dich.pdf?=") NIL NIL "base64" 90000 NIL ("attachment" ("filename" "=?UTF-8?Q?Bericht_f=C3=BCr_dich.pdf?=")) NIL NIL)("image" "png" NIL "<logo>" NIL "base64" 3000 NIL ("inline" NIL) NIL NIL) "mixed" ("boundary" "b1") NIL NIL NIL))\r

            """
        var buffer = ByteBuffer(string: response)
        guard case .untagged(.fetch(_, let a))? = try IMAPResponseDecoder.decode(from: &buffer) else { Issue.record("no fetch"); return }
        let envelopeValue = try #require(a["ENVELOPE"])
        let envelope = try #require(MailEnvelope(envelopeValue))
        #expect(envelope.subject == "Grüße" && envelope.messageID == "<m1@example.test>")
        #expect(envelope.from == ["René <rene@example.test>"] && envelope.to == ["Bob <bob@example.test>"] && envelope.cc == ["Carol <carol@example.test>"])
        let structure = try #require(a["BODYSTRUCTURE"])
        let parts = MailStructure.parts(structure)
        #expect(parts.map(\.section) == ["1.1", "1.2", "2", "3"])
        let text = try #require(MailStructure.textPart(parts))
        #expect(text.section == "1.1" && text.charset == "iso-8859-1" && text.encoding == "quoted-printable")
        let attachments = MailStructure.attachments(parts, text: text)
        #expect(attachments.map(\.name) == ["Bericht für dich.pdf", nil])
        #expect(attachments.map(\.type) == ["application/pdf", "image/png"] && attachments[0].size == 90000 && attachments[0].isAttachment)
        #expect(MailStructure.parts(.list([.string(Array("text".utf8)), .string(Array("plain".utf8)), .nil, .nil, .nil, .nil, .number(3)])).first?.section == "1",
                "a single-part message's text is section 1")
    }
}
