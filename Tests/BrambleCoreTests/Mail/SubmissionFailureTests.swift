import BrambleCore
import Testing

/// What a refused submission tells the operator and the device's user.
@Suite struct SubmissionFailureTests {
    func classify(_ stage: SubmissionStage, _ code: Int, _ text: String, limit: Int? = 1_048_576, size: Int = 2_000_000) -> SubmissionFailure.Classified {
        SubmissionFailure.classify(stage: stage, reply: SMTPReply(code: code, lines: [text]), limit: limit, size: size)
    }

    @Test func anUnknownRecipientIsNamedAndPermanent() {
        for code in [550, 551, 553] {
            #expect(classify(.rcpt("nobody@example.test"), code, "5.1.1 <nobody@example.test>: Recipient address rejected: User unknown")
                    == .permanent("unknown recipient <nobody@example.test>"))
        }
        #expect(classify(.rcpt("x@outside.test"), 554, "5.7.1 <x@outside.test>: Relay access denied")
                == .permanent("recipient refused <x@outside.test> (554 5.7.1 <x@outside.test>: Relay access denied)"))
    }

    @Test func aMessageTooLargeSaysItsSizeAndTheLimitAtAnyStage() {
        #expect(classify(.mail, 552, "5.3.4 Message size exceeds fixed limit") == .permanent("message too large (2000000 bytes; the limit is 1048576)"))
        #expect(classify(.finalDot, 552, "5.3.4 Error: message file too big", limit: nil) == .permanent("message too large (2000000 bytes)"))
        #expect(classify(.data, 554, "5.3.4 too big") == .permanent("message too large (2000000 bytes; the limit is 1048576)"))
        #expect(classify(.rcpt("a@example.test"), 552, "5.3.4 Message size exceeds fixed limit") == .permanent("message too large (2000000 bytes; the limit is 1048576)"))
        // RFC 5321 §4.5.3.1.10: 552 at RCPT without 5.3.4 is the old "too many recipients".
        guard case .temporary(let reason) = classify(.rcpt("a@example.test"), 552, "Too many recipients") else { Issue.record("not temporary"); return }
        #expect(reason.contains("too many recipients"))
    }

    @Test func theSenderAndTheMessageAreRefusedWithTheServersWords() {
        #expect(classify(.mail, 553, "5.7.1 <demo2@example.test>: Sender address rejected: not owned by user demo1@example.test")
                == .permanent("sender refused (553 5.7.1 <demo2@example.test>: Sender address rejected: not owned by user demo1@example.test)"))
        #expect(classify(.data, 554, "5.5.1 Error: no valid recipients") == .permanent("message refused (554 5.5.1 Error: no valid recipients)"))
        #expect(classify(.finalDot, 554, "5.7.1 spam") == .permanent("message refused (554 5.7.1 spam)"))
    }

    @Test func fourHundredsAnd421AreTemporary() {
        for (stage, code) in [(SubmissionStage.mail, 421), (.rcpt("a@example.test"), 450), (.data, 451), (.finalDot, 452)] {
            guard case .temporary(let reason) = classify(stage, code, "4.3.0 try later") else { Issue.record("\(stage) \(code) not temporary"); continue }
            #expect(reason.contains("\(code) 4.3.0 try later"))
        }
    }

    @Test func theServersTextIsPrintableAndBounded() {
        let reply = SMTPReply(code: 554, lines: ["evil\u{1B}[31m\r\ntext" + String(repeating: "x", count: 5_000), "second"])
        guard case .permanent(let reason) = SubmissionFailure.classify(stage: .finalDot, reply: reply, limit: nil, size: 1) else {
            Issue.record("not permanent"); return
        }
        #expect(!reason.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F })
        #expect(reason.count <= "message refused (554 )".count + SubmissionFailure.maxServerText)
        guard case .permanent(let named) = classify(.rcpt("a\u{7}b@example.test"), 550, "no") else { Issue.record("not permanent"); return }
        #expect(named == "unknown recipient <a\u{FFFD}b@example.test>")
    }
}
