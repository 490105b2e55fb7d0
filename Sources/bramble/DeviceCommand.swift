import ArgumentParser
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
            struct Body: Encodable { var email: String; var pin: String }
            let reply = try await connection.send(.POST, "/admin/devices", json: Body(email: email, pin: pin))
            guard reply.status == 201 else { throw Failure(status: reply.status, message: reply.errorMessage) }
            let provisioned = try reply.decode(Provisioned.self)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let data = try encoder.encode(provisioned.credential)
            guard FileManager.default.createFile(atPath: out, contents: data, attributes: [.posixPermissions: 0o600]) else {
                throw ValidationError("cannot write \(out)")
            }
            if connection.json {
                let summary = try JSONSerialization.data(withJSONObject: [
                    "pin": provisioned.device.pin, "email": provisioned.device.email, "credential": out,
                ], options: [.sortedKeys])
                print(String(decoding: summary, as: UTF8.self))
            } else {
                print("provisioned device \(provisioned.device.pin) for \(provisioned.device.email); credential written to \(out)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List devices.")
        @OptionGroup var connection: Connection

        func run() async throws {
            let reply = try await connection.send(.GET, "/admin/devices")
            try connection.show(reply, as: Devices.self, expect: 200) { d in
                d.devices.isEmpty ? "no devices" : d.devices.map(describe).joined(separator: "\n")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one device.")
        @OptionGroup var connection: Connection
        @Argument(help: "The device PIN.") var pin: String

        func run() async throws {
            guard PIN(pin) != nil else { throw ValidationError("PIN must be 1–8 hex digits, got '\(pin)'") }
            let reply = try await connection.send(.GET, "/admin/devices/\(pin)")
            try connection.show(reply, as: Device.self, expect: 200, human: describe)
        }
    }
}
