import BrambleAPI
import BrambleCore
import Testing

/// What the API takes as an e-mail address, checked on bytes and scalars (never on
/// Characters), and the one form it is stored in.
@Suite struct EmailTests {
    @Test func plausibleAddressesPassAndTyposDoNot() {
        for good in ["demo1@example.test", "jöran@example.test", "a.b-c@x.y.z"] { #expect(Email.isPlausible(good), "\(good)") }
        for bad in ["", "no-at", "@x.y", "a@", "a@b", "a@.b", "a@b.", "a b@x.y", "a@b@x.y", "a*svc@x.y", "a\t@x.y"] {
            #expect(!Email.isPlausible(bad), "\(bad.debugDescription)")
        }
    }

    @Test func aSecondAtSignHiddenInACharacterOrAControlCharacterIsRefused() {
        // "@" then a combining accent is one Character that is not "@": a split on
        // Characters saw one "@" here, and Dovecot would see two.
        #expect(!Email.isPlausible("victim@corp.com@\u{301}x.com"))
        #expect(!Email.isPlausible("a@.\u{301}x.com"), "the domain starts with a dot byte")
        for control in ["\u{0}", "\u{1B}", "\u{7F}", "\u{85}", "\r\n"] { #expect(!Email.isPlausible("a\(control)b@x.y"), "\(control.debugDescription)") }
    }

    @Test func theCanonicalFormIsTrimmedLowerCaseNFC() {
        let composed = "jos\u{E9}@example.test", decomposed = "jose\u{301}@example.test"
        #expect(Array(composed.utf8) != Array(decomposed.utf8), "two spellings, two byte strings")
        #expect(Array(Email.canonical(decomposed).utf8) == Array(composed.utf8))
        #expect(Email.canonical("  Demo1@Example.TEST ") == "demo1@example.test")
    }

    @Test func printableTextHasNoControlCharacterLeft() {
        #expect(MailText.printable("NO [ALERT] \u{1B}[31mred\u{0}\u{85}") == "NO [ALERT] \u{FFFD}[31mred\u{FFFD}\u{FFFD}")
        #expect(MailText.printable("plain é") == "plain é")
    }
}
