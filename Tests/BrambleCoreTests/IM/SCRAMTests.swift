import Foundation
import Testing

@testable import BrambleCore

/// SCRAM-SHA-1 on RFC 5802's example, with the password and with cached keys, against
/// servers that lie; PBKDF2-HMAC-SHA1 on RFC 6070's vectors.
@Suite struct SCRAMTests {
    // RFC 5802 §5.
    static let nonce = "fyko+d2lbbFgONRv9qkxdawL"
    static let serverFirst = "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
    static let clientFinal = "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
    static let serverFinal = "v=rmF9pqV8S7suAoZWja4dJRkFsKQ="
    static let salt = Array(Data(base64Encoded: "QSXCR+Q6sek8bf92")!)

    func client(_ credential: SCRAMCredential = .password("pencil")) -> SCRAMClient {
        SCRAMClient(username: "user", credential: credential, clientNonce: Self.nonce)
    }

    func reason(_ body: () throws(SCRAMError) -> Void) -> SCRAMError.Reason? {
        do throws(SCRAMError) {
            try body()
            return nil
        } catch {
            return error.reason
        }
    }

    @Test func rfc5802ExampleWithThePassword() throws {
        var scram = client()
        #expect(scram.clientFirstMessage() == "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL")
        #expect(scram.keys == nil)
        #expect(try scram.clientFinalMessage(serverFirst: Self.serverFirst) == Self.clientFinal)
        try scram.verify(serverFinal: Self.serverFinal)
        let keys = try #require(scram.keys)
        #expect(keys.salt == Self.salt && keys.iterations == 4096)
        #expect(keys == SCRAMKeys.derive(password: "pencil", salt: Self.salt, iterations: 4096))
        // The keys survive a trip through a cache file.
        #expect(try JSONDecoder().decode(SCRAMKeys.self, from: JSONEncoder().encode(keys)) == keys)
    }

    @Test func rfc5802ExampleWithCachedKeys() throws {
        let keys = SCRAMKeys.derive(password: "pencil", salt: Self.salt, iterations: 4096)
        var scram = client(.keys(keys))
        #expect(try scram.clientFinalMessage(serverFirst: Self.serverFirst) == Self.clientFinal)
        try scram.verify(serverFinal: Self.serverFinal)
        #expect(scram.keys == keys)
    }

    @Test func cachedKeysForAnotherSaltOrCountAreRefused() {
        let keys = SCRAMKeys.derive(password: "pencil", salt: Self.salt, iterations: 4096)
        var scram = client(.keys(keys))
        #expect(reason { () throws(SCRAMError) in _ = try scram.clientFinalMessage(serverFirst: "r=\(Self.nonce)xyz,s=QSXCR+Q6sek8bf93,i=4096") } == .saltChanged)
        #expect(reason { () throws(SCRAMError) in _ = try scram.clientFinalMessage(serverFirst: "r=\(Self.nonce)xyz,s=QSXCR+Q6sek8bf92,i=4097") } == .saltChanged)
        #expect(scram.keys == nil)
        var short = client(.keys(SCRAMKeys(salt: Self.salt, iterations: 4096, clientKey: [1, 2], serverKey: keys.serverKey)))
        #expect(reason { () throws(SCRAMError) in _ = try short.clientFinalMessage(serverFirst: Self.serverFirst) } == .invalidKeys)
    }

    @Test func aServerThatDoesNotExtendOurNonceIsRefused() {
        var scram = client()
        for first in [
            "r=fyko+d2lbbFgONRv9qkxdawX3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
            "r=3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
            "r=fyko+d2lbbFgONRv9qkxdawL,s=QSXCR+Q6sek8bf92,i=4096",  // nothing of its own
            "r=fyko+d2lbbFgONRv9qkxda,s=QSXCR+Q6sek8bf92,i=4096",
        ] {
            #expect(reason { () throws(SCRAMError) in _ = try scram.clientFinalMessage(serverFirst: first) } == .nonceMismatch, "\(first)")
        }
    }

