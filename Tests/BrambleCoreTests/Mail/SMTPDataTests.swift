import BrambleCore
import Testing

/// What DATA carries: CRLF lines, dot-stuffed, ended by ".\r\n", whatever line endings
/// the text came with.
@Suite struct SMTPDataTests {
    func encoded(_ message: String) -> String { String(decoding: SMTPData.encode(message), as: UTF8.self) }

    @Test func aLoneDotOnACRLFLineIsStuffedAndCannotEndTheMessageEarly() {
        // Swift sees "\r\n" as one Character: a split at "\n" missed these lines.
        #expect(encoded("Subject: x\r\n\r\nbefore\r\n.\r\nMAIL FROM:<evil@x>\r\n") == "Subject: x\r\n\r\nbefore\r\n..\r\nMAIL FROM:<evil@x>\r\n.\r\n")
        #expect(encoded(".start\r\n..two\r\nend") == "..start\r\n...two\r\nend\r\n.\r\n")
    }

    @Test func everyLineEndingBecomesCRLF() {
        #expect(encoded("a\nb\rc\r\nd") == "a\r\nb\r\nc\r\nd\r\n.\r\n")
        #expect(encoded("a\n.\n") == "a\r\n..\r\n.\r\n")
        #expect(encoded("a\r\r\nb") == "a\r\n\r\nb\r\n.\r\n", "a bare CR, then a CRLF: two line endings")
        #expect(encoded("\n.") == "\r\n..\r\n.\r\n")
    }

    @Test func theEndIsAlwaysCRLFDotCRLFAfterACompleteLine() {
        #expect(encoded("") == "\r\n.\r\n")
        #expect(encoded("x") == "x\r\n.\r\n")
        #expect(encoded("x\r\n") == "x\r\n.\r\n")
        #expect(encoded("é.\r\n.é") == "é.\r\n..é\r\n.\r\n")
        // Whatever the text, exactly one line is a lone dot, the last.
        for text in ["\r\n.\r\n", ".\n.\r.\r\n", "a\r\n.\r\n.\r\n", String(repeating: ".\r\n", count: 50)] {
            let lines = encoded(text).components(separatedBy: "\r\n")
            #expect(lines.filter { $0 == "." }.count == 1 && lines.dropLast().last == ".", "\(text.debugDescription)")
        }
    }
}

/// The data and its final dot apart (a submission checks its deadline between them).
@Suite struct SMTPDataBodyTests {
    @Test func theBodyIsTheEncodingWithoutItsFinalDot() {
        for text in ["", "x", "a\n.\n", "Subject: x\r\n\r\nbefore\r\n.\r\nafter", ".\r\n.\r\n"] {
            #expect(SMTPData.body(Array(text.utf8)) + SMTPData.end == SMTPData.encode(text), "\(text.debugDescription)")
        }
        #expect(SMTPData.end == Array(".\r\n".utf8))
    }

    @Test func bytesThatAreNotUTF8PassUnchanged() {
        let latin1: [UInt8] = [0x63, 0x61, 0x66, 0xE9, 0x0A, 0x2E, 0xFF]  // "café\n.ÿ" in Latin-1
        #expect(SMTPData.body(latin1) == [0x63, 0x61, 0x66, 0xE9, 0x0D, 0x0A, 0x2E, 0x2E, 0xFF, 0x0D, 0x0A])
    }
}
