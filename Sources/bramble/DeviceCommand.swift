import ArgumentParser
import BrambleAPI
import BrambleCore
import BrambleNet
import Foundation

struct DeviceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "device", abstract: "Provision (wired activation), list, show, lock and wipe devices.",
        subcommands: [Provision.self, List.self, Show.self, Lock.self, Wipe.self, WipeWork.self])

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
            try connection.show(try await connection.call(.GET, AdminAPI.device(pin), as: DeviceRecord.self), human: describeInDetail)
        }
    }

    struct Lock: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set a new device password and lock the device.",
            discussion: """
                The password (8–64 characters, from --password-file; '-': standard input) never
                leaves this command but over the API's TLS: the node keeps only a salted slow
                hash of it, which it signs into the command with the domain's key. The primary
                sends the command; the device locks, keeps the hash, and confirms. `bramble
                device show PIN` gives the command's state (queued, sent, confirmed) and when
                the device locked.
                """)
        @OptionGroup var connection: Connection
        @Argument(help: "The device PIN.") var pin: String
        @Option(help: "Read the new device password from this file ('-': standard input).") var passwordFile: String

        func validate() throws { try DeviceCommand.check(pin) }

        func run() async throws {
            guard let password = PasswordFile.read(passwordFile) else { throw ValidationError("cannot read the password from \(passwordFile)") }
            do throws(ActivationPassword.Refused) { try DeviceLock.validate(password) } catch { throw ValidationError(error.description) }
            try await DeviceCommand.send(.lock, pin: pin, body: DeviceLockRequest(password: password), connection)
        }
    }

    struct Wipe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete all device data and keys (the device confirms first, then wipes).",
            discussion: """
                The device confirms, then deletes its credential, its items, its outbox and its
                settings, and stops. Once its confirmation is recorded the device is "wiped":
                the node forgets its master key and the relay no longer lets it connect. A wipe
                not yet confirmed outlasts the device's activation again: a lost device
                activated anew wipes before its activation completes.
                """)
        @OptionGroup var connection: Connection
        @Argument(help: "The device PIN.") var pin: String

        func validate() throws { try DeviceCommand.check(pin) }
        func run() async throws { try await DeviceCommand.send(.wipe, pin: pin, body: nil, connection) }
    }

    struct WipeWork: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "wipe-work",
            abstract: "Delete only the work data (and the keys that reach the company); the device's own settings stay.",
            discussion: """
                The device confirms, then deletes its credential, its items and its outbox, and
                stops; its own settings (the device password a lock set) stay. Once its
                confirmation is recorded the device is "wiped" (work), as after `wipe`.
                """)
        @OptionGroup var connection: Connection
        @Argument(help: "The device PIN.") var pin: String

        func validate() throws { try DeviceCommand.check(pin) }
        func run() async throws { try await DeviceCommand.send(.wipeWork, pin: pin, body: nil, connection) }
    }

    static func check(_ pin: String) throws {
        guard PIN(pin) != nil else { throw ValidationError("PIN must be 1–8 hex digits, got '\(pin)'") }
    }

    static func send(_ kind: ITCommand.Kind, pin: String, body: DeviceLockRequest?, _ connection: Connection) async throws {
        let command = try await connection.call(.POST, AdminAPI.deviceCommand(pin, kind.name), body: body, expect: 202, as: DeviceCommandRecord.self)
        try connection.show(command) {
            "\($0.command) queued for device \($0.pin) as command \($0.id); `bramble device show \($0.pin)` says when the device confirms"
        }
    }
}
