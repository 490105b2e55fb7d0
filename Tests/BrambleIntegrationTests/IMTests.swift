@testable import BrambleTestSupport
import BrambleCore
import BrambleDevice
import BrambleNet
import Foundation
import Testing

/// The Collaboration Service against a real Prosody: a device's IM login through the
/// Dispatcher, checked against the configuration database (permission, the pair's
/// maximum, idle timeout, the server's own limit); messages, presence and contacts both
/// ways between the device and a desktop user.
@Suite(.serialized) struct IMTests {
    static let (demo1, pin1) = ("demo1@example.test", "2A00F10D")
    static let (demo2, pin2) = ("demo2@example.test", "2A00F10E")
    static let demo3 = "demo3@example.test"

    static func imCluster(sessionLimit: Int? = nil, _ body: (TestCluster) async throws -> Void) async throws {
        var options = TestCluster.Options()
        options.im = true
        options.imSessionLimit = sessionLimit
        try await TestCluster.with(options) { cluster in
            for (email, pin) in [(demo1, pin1), (demo2, pin2)] {
                try cluster.provision(email: email, pin: pin)
                try cluster.startDevice(pin: pin)
            }
            try await body(cluster)
        }
    }

    @Test func aDeviceLogsInAndMessagesPresenceAndContactsGoBothWays() async throws {
        try await Self.imCluster { cluster in
            let desk = try await cluster.desk(Self.demo3)
            try await cluster.imLogin(pin: Self.pin1, jid: Self.demo1)
            let session = try await cluster.imSession(pin: Self.pin1)
            #expect(session.state == "logged-in" && session.jid == Self.demo1, "\(session)")
            // The contacts: the shared roster, with the desktop user's presence arriving.
            try await cluster.waitFor("the contacts") { !cluster.shown(pin: Self.pin1, service: "im-contacts").isEmpty }
            let contacts = cluster.shown(pin: Self.pin1, service: "im-contacts")[0].contacts ?? []
            #expect(Set(contacts.map(\.jid)).isSuperset(of: [Self.demo2, Self.demo3]))
            try await cluster.waitFor("demo3 available on the device") {
                cluster.shown(pin: Self.pin1, service: "im-presence").contains { $0.jid == Self.demo3 && $0.presence == "available" }
            }
            // Desktop → device.
            try await desk.send(to: Self.demo1, body: "Mittag um 12? <ja> & gut", id: "desk-1")
            try await cluster.waitFor("the message on the device") { cluster.shown(pin: Self.pin1, service: "im").contains { $0.id == "desk-1" } }
            let got = try #require(cluster.shown(pin: Self.pin1, service: "im").first { $0.id == "desk-1" })
            #expect(got.from == Self.demo3 && got.toJID == Self.demo1 && got.body == "Mittag um 12? <ja> & gut")
            // Device → desktop, and its echo line.
            try cluster.control(pin: Self.pin1, ["im", "send", "--to", Self.demo3, "--body", "Ja, bis gleich"])
            try await cluster.waitFor("the desktop receives it") { desk.received.contains { $0.body == "Ja, bis gleich" } }
            let out = try #require(desk.received.first { $0.body == "Ja, bis gleich" })
            #expect(out.from == Self.demo1 && out.id.hasPrefix("bramble-\(Self.pin1)-"))
            try await cluster.waitFor("the device's own line") { cluster.shown(pin: Self.pin1, service: "im").contains { $0.id == out.id } }
            let echo = try #require(cluster.shown(pin: Self.pin1, service: "im").first { $0.id == out.id })
            #expect(echo.from == Self.demo1 && echo.toJID == Self.demo3 && echo.error == nil && echo.seq != nil)
            // Presence both ways.
            try cluster.control(pin: Self.pin1, ["im", "presence", "busy"])
            try await cluster.waitFor("the desktop sees the device busy") { desk.presence[Self.demo1] == .busy }
            try await desk.setPresence(.away)
            try await cluster.waitFor("the device sees the desktop away") {
                cluster.shown(pin: Self.pin1, service: "im-presence").contains { $0.jid == Self.demo3 && $0.presence == "away" }
            }
            // Each message shown once.
            try await Task.sleep(for: .milliseconds(500))
            #expect(cluster.shown(pin: Self.pin1, service: "im").filter { $0.id == "desk-1" }.count == 1)
            #expect(desk.received.filter { $0.body == "Ja, bis gleich" }.count == 1)
            // A message to someone the IM server does not have: refused, and the device told.
            try cluster.control(pin: Self.pin1, ["im", "send", "--to", "nobody@example.test", "--body", "hallo?"])
            try await cluster.waitFor("the refusal") { cluster.shown(pin: Self.pin1, service: "im").contains { $0.body == "hallo?" && $0.error != nil } }
            // Logout: the session ends, the desktop sees the device go offline.
            try cluster.control(pin: Self.pin1, ["im", "logout"])
            let out2 = try await cluster.imSession(pin: Self.pin1, after: 1)
            #expect(out2.state == "logged-out")
            try await cluster.waitFor("the desktop sees the device offline") { desk.presence[Self.demo1] == .offline }
            await desk.close()
            // Nothing of the password reached the node's log.
            let log = try String(contentsOfFile: "\(cluster.dir)/node-a.log", encoding: .utf8)
            #expect(!log.contains(try cluster.imPassword(Self.demo1)))
        }
    }

