import ArgumentParser
import BrambleAPI
import BrambleCore
import BrambleNet
import Foundation

struct DeviceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "device", abstract: "Provision (wired activation), list and show devices.",
        subcommands: [Provision.self, List.self, Show.self])

    struct Provision: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a device for a user and write its credential file.",
            discussion: """
                Wired activation, as BES did over USB through Desktop Manager: the node makes
                the device's 256-bit master key, and the credential file (mode 0600) carries
                it to `bramble-device run --credential FILE`. Keep the file secret.
                """)
        @OptionGroup var connection: Connection
        @Option(help: "The owner's e-mail address (the user must exist).") var email: String
        @Option(help: "The device PIN, 1–8 hex digits.") var pin: String
        @Option(help: "Where to write the credential file.") var out: String

        func validate() throws {
            guard PIN(pin) != nil else { throw ValidationError("--pin must be 1–8 hex digits, got '\(pin)'") }
            guard !FileManager.default.fileExists(atPath: out) else {
                throw ValidationError("\(out) already exists; choose another --out or remove it")
            }
        }

        func run() async throws {
            let provisioned = try await connection.call(.POST, AdminAPI.devices, body: NewDevice(email: email, pin: pin), expect: 201,
                                                        as: Provisioned.self)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let data = try encoder.encode(provisioned.credential)
            do { try SecretFilePermissions.create(out, bytes: data, what: "device credential") } catch { throw ValidationError("\(error)") }
            struct Summary: Encodable { var pin: String; var email: String; var credential: String }
            try connection.show(Summary(pin: provisioned.device.pin, email: provisioned.device.email, credential: out)) {
                "provisioned device \($0.pin) for \($0.email); credential written to \($0.credential)"
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List devices.")
        @OptionGroup var connection: Connection

        func run() async throws {
            let list = try await connection.call(.GET, AdminAPI.devices, as: DeviceList.self)
            try connection.show(list) { $0.devices.isEmpty ? "no devices" : $0.devices.map(describe).joined(separator: "\n") }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one device.")
        @OptionGroup var connection: Connection
        @Argument(help: "The device PIN.") var pin: String

        func run() async throws {
            guard PIN(pin) != nil else { throw ValidationError("PIN must be 1–8 hex digits, got '\(pin)'") }
            try connection.show(try await connection.call(.GET, AdminAPI.device(pin), as: DeviceRecord.self), human: describe)
        }
    }
}
