@testable import BrambleTestSupport
import BrambleNet
import Crypto
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import Testing

/// The IM host (scripts/im-private, scripts/im.sh: Prosody): XMPP over TLS from the first
/// byte, SASL SCRAM-SHA-1 offered, the accounts the script wrote itself (demo users and
/// extra users) able to log in, their passwords only in a 0600 file (never in Prosody's
/// log or in any process's arguments), and a restart on the same data.
@Suite(.serialized) struct IMHostTests {
    @Test func prosodyOffersSCRAMOverDirectTLSItsAccountsLogInAndPasswordsStayInTheirFile() async throws {
        let dir = NSTemporaryDirectory() + "bramble-test-im-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let host = try TestIMHost.start(in: dir, extraUsers: 3)
        defer { host.stop() }  // runs before the removal above, failed expectations or not

        let header = "<?xml version='1.0'?><stream:stream to='\(host.domain)' xmlns='jabber:client' "
            + "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
        let features = try await XMPPConnection.with(host.xmpp, tls: host.tls) { xmpp in
            try await xmpp.send(header)
            return try await xmpp.read(until: "</stream:features>")
        }
        #expect(features.contains("<stream:features") && features.contains("<mechanism>SCRAM-SHA-1</mechanism>"), "\(features)")
        // TLS from the first byte: a plaintext stream header gets no stream back.
        let plain = try? await XMPPConnection.with(host.xmpp, tls: nil) { xmpp in
            try await xmpp.send(header)
            return try await xmpp.read(until: "</stream:features>")
        }
        #expect(plain == nil, "a plaintext client was answered: \(plain ?? "")")

        #expect(host.domain == "example.test")
        #expect(Set(host.passwords.keys) == Set((1...4).map { "demo\($0)@example.test" } + ["im-sender@example.test"]
                                                + (1...3).map { "imbench\($0)@example.test" }), "\(host.passwords.keys)")
        for jid in ["demo1@example.test", "im-sender@example.test", "imbench3@example.test"] {
            #expect(try await scramLogin(host, jid: jid, password: host.passwords[jid] ?? ""), "\(jid) logs in")
        }
        #expect(try await !scramLogin(host, jid: "demo2@example.test", password: "wrong"), "a wrong password is refused")

        // The passwords: only in their file, 0600; never in Prosody's log nor in anyone's argv.
        let mode = try FileManager.default.attributesOfItem(atPath: host.passwordsFile)[.posixPermissions] as? Int
        #expect(mode == 0o600, "the passwords file is 0600, not \(String(mode ?? 0, radix: 8))")
        let log = try String(contentsOfFile: host.log, encoding: .utf8)
        #expect(log.contains("Authenticated as demo1@example.test"), "Prosody logged the logins: \(log.suffix(500))")
        let argv = try runCommand("/bin/ps", ["-eww", "-o", "args="])
        #expect(argv.contains(dir + "/prosody.cfg.lua"), "ps shows Prosody's command line")
        for (jid, password) in host.passwords {
            #expect(!log.contains(password), "\(jid)'s password is in Prosody's log")
            #expect(!argv.contains(password), "\(jid)'s password is in a process's arguments")
        }

        // A restart: another Prosody on the same port and accounts.
        let before = try #require(host.prosodyPID, "Prosody runs")
        try host.restart()
        let after = try #require(host.prosodyPID, "Prosody runs again")
        #expect(after != before && !TestIMHost.isRunning(before), "the first Prosody is gone: \(before) → \(after)")
        #expect(try await scramLogin(host, jid: "demo3@example.test", password: host.passwords["demo3@example.test"] ?? ""))
        host.stop()
        #expect(host.prosodyPID == nil && !TestIMHost.isRunning(after), "stopped by PID")
    }

    /// A SASL SCRAM-SHA-1 login (RFC 5802, without channel binding) on a new stream: true
    /// on <success/> whose server signature verifies, false on <failure/>.
    func scramLogin(_ host: TestIMHost, jid: String, password: String) async throws -> Bool {
        let user = String(jid.split(separator: "@")[0])
        return try await XMPPConnection.with(host.xmpp, tls: host.tls) { xmpp in
            try await xmpp.send("<?xml version='1.0'?><stream:stream to='\(host.domain)' xmlns='jabber:client' "
                                + "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")
            _ = try await xmpp.read(until: "</stream:features>")
            let nonce = Data((0..<18).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
            let clientFirstBare = "n=\(user),r=\(nonce)"
            try await xmpp.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>"
                                + Data(("n,," + clientFirstBare).utf8).base64EncodedString() + "</auth>")
            let challenge = try await xmpp.read(until: "</challenge>")
            let serverFirst = try #require(Self.saslPayload(challenge, "challenge"))
            let fields = Dictionary(serverFirst.split(separator: ",").map { ($0.prefix(1), String($0.dropFirst(2))) }) { a, _ in a }
            let combined = try #require(fields["r"]), salt = try #require(fields["s"].flatMap { Data(base64Encoded: $0) })
            let iterations = try #require(fields["i"].flatMap { Int($0) })
            #expect(combined.hasPrefix(nonce))
            let salted = Self.pbkdf2SHA1(password: Data(password.utf8), salt: salt, iterations: iterations)
            let clientKey = Data(HMAC<Insecure.SHA1>.authenticationCode(for: Data("Client Key".utf8), using: SymmetricKey(data: salted)))
            let storedKey = Data(Insecure.SHA1.hash(data: clientKey))
            let clientFinalWithoutProof = "c=biws,r=\(combined)"
            let authMessage = Data("\(clientFirstBare),\(serverFirst),\(clientFinalWithoutProof)".utf8)
            let signature = Data(HMAC<Insecure.SHA1>.authenticationCode(for: authMessage, using: SymmetricKey(data: storedKey)))
            let proof = Data(zip(clientKey, signature).map { $0 ^ $1 }).base64EncodedString()
            try await xmpp.send("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                                + Data("\(clientFinalWithoutProof),p=\(proof)".utf8).base64EncodedString() + "</response>")
            let outcome = try await xmpp.read(untilAnyOf: ["</success>", "</failure>"])
            guard outcome.contains("<success") else { return false }
            let serverKey = Data(HMAC<Insecure.SHA1>.authenticationCode(for: Data("Server Key".utf8), using: SymmetricKey(data: salted)))
            let serverSignature = Data(HMAC<Insecure.SHA1>.authenticationCode(for: authMessage, using: SymmetricKey(data: serverKey)))
            #expect(Self.saslPayload(outcome, "success") == "v=" + serverSignature.base64EncodedString(), "the server proves it knows the key")
            return true
        }
    }

    static func saslPayload(_ xml: String, _ element: String) -> String? {
        guard let end = xml.range(of: "</\(element)>"), let start = xml[..<end.lowerBound].range(of: ">", options: .backwards),
              let data = Data(base64Encoded: String(xml[start.upperBound..<end.lowerBound])) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    /// PBKDF2-HMAC-SHA1 for one block (SHA-1's 20 bytes: SCRAM-SHA-1's salted password).
    static func pbkdf2SHA1(password: Data, salt: Data, iterations: Int) -> Data {
        let key = SymmetricKey(data: password)
        var u = Data(HMAC<Insecure.SHA1>.authenticationCode(for: salt + Data([0, 0, 0, 1]), using: key))
        var result = u
        for _ in 1..<iterations {
            u = Data(HMAC<Insecure.SHA1>.authenticationCode(for: u, using: key))
            for i in result.indices { result[i] ^= u[i] }
        }
        return result
    }
}

/// One XMPP client connection, TCP (with TLS from the first byte when given a context):
/// text out, text in until a marker arrives.
struct XMPPConnection {
    let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    var received = ""

    static func with<T: Sendable>(_ address: HostPort, tls: NIOSSLContext?, _ body: (inout XMPPConnection) async throws -> T) async throws -> T {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5))
            .connect(host: address.host, port: address.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: nil)) }
                    // No test waits on a silent server: the connection ends after 10 s whatever happens.
                    channel.eventLoop.scheduleTask(in: .seconds(10)) { channel.close(promise: nil) }
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            var connection = XMPPConnection(outbound: outbound, inbound: inbound.makeAsyncIterator())
            return try await body(&connection)
        }
    }

    func send(_ text: String) async throws { try await outbound.write(ByteBuffer(string: text)) }

    mutating func read(until marker: String) async throws -> String { try await read(untilAnyOf: [marker]) }

    /// Everything received up to and including the first of `markers`; what follows stays
    /// for the next read. A connection that does not get there is closed after 10 s.
    mutating func read(untilAnyOf markers: [String]) async throws -> String {
        while true {
            if let end = markers.compactMap({ received.range(of: $0)?.upperBound }).min() {
                defer { received = String(received[end...]) }
                return String(received[..<end])
            }
            guard let chunk = try await inbound.next() else {
                throw SetupError("the connection closed before \(markers); received \(received.suffix(300))")
            }
            received += String(buffer: chunk)
        }
    }
}
