@testable import BrambleTestSupport
import BrambleCore
import BrambleNet
import Foundation
import Testing

/// The XMPP client (TLS from the first byte, SCRAM-SHA-1, bind) against a real Prosody:
/// two users message each other, see each other's presence, and a wrong password is
/// refused as not authorized; cached SCRAM keys log in without the password.
@Suite(.serialized) struct XMPPClientTests {
    static func withHost(_ body: (TestIMHost) async throws -> Void) async throws {
        let dir = NSTemporaryDirectory() + "bramble-xmpp-\(UUID().uuidString.prefix(8))"
        let host = try TestIMHost.start(in: dir)
        defer { host.stop(); try? FileManager.default.removeItem(atPath: dir) }
        try await body(host)
    }

    @Test func twoUsersMessageEachOtherAndSeePresence() async throws {
        try await Self.withHost { host in
            let (a, b) = ("demo1@example.test", "demo2@example.test")
            let alice = try await XMPPChatClient.connect(to: host.xmpp, tls: host.tls, jid: a, password: try #require(host.passwords[a]))
            let bob = try await XMPPChatClient.connect(to: host.xmpp, tls: host.tls, jid: b, password: try #require(host.passwords[b]))
            try await alice.send(to: b, body: "Hallo <Bob> & \"du\" ✓", id: "m1")
            try await bob.send(to: a, body: "hi", id: "m2")
            try await TestCluster.poll("both received", seconds: 10) { !bob.received.isEmpty && !alice.received.isEmpty }
            #expect(bob.received == [.init(from: a, id: "m1", body: "Hallo <Bob> & \"du\" ✓")])
            #expect(alice.received == [.init(from: b, id: "m2", body: "hi")])
            try await alice.setPresence(.busy)
            try await TestCluster.poll("bob sees alice busy", seconds: 10) { bob.presence[a] == .busy }
            await alice.close()
            try await TestCluster.poll("bob sees alice offline", seconds: 10) { bob.presence[a] == .offline }
            await bob.close()
        }
    }

    @Test func aWrongPasswordIsNotAuthorizedAndCachedKeysLogIn() async throws {
        try await Self.withHost { host in
            let jid = "demo3@example.test"
            await #expect(throws: XMPPClient.Failure.notAuthorized("not-authorized")) {
                try await XMPPClient.session(to: host.xmpp, tls: host.tls, login: .init(jid: jid, credential: .password("wrong"), resource: "r")) { _, _, _ in }
            }
            let keys = try await XMPPClient.session(to: host.xmpp, tls: host.tls,
                                                    login: .init(jid: jid, credential: .password(try #require(host.passwords[jid])), resource: "r")) { e, _, _ in
                #expect(e.jid == jid + "/r")
                return e.keys
            }
            let again = try await XMPPClient.session(to: host.xmpp, tls: host.tls, login: .init(jid: jid, credential: .keys(keys), resource: "r2")) { e, _, _ in e.jid }
            #expect(again == jid + "/r2")
        }
    }
}
