import BrambleCore
import Testing

/// Modified UTF-7 mailbox names (RFC 3501 §5.1.3).
@Suite struct MailboxNameTests {
    @Test func namesEncodeAsRFC3501Says() {
        let cases = [
            ("INBOX", "INBOX"), ("Sent Items", "Sent Items"), ("&", "&-"), ("a&b", "a&-b"),
            ("Entwürfe", "Entw&APw-rfe"), ("台北", "&U,BTFw-"), ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
            ("Ünïcödé", "&ANw-n&AO8-c&APY-d&AOk-"), ("😀", "&2D3eAA-"), ("a\u{7}", "a&AAc-"), ("", ""),
        ]
        for (name, encoded) in cases {
            #expect(MailboxName.encode(name) == encoded, "\(name)")
            #expect(MailboxName.decode(encoded) == name, "\(encoded)")
        }
    }

    @Test func invalidFormsAreRefused() {
        for bad in [
            "&", "a&b", "&U,BTFw", "&AGE-",  // unterminated; "a" encoded (must stand for itself)
            "&APw-&APw-",  // two encoded runs side by side (one run is the only form)
            "&APx-",  // non-zero padding bits
            "&APwA-",  // a partial UTF-16 unit
            "&2D0-",  // a lone high surrogate
            "&AP=-", "&AP/-",  // not modified base64 ("/" is ",")
            "Entwürfe",  // 8-bit bytes
            "a\tb",  // a control byte
            String(repeating: "a", count: MailboxName.maxEncodedBytes + 1),
        ] {
            #expect(MailboxName.decode(bad) == nil, "\(bad.debugDescription)")
        }
    }

    @Test func whateverDecodesEncodesBackToTheSameBytes() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("&-AZaz09+,./ ".utf8) + [0x41, 0x50, 0x77]
        for _ in 0..<20_000 {
            let bytes = (0..<Int.random(in: 0..<12, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! }
            let text = String(decoding: bytes, as: UTF8.self)
            if let name = MailboxName.decode(text) { #expect(MailboxName.encode(name) == text) }
        }
        for name in ["Entwürfe", "台北", "a&b&", "😀x😀", "\u{0}\u{7F}\u{80}"] {
            #expect(MailboxName.decode(MailboxName.encode(name)) == name)
        }
    }
}

/// UID sets as servers write them in VANISHED and COPYUID.
@Suite struct IMAPUIDSetTests {
    @Test func setsExpandInOrderAndWithinTheirBound() {
        #expect(IMAPUIDSet.expand("1:3,7,12:10", maxCount: 100) == [1, 2, 3, 7, 10, 11, 12])
        #expect(IMAPUIDSet.expand("5", maxCount: 1) == [5])
        #expect(IMAPUIDSet.expand("1:4294967295", maxCount: 100_000) == nil, "too many, refused before expanding")
        for bad in ["", "*", "1:*", "0", "1,,2", "1:2:3", " 1", "a", "4294967296", "1,"] {
            #expect(IMAPUIDSet.ranges(bad) == nil, "\(bad)")
        }
    }

    @Test func uidsBecomeASetOfRanges() {
        #expect(IMAPUIDSet.string([3, 1, 2, 7, 9, 10, 2]) == "1:3,7,9:10")
        #expect(IMAPUIDSet.string([]) == nil)
        #expect(IMAPUIDSet.string([42]) == "42")
    }
}
