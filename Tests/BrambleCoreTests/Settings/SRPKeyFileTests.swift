import BrambleCore
import Crypto
import Foundation
import Testing

/// The SRP key file (`SRP_ID BASE64_KEY` per line), as the relay and the nodes read it.
@Suite struct SRPKeyFileTests {
    let a = SymmetricKey(size: .bits256), b = SymmetricKey(size: .bits256)

    @Test func keysAreReadWithCommentsBlankLinesAndEitherLineEnding() throws {
        for ending in ["\n", "\r\n"] {
            let text = ["# the pair's keys", "bramble \(a.base64)", "", "other \(b.base64)  # second"].joined(separator: ending) + ending
            let keys = try SRPKeyFile.parse(text, path: "srp-keys")
            #expect(Set(keys.keys) == ["bramble", "other"], "\(ending.debugDescription)")
            #expect(keys["bramble"] == a && keys["other"] == b)
        }
    }

    @Test func aBadLineIsRefusedWithItsNumber() {
        for (text, line) in [("bramble \(a.base64)\r\nbroken\r\n", 2), ("bramble notbase64", 1), ("bramble \(a.base64) extra", 1), ("", 0)] {
            do {
                _ = try SRPKeyFile.parse(text, path: "keys")
                Issue.record("\(text.debugDescription) was accepted")
            } catch {
                let message = "\(error)"
                #expect(line == 0 ? message.contains("holds no SRP keys") : message.contains("keys:\(line):"), "\(message)")
            }
        }
    }
}
