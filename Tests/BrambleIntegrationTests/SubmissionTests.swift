@testable import BrambleTestSupport
import BrambleCore
import BrambleNet
import Foundation
import Testing

/// `SMTPSession.submit` against the real submission service (scripts/mail-private; AUTH
/// PLAIN as demo1 through the service account, a 1 MiB size limit): what it reports is
/// what Postfix did, and "not sent" means nothing arrives, "in doubt" that it may have.
@Suite(.serialized) struct SubmissionTests {
    struct Stop: Error {}

    func withMailHost(_ body: (TestMailHost) async throws -> Void) async throws {
        let dir = NSTemporaryDirectory() + "bramble-test-submission-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let host = try TestMailHost.start(in: dir)
        defer { host.stop() }
        try await body(host)
    }

    func mail(_ messageID: String, to: String = "demo2@example.test", body: String = "hello") -> [UInt8] {
        Array("From: demo1@example.test\r\nTo: \(to)\r\nSubject: submitted\r\nMessage-ID: \(messageID)\r\n\r\n\(body)\r\n".utf8)
    }

    func newID() -> String { "<\(UUID().uuidString)@example.test>" }

    /// A session on `address` (the submission port unless told), authenticated as demo1.
    func asDemo1<T: Sendable>(_ host: TestMailHost, at address: HostPort? = nil, tls: Bool = true,
                              _ body: (inout SMTPSession) async throws -> T) async throws -> T {
        let password = try host.servicePassword
        return try await SMTPSession.with(to: address ?? host.submission, tls: tls ? host.tls : nil) { smtp in
            try await smtp.authenticatePlain(as: "demo1@example.test", login: host.serviceUser, password: password)
            return try await body(&smtp)
        }
    }

    /// The Message-IDs in `user`'s `folder` once `expected` is among them (up to 5 s),
    /// or after 5 s.
    func messageIDs(_ host: TestMailHost, _ user: String, _ folder: String = "INBOX", until expected: String) async throws -> [String] {
        try await IMAPSession.with(to: host.imap, tls: host.tls) { imap in
            try await imap.login(user: "\(user)*\(host.serviceUser)", password: try host.servicePassword)
            var ids: [String] = []
            for _ in 0..<50 {
                let selected = try await imap.select(folder, readOnly: true)
                ids = selected.exists == 0 ? [] : try await imap.uidFetch("1:*", "ENVELOPE").compactMap {
                    $0.attributes["ENVELOPE"].flatMap(MailEnvelope.init)?.messageID
                }
                if ids.contains(expected) { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            await imap.logout()
            return ids
        }
    }

    /// A marker sent after `submit` on a new session, waited for: whatever `submit` queued
    /// has arrived by then too (one queue, delivered in order within a second or two).
    func sendMarker(_ host: TestMailHost) async throws -> String {
        let marker = newID()
        let result = try await asDemo1(host) { smtp in
            await smtp.submit(from: "demo1@example.test", to: ["demo2@example.test"], message: mail(marker), beforeFinalDot: {})
        }
        guard case .accepted = result else { throw SetupError("the marker was not accepted: \(result)") }
        try await Task.sleep(for: .seconds(1))
        return marker
    }

    @Test func anAcceptedSubmissionNamesItsQueueIDAndArrivesWithItsSentCopy() async throws {
        try await withMailHost { host in
            let id = newID()
            let (result, size, sizeLimit, finalDotChecked) = try await asDemo1(host) { smtp in
                var checked = false
                let result = await smtp.submit(from: "demo1@example.test", to: ["demo2@example.test"], message: mail(id),
                                               beforeFinalDot: { checked = true })
                return (result, smtp.extensions["SIZE"], smtp.sizeLimit, checked)
            }
            guard case .accepted(let reply) = result else { Issue.record("\(result)"); return }
            #expect(reply.code == 250 && reply.text.contains("queued as"), "\(reply.text)")
            #expect(size == "1048576" && sizeLimit == 1_048_576 && finalDotChecked)
            #expect(try await messageIDs(host, "demo2@example.test", until: id) == [id])
            #expect(try await messageIDs(host, "demo1@example.test", "Sent", until: id) == [id])
        }
    }

    @Test func anUnknownRecipientIsRefusedAtRCPTAndNothingIsQueued() async throws {
        try await withMailHost { host in
            let refusedID = newID(), nextID = newID()
            let (refused, next) = try await asDemo1(host) { smtp in
                let refused = await smtp.submit(from: "demo1@example.test", to: ["demo2@example.test", "nobody@example.test"],
                                                message: mail(refusedID), beforeFinalDot: { Issue.record("no data after a refused RCPT") })
                // After the RSET, the same session sends the next one.
                let next = await smtp.submit(from: "demo1@example.test", to: ["demo2@example.test"], message: mail(nextID), beforeFinalDot: {})
                return (refused, next)
            }
            guard case .refused(.rcpt("nobody@example.test"), let reply) = refused else { Issue.record("\(refused)"); return }
            #expect(reply.code == 550)
            #expect(SubmissionFailure.classify(stage: .rcpt("nobody@example.test"), reply: reply, limit: nil, size: 0)
                    == .permanent("unknown recipient <nobody@example.test>"))
            guard case .accepted = next else { Issue.record("\(next)"); return }
            try await Task.sleep(for: .seconds(1))
            #expect(try await messageIDs(host, "demo2@example.test", until: nextID) == [nextID], "the refused one was not queued for demo2")
            #expect(try await messageIDs(host, "demo1@example.test", "Sent", until: nextID) == [nextID], "nor filed in Sent")
        }
    }

    @Test func aMessageOverTheSizeLimitIsRefusedWith552() async throws {
        try await withMailHost { host in
            let big = mail(newID(), body: String(repeating: "0123456789abcde\r\n", count: 70_000))  // 1.2 MB
            let (local, server) = try await asDemo1(host) { smtp in
                let local = await smtp.submit(from: "demo1@example.test", to: ["demo2@example.test"], message: big,
                                              beforeFinalDot: { Issue.record("no data over the limit") })
                // Postfix's own answer to a SIZE over its limit (what submit spares it).
                let server = try await smtp.command("MAIL FROM:<demo1@example.test> SIZE=\(big.count)", accept: { _ in true })
                return (local, server)
            }
            guard case .refused(.mail, let reply) = local else { Issue.record("\(local)"); return }
            #expect(reply.code == 552 && reply.text.hasPrefix("5.3.4") && reply.text.hasSuffix("(not sent)"), "\(reply.text)")
            #expect(server.code == 552 && server.text.hasPrefix("5.3.4"), "\(server.code) \(server.text)")
            for refusal in [reply, server] {
                #expect(SubmissionFailure.classify(stage: .mail, reply: refusal, limit: 1_048_576, size: 1_190_000)
                        == .permanent("message too large (1190000 bytes; the limit is 1048576)"))
            }
        }
    }

