import Testing

@testable import BrambleCore

/// The one-time activation password: its rules, the generated ones, and the scrypt secret
/// both sides run CPace on.
@Suite struct ActivationPasswordTests {
    func refusal(_ password: String) -> ActivationPassword.Refused? {
        do { try ActivationPassword.validate(password) } catch { return error }
        return nil
    }

    // MARK: Rules

    @Test func sevenCharactersAreRefusedAndEightAccepted() {
        #expect(refusal("Zq9#Xk7") == .init(description: "an activation password has at least 8 characters"))
        #expect(refusal("Zq9#Xk7m") == nil)
        #expect(refusal("") != nil)
    }

    @Test func sixtyFourCharactersAreAcceptedAndSixtyFiveRefused() {
        #expect(refusal(String(repeating: "Zq9#Xk7m", count: 8)) == nil)
        #expect(refusal(String(repeating: "Zq9#Xk7m", count: 8) + "w") == .init(description: "an activation password has at most 64 characters"))
    }

    @Test func theLengthCountsCharactersNotBytes() {
        // Eight characters typed, sixteen or more bytes.
        #expect(refusal("äöüßÄÖÜé") == nil)
        #expect(refusal("🔑🔑🔑🔑🔑🔑🔑🔑") == nil)
        #expect(refusal("äöüßÄÖÜ") != nil, "seven characters, fourteen bytes")
        #expect(refusal(String(repeating: "ä", count: 64)) == nil, "64 characters, 128 bytes")
    }

    @Test(arguments: ["pass\nword1", "pass\rword1", "password1\n", "pass\tword1", "pass\u{0}word1", "pass\u{1B}word1",
                      "pass\u{7F}word1", "pass\u{85}word1", "pass\u{9F}word1"])
    func aLineBreakOrControlCharacterIsRefused(_ password: String) {
        #expect(refusal(password) == .init(description: "an activation password holds no control characters or line breaks"))
    }

    @Test(arguments: ["\u{2028}", "\u{2029}"])
    func aUnicodeLineOrParagraphSeparatorIsRefused(_ separator: String) {
        #expect(refusal("pass" + separator + "word1") != nil)
    }

    @Test(arguments: [" password1", "password1 ", "  password1  ", "\u{A0}password1", "password1\u{3000}"])
    func aLeadingOrTrailingSpaceIsRefused(_ password: String) {
        #expect(refusal(password) == .init(description: "an activation password neither begins nor ends with a space"))
    }

    @Test func aSpaceInsideIsFine() {
        #expect(refusal("correct horse battery staple") == nil)
    }

    @Test(arguments: ["Zq9#Xk7", String(repeating: "Zq9#Xk7m", count: 9), "Zq9#\nXk7m", " Zq9#Xk7m", "Zq9#Xk7m\u{0}"])
    func aRefusalNeverShowsThePassword(_ password: String) throws {
        let refused = try #require(refusal(password))
        let visible = password.trimmingCharacters(in: .whitespacesAndNewlines).filter { !$0.isNewline && $0 != "\u{0}" }
        for shown in ["\(refused)", refused.description, String(reflecting: refused)] {
            #expect(!shown.contains(visible))
            #expect(!shown.contains("Zq9#"))
        }
    }

    // MARK: Generated passwords

    @Test func aGeneratedPasswordIsTwelveCharactersOfTheAlphabetAndValid() throws {
        var seen: Set<String> = []
        for _ in 0..<200 {
            let password = ActivationPassword.generate()
            #expect(password.count == ActivationPassword.generatedLength)
            #expect(password.allSatisfy(ActivationPassword.alphabet.contains), "\(password)")
            #expect(refusal(password) == nil)
            seen.insert(password)
        }
        #expect(seen.count == 200, "59 bits do not repeat in 200 draws")
    }

    @Test func theAlphabetHasNoLookAlikes() {
        #expect(ActivationPassword.alphabet.count == 31)
        for c in "01ilo" { #expect(!ActivationPassword.alphabet.contains(c)) }
        #expect(Set(ActivationPassword.alphabet).count == ActivationPassword.alphabet.count)
    }

    @Test func generatedPasswordsUseTheWholeAlphabet() {
        var used: Set<Character> = []
        for _ in 0..<100 { used.formUnion(ActivationPassword.generate()) }
        #expect(used == Set(ActivationPassword.alphabet))
    }

    // MARK: The secret

    @Test func theSecretIsDeterministicAndDependsOnPasswordAndAddress() {
        let secret = ActivationPassword.secret(password: "correct horse", email: "ann@example.com")
        #expect(secret.count == 32)
        #expect(secret == ActivationPassword.secret(password: "correct horse", email: "ann@example.com"))
        #expect(secret != ActivationPassword.secret(password: "correct horsf", email: "ann@example.com"))
        #expect(secret != ActivationPassword.secret(password: "correct horse", email: "bob@example.com"))
        #expect(secret != ActivationPassword.secret(password: "correct horse", email: "ann@example.org"))
        #expect(secret != Array("correct horse".utf8).prefix(32).map { $0 }, "the password is not the secret")
    }

    @Test func addressSpellingsTheCanonicalFormMapsTogetherGiveOneSecret() {
        let secret = ActivationPassword.secret(password: "correct horse", email: "ann@example.com")
        for spelling in ["Ann@Example.COM", "  ann@example.com", "ann@example.com  ", " ANN@EXAMPLE.COM "] {
            #expect(ActivationPassword.canonicalEmail(spelling) == "ann@example.com")
            #expect(ActivationPassword.secret(password: "correct horse", email: spelling) == secret, "\(spelling)")
        }
    }

    @Test func theCanonicalAddressIsNFC() {
        let composed = "j\u{F6}rg@example.com"
        let decomposed = "jo\u{308}rg@example.com"
        #expect(Array(ActivationPassword.canonicalEmail(decomposed).utf8) == Array(composed.utf8))
        #expect(ActivationPassword.secret(password: "correct horse", email: decomposed)
                == ActivationPassword.secret(password: "correct horse", email: composed))
    }

    @Test func aPasswordTypedComposedOrDecomposedGivesOneSecret() {
        #expect(ActivationPassword.secret(password: "caf\u{E9} au lait", email: "ann@example.com")
                == ActivationPassword.secret(password: "cafe\u{301} au lait", email: "ann@example.com"))
    }

    @Test func thePasswordsCaseMatters() {
        #expect(ActivationPassword.secret(password: "Correct Horse", email: "ann@example.com")
                != ActivationPassword.secret(password: "correct horse", email: "ann@example.com"))
    }
}
