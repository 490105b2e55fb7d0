import Testing

@testable import BrambleCore

@Suite struct MailHeadersTests {
    /// A folded field comes back on one line; the name matches without case; the body
    /// after the blank line is not the header; control characters do not come through.
    @Test func aFieldIsReadUnfoldedFromTheHeaderBlockOnly() {
        let block = Array("Subject: hi\r\nreferences: <a@x>\r\n\t<b@x>\r\n <c@x>\r\nTo: y@z\r\n\r\nReferences: <body@x>\r\n".utf8)
        #expect(MailHeaders.value("References", in: block) == "<a@x> <b@x> <c@x>")
        #expect(MailHeaders.value("To", in: block) == "y@z")
        #expect(MailHeaders.value("Cc", in: block) == nil)
        #expect(MailHeaders.value("References", in: Array("Subject: x\n\nReferences: <body@x>\n".utf8)) == nil, "the body is not the header")
        #expect(MailHeaders.value("References", in: Array("References: <a@x>\u{1B}[2J\n".utf8)).map { $0.unicodeScalars.allSatisfy { $0.value >= 0x20 } } == true)
        let huge = Array(("References: " + String(repeating: "<x@y> ", count: 30_000)).utf8)
        #expect((MailHeaders.value("References", in: huge)?.utf8.count ?? 0) <= MailHeaders.maxHeaderBytes)
    }
}