    @Test func stoppingBeforeTheFinalDotSendsNothing() async throws {
        try await withMailHost { host in
            let id = newID()
            let result = try await asDemo1(host) { smtp in
                await smtp.submit(from: "demo1@example.test", to: ["demo2@example.test"], message: mail(id), beforeFinalDot: { throw Stop() })
            }
            guard case .notSent(let reason) = result else { Issue.record("\(result)"); return }
            #expect(reason.contains("before the final dot"))
            let marker = try await sendMarker(host)
            #expect(try await messageIDs(host, "demo2@example.test", until: marker) == [marker], "only the marker arrived")
            #expect(try await messageIDs(host, "demo1@example.test", "Sent", until: marker) == [marker])
        }
    }

    /// The reply to the final dot is lost (a forwarder drops it and closes): the outcome is
    /// unknown, and indeed the message was queued: in doubt, not lost, not "not sent".
    @Test func aReplyLostAfterTheFinalDotIsUnknownAndTheMessageArrived() async throws {
        try await withMailHost { host in
            let dropper = try await SMTPReplyDropper.start(forwardingTo: host.submission, tls: host.tls)
            defer { dropper.stop() }
            let id = newID()
            let result = try await asDemo1(host, at: dropper.address, tls: false) { smtp in
                await smtp.submit(from: "demo1@example.test", to: ["demo2@example.test"], message: mail(id), beforeFinalDot: {})
            }
            #expect(dropper.forwardedTheFinalDot)
            guard case .unknown(let reason) = result else { Issue.record("\(result)"); return }
            #expect(reason.contains("after the final dot"))
            #expect(try await messageIDs(host, "demo2@example.test", until: id) == [id], "it was queued and delivered")
        }
    }

    @Test func unsafeAddressesAndNoRecipientsAreRefusedBeforeAnythingIsSent() async throws {
        try await withMailHost { host in
            let results = try await asDemo1(host) { smtp in
                [await smtp.submit(from: "demo1@example.test>\r\nRCPT TO:<demo3@example.test", to: ["demo2@example.test"], message: mail(newID()), beforeFinalDot: {}),
                 await smtp.submit(from: "demo1@example.test", to: ["demo2@example.test", "a b@example.test"], message: mail(newID()), beforeFinalDot: {}),
                 await smtp.submit(from: "demo1@example.test", to: [], message: mail(newID()), beforeFinalDot: {})]
            }
            guard case .refused(.mail, let r0) = results[0], case .refused(.rcpt("a b@example.test"), let r1) = results[1],
                  case .refused(.rcpt(""), let r2) = results[2] else { Issue.record("\(results)"); return }
            #expect(r0.code == 501 && r1.code == 501 && r2.code == 554)
        }
    }
}