    @Test func iterationCountsOutOfBoundsAreRefusedBeforeAnyWork() {
        var scram = client()
        for (i, expected) in [("0", 0), ("10000000", 10_000_000), ("100001", 100_001), ("99999999999999999999999", Int.max)] {
            #expect(reason { () throws(SCRAMError) in _ = try scram.clientFinalMessage(serverFirst: "r=\(Self.nonce)x,s=QSXCR+Q6sek8bf92,i=\(i)") }
                == .iterationsOutOfBounds(expected))
        }
        scram.maxIterations = 16
        #expect(reason { () throws(SCRAMError) in _ = try scram.clientFinalMessage(serverFirst: Self.serverFirst) } == .iterationsOutOfBounds(4096))
        #expect(reason { () throws(SCRAMError) in _ = try scram.clientFinalMessage(serverFirst: "r=\(Self.nonce)x,s=QSXCR+Q6sek8bf92,i=16") } == nil)
    }

    @Test func malformedServerFirstMessagesAreRefused() {
        var scram = client()
        let bad = [
            "", "r=\(Self.nonce)x", "r=\(Self.nonce)x,s=QSXCR+Q6sek8bf92", "s=QSXCR+Q6sek8bf92,r=\(Self.nonce)x,i=1",
            "r=\(Self.nonce)x,s=not base64!,i=1", "r=\(Self.nonce)x,s=,i=1", "r=\(Self.nonce)x,s=QSXCR+Q6sek8bf92,i=-1",
            "r=\(Self.nonce)x,s=QSXCR+Q6sek8bf92,i=", "r=\(Self.nonce)x,s=QSXCR+Q6sek8bf92,i=4O96", "m=ext,r=\(Self.nonce)x,s=QSXCR+Q6sek8bf92,i=1",
            "r=\(Self.nonce)x y,s=QSXCR+Q6sek8bf92,i=1",
        ]
        for first in bad {
            let r = reason { () throws(SCRAMError) in _ = try scram.clientFinalMessage(serverFirst: first) }
            guard case .malformedServerFirst? = r else { Issue.record("\(first.debugDescription): \(String(describing: r))"); continue }
        }
        // Extensions after i= are ignored.
        #expect(reason { () throws(SCRAMError) in _ = try scram.clientFinalMessage(serverFirst: Self.serverFirst + ",x=1") } == nil)
    }

    @Test func theServersSignatureMustMatch() throws {
        var scram = client()
        #expect(reason { () throws(SCRAMError) in try scram.verify(serverFinal: Self.serverFinal) } == .outOfOrder)
        _ = try scram.clientFinalMessage(serverFirst: Self.serverFirst)
        #expect(reason { () throws(SCRAMError) in try scram.verify(serverFinal: "v=rmF9pqV8S7suAoZWja4dJRkFsKA=") } == .serverSignatureMismatch)
        #expect(reason { () throws(SCRAMError) in try scram.verify(serverFinal: "v=rmF9pqV8S7suAoZWja4dJRkF") } == .serverSignatureMismatch)
        #expect(reason { () throws(SCRAMError) in try scram.verify(serverFinal: "v=") } == .serverSignatureMismatch)
        #expect(reason { () throws(SCRAMError) in try scram.verify(serverFinal: "v=***") } == .malformedServerFinal)
        #expect(reason { () throws(SCRAMError) in try scram.verify(serverFinal: "") } == .malformedServerFinal)
        #expect(reason { () throws(SCRAMError) in try scram.verify(serverFinal: "e=invalid-proof") } == .serverError("invalid-proof"))
        #expect(reason { () throws(SCRAMError) in try scram.verify(serverFinal: "e=other\u{1B}[2J,x=1") } == .serverError("other\u{FFFD}[2J"))
        // A wrong password: the server's signature cannot match.
        var wrong = client(.password("pencil!"))
        _ = try wrong.clientFinalMessage(serverFirst: Self.serverFirst)
        #expect(reason { () throws(SCRAMError) in try wrong.verify(serverFinal: Self.serverFinal) } == .serverSignatureMismatch)
        #expect(reason { () throws(SCRAMError) in _ = try wrong.clientFinalMessage(serverFirst: "e=unknown-user") } == .serverError("unknown-user"))
        #expect(!SCRAMError(.serverError("x")).description.isEmpty)
    }

    @Test func theUsernameIsEscaped() {
        let scram = SCRAMClient(username: "a=b,c", credential: .password("p"), clientNonce: "abc")
        #expect(scram.clientFirstMessage() == "n,,n=a=3Db=2Cc,r=abc")
    }

    /// RFC 6070's PBKDF2-HMAC-SHA1 vectors (all but the one of 16,777,216 iterations).
    @Test func pbkdf2HMACSHA1MatchesRFC6070() {
        func hex(_ s: String) -> [UInt8] {
            let digits = Array(s.filter { $0 != " " })
            return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
        }
        let p = Array("password".utf8), s = Array("salt".utf8)
        #expect(PBKDF2.sha1(password: p, salt: s, iterations: 1) == hex("0c 60 c8 0f 96 1f 0e 71 f3 a9 b5 24 af 60 12 06 2f e0 37 a6"))
        #expect(PBKDF2.sha1(password: p, salt: s, iterations: 2) == hex("ea 6c 01 4d c7 2d 6f 8c cd 1e d9 2a ce 1d 41 f0 d8 de 89 57"))
        #expect(PBKDF2.sha1(password: p, salt: s, iterations: 4096) == hex("4b 00 79 01 b7 65 48 9a be ad 49 d9 26 f7 21 d0 65 a4 29 c1"))
        #expect(PBKDF2.sha1(password: Array("passwordPASSWORDpassword".utf8), salt: Array("saltSALTsaltSALTsaltSALTsaltSALTsalt".utf8), iterations: 4096, keyLength: 25)
            == hex("3d 2e ec 4f e4 1c 84 9b 80 c8 d8 36 62 c0 e4 4a 8b 29 1a 96 4c f2 f0 70 38"))
        #expect(PBKDF2.sha1(password: Array("pass\0word".utf8), salt: Array("sa\0lt".utf8), iterations: 4096, keyLength: 16)
            == hex("56 fa 6a a7 55 48 09 9d cc 37 d7 f0 34 25 e0 c3"))
    }
}
