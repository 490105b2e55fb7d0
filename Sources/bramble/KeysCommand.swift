import ArgumentParser
import BrambleAPI
import BrambleNet

/// Device master keys at rest (sealed under the nodes' key-encryption key).
struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Device master keys at rest: finish a rotation of the key-encryption key.",
        subcommands: [Reseal.self])

    struct Reseal: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Seal every device master key still under the previous key-encryption key under the new one.",
            discussion: """
                Run it once both nodes have been restarted with the new key in key-encryption-key-file \
                and the old one in previous-key-encryption-key-file; then remove the previous key from \
                both (README: Rotating secrets).
                """)
        @OptionGroup var connection: Connection

        func run() async throws {
            let done = try await connection.call(.POST, AdminAPI.resealKeys, as: KeysResealed.self)
            try connection.show(done) { "sealed \($0.resealed) device master key(s) again under the new key-encryption key" }
        }
    }
}
