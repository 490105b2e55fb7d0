import Crypto

/// The relay's SRP key file: one `SRP_ID BASE64_KEY` per line, `#` starts a comment.
/// Keys live in a file (mode 0600), never on a command line where `ps` would show them;
/// the daemons read it as a secret (BrambleNet's `SecretFile`) and parse it here, in the
/// pure core, where the fuzz target reaches it.
public enum SRPKeyFile {
    public struct LoadError: Error, CustomStringConvertible {
        public let description: String
    }

    /// The keys in `text`, the contents of the file at `path` (which errors name).
    public static func parse(_ text: String, path: String) throws -> [String: SymmetricKey] {
        var keys: [String: SymmetricKey] = [:]
        for (number, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let fields = line.split(whereSeparator: \.isWhitespace)
            if fields.isEmpty { continue }
            guard fields.count == 2, SRPIdentifier.isValid(String(fields[0])),
                  let key = SymmetricKey(base64: String(fields[1])) else {
                throw LoadError(description: "\(path):\(number + 1): expected 'SRP_ID BASE64_KEY' with a 32-byte key")
            }
            keys[String(fields[0])] = key
        }
        guard !keys.isEmpty else { throw LoadError(description: "\(path) holds no SRP keys") }
        return keys
    }
}