    @Test func permissionOffAndAWrongPasswordFail() async throws {
        try await Self.imCluster { cluster in
            try cluster.bramble(["user", "set", Self.demo1, "--im", "off"])
            try await cluster.imLogin(pin: Self.pin1, jid: Self.demo1)
            let off = try await cluster.imSession(pin: Self.pin1)
            #expect(off.state == "failed" && off.reason?.contains("not allowed") == true, "\(off)")
            try cluster.bramble(["user", "set", Self.demo1, "--im", "on"])
            try await cluster.imLogin(pin: Self.pin1, jid: Self.demo1, password: "not-the-password")
            let wrong = try await cluster.imSession(pin: Self.pin1, after: 1)
            #expect(wrong.state == "failed" && wrong.reason?.contains("refused the user ID or password") == true, "\(wrong)")
            try await cluster.imLogin(pin: Self.pin1, jid: Self.demo1)
            #expect(try await cluster.imSession(pin: Self.pin1, after: 2).state == "logged-in")
            // Turning IM off logs the session out.
            try cluster.bramble(["user", "set", Self.demo1, "--im", "off"])
            let revoked = try await cluster.imSession(pin: Self.pin1, after: 3)
            #expect(revoked.state == "logged-out" && revoked.reason?.contains("no longer allowed") == true, "\(revoked)")
        }
    }

    /// At the pair's maximum with no idle timeout: "Server Busy". With a timeout set, an
    /// idle session is logged out (the sweep, or the login needing its room) and the
    /// waiting device gets in.
    @Test func theMaximumGivesServerBusyUntilAnIdleSessionIsLoggedOut() async throws {
        try await Self.imCluster { cluster in
            try cluster.bramble(["im", "settings", "--max-sessions", "1"])
            try await cluster.imLogin(pin: Self.pin1, jid: Self.demo1)
            #expect(try await cluster.imSession(pin: Self.pin1).state == "logged-in")
            try await cluster.imLogin(pin: Self.pin2, jid: Self.demo2)
            let busy = try await cluster.imSession(pin: Self.pin2)
            #expect(busy.state == "server-busy" && busy.reason?.hasPrefix("Server Busy") == true, "\(busy)")
            // A timeout: demo1's session, idle past it, is logged out.
            try cluster.bramble(["im", "settings", "--idle-timeout", "2s"])
            let idled = try await cluster.imSession(pin: Self.pin1, after: 1)
            #expect(idled.state == "logged-out" && idled.reason?.contains("idle") == true, "\(idled)")
            try await cluster.imLogin(pin: Self.pin2, jid: Self.demo2)
            #expect(try await cluster.imSession(pin: Self.pin2, after: 1).state == "logged-in")
            let status = try cluster.bramble(["im", "sessions", "--json"])
            #expect(status.contains(Self.demo2) && !status.contains(Self.demo1))
        }
    }

    /// With no maximum for the pair, the server's own limit (`--im-session-limit`) gives "Failed".
    @Test func theServersOwnLimitGivesFailed() async throws {
        try await Self.imCluster(sessionLimit: 1) { cluster in
            try await cluster.imLogin(pin: Self.pin1, jid: Self.demo1)
            #expect(try await cluster.imSession(pin: Self.pin1).state == "logged-in")
            try await cluster.imLogin(pin: Self.pin2, jid: Self.demo2)
            let failed = try await cluster.imSession(pin: Self.pin2)
            #expect(failed.state == "failed" && failed.reason?.contains("limit of 1") == true, "\(failed)")
        }
    }
}
