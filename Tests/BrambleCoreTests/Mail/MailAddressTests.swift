import BrambleCore
import Testing

/// A device's recipient reaches `RCPT TO:<…>` and a To/Cc header: only a plain
/// `local@domain` gets through, and nothing that could end a command or a header line.
@Suite struct MailAddressTests {
    @Test func plainAddressesAreAcceptedWithTheirDomainLowerCased() {
        #expect(MailAddress.parse("bob@example.test") == "bob@example.test")
        #expect(MailAddress.parse("  Bob.Smith@Example.TEST\t") == "Bob.Smith@example.test", "trimmed; the local part's case kept")
        #expect(MailAddress.parse("a!#$%&'*+-/=?^_`{|}~z@x.y") == "a!#$%&'*+-/=?^_`{|}~z@x.y", "every atext symbol")
        #expect(MailAddress.parse("user+tag@mail-1.sub.example.test") == "user+tag@mail-1.sub.example.test")
        #expect(MailAddress.parse("x@1.2") == "x@1.2")
    }

    @Test func lengthsAreBoundedAsSMTPBoundsThem() {
        let label63 = String(repeating: "a", count: 63)
        #expect(MailAddress.parse("x@\(label63).test") != nil)
        #expect(MailAddress.parse("x@\(label63)a.test") == nil, "a 64-byte label")
        #expect(MailAddress.parse(String(repeating: "l", count: 64) + "@x.test") != nil)
        #expect(MailAddress.parse(String(repeating: "l", count: 65) + "@x.test") == nil, "a 65-byte local part")
        // 4 labels of 63 and one dot-separated "t": 4*63 + 4 + 1 = 257 bytes of domain.
        let longDomain = Array(repeating: label63, count: 4).joined(separator: ".") + ".t"
        #expect(MailAddress.parse("x@\(longDomain)") == nil)
        // A 253-byte domain is fine, but with "x@" the whole is 255 > 254.
        let domain253 = Array(repeating: label63, count: 3).joined(separator: ".") + "." + String(repeating: "b", count: 61)
        #expect(domain253.utf8.count == 253)
        #expect(MailAddress.parse("x@\(domain253)") == nil)
        #expect(MailAddress.parse("@\(domain253)") == nil)
        let domain251 = String(domain253.dropLast(2))
        #expect(MailAddress.parse("x@\(domain251)")?.utf8.count == 253)
    }

    @Test func lineBreaksAndControlsAreRefusedWhereverTheyAre() {
        for hostile in [
            "bob@example.test\r\n", "bob@example.test\n", "\r\nbob@example.test", "bob@example.test\r",
            "bob@example.test\r\nRCPT TO:<evil@x.test>", "bob\r\n@example.test", "bob@exa\nmple.test",
            "bob@example.test\0", "b\0ob@example.test", "bob@example.test\u{7F}", "bob\u{1B}@example.test",
            "bob@example.test\u{85}", "bob\u{2028}@example.test", "\u{0B}bob@example.test",
        ] {
            #expect(MailAddress.parse(hostile) == nil, "\(hostile.debugDescription)")
        }
    }

    @Test func anythingButAPlainAddrSpecIsRefused() {
        for hostile in [
            "", " ", "@", "bob", "bob@", "@example.test", "bob@@example.test", "bob@x@example.test",
            "<bob@example.test>", "Bob <bob@example.test>", "\"Bob\" <bob@example.test>", "bob@example.test>",
            "bob@example.test (Bob)", "bob(comment)@example.test", "\"bob smith\"@example.test", "\"bob\"@example.test",
            "bob smith@example.test", "bob@exa mple.test", "bob@example.test, eve@example.test", "bob@example.test;eve@x.test",
            ".bob@example.test", "bob.@example.test", "bo..b@example.test", "bob@.example.test", "bob@example.test.",
            "bob@example..test", "bob@-example.test", "bob@example-.test", "bob@exam_ple.test", "bob@localhost",
            "bob@[192.0.2.1]", "bob@[IPv6:::1]", "b\\ob@example.test", "bob@example.test:25", "bob@example.test/x",
            "bob@example.tést", "bób@example.test", "bo\u{301}b@example.test", "bob@\u{301}example.test", "bob@\u{FF0E}test",
            "bob\u{FF20}example.test", "bob@e\u{200B}xample.test",
        ] {
            #expect(MailAddress.parse(hostile) == nil, "\(hostile.debugDescription)")
        }
    }

    @Test func anAtWithACombiningMarkIsNotMistakenForAPlainAt() {
        // One Character that is not "@" to Swift; the bytes hold an "@" and a non-ASCII mark.
        let sneaky = "bob@\u{301}example.test"
        #expect(!sneaky.contains(Character("@")))
        #expect(MailAddress.parse(sneaky) == nil)
    }
}
