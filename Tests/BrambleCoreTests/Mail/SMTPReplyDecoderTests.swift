import NIOCore
import Testing

@testable import BrambleCore

@Suite struct SMTPReplyDecoderTests {
    @Test func multiLineRepliesAreReadWholeAndCutOnesWait() throws {
        let text = "220 mail.example.test ESMTP Postfix\r\n250-mail.example.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
        var buffer = ByteBuffer(string: text)
        #expect(try SMTPReplyDecoder.decode(from: &buffer) == SMTPReply(code: 220, lines: ["mail.example.test ESMTP Postfix"]))
        let ehlo = try #require(try SMTPReplyDecoder.decode(from: &buffer))
        #expect(ehlo.code == 250 && ehlo.lines == ["mail.example.test", "PIPELINING", "8BITMIME"] && ehlo.isPositive)
        #expect(try SMTPReplyDecoder.decode(from: &buffer) == nil)
        for cut in 0..<text.utf8.count {
            var partial = ByteBuffer(bytes: Array(text.utf8)[..<cut])
            let before = partial.readableBytes
            if let first = try SMTPReplyDecoder.decode(from: &partial) { #expect(first.code == 220) } else { #expect(partial.readableBytes == before) }
        }
    }

    @Test func malformedAndHostileRepliesAreRefused() {
        for bad in ["hello\r\n", "250-a\r\n354 b\r\n", "2500 x\r\n", "199 too low\r\n", String(repeating: "2", count: 3000)] {
            var buffer = ByteBuffer(string: bad)
            #expect(throws: SMTPReplyDecoder.Failure.self, "\(bad.prefix(20))") { try SMTPReplyDecoder.decode(from: &buffer) }
        }
        var many = ByteBuffer(string: String(repeating: "250-x\r\n", count: 200) + "250 y\r\n")
        #expect(throws: SMTPReplyDecoder.Failure.self) { try SMTPReplyDecoder.decode(from: &many) }
    }
}
