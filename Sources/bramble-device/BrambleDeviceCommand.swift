import ArgumentParser
import BrambleCore
import BrambleDevice
import BrambleNet
import Foundation
import Logging

@main
struct BrambleDeviceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bramble-device",
        abstract: "A simulated BlackBerry device, or many of them.",
        subcommands: [Run.self, Load.self, Control.self])
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Connect one device and show what it receives.",
        discussion: """
            Stays connected to the relay (reconnecting with back-off), decrypts each item
            with the device's master key, shows it once, and acknowledges it. Repeats are
            dropped by sequence number, remembered across restarts in the state file and
            the JSON-lines log. Stop with SIGTERM or Ctrl-C.
            """)

    @Option(help: "Credential file written by `bramble device provision`.") var credential: String
    @OptionGroup var relay: RelayOptions
    @Option(help: "State file remembering shown items (default: CREDENTIAL.state).") var state: String?
    @Option(help: "Append one JSON line per shown item to this file.") var log: String?
    @Flag(help: "Print one JSON line per shown item on standard output.") var json = false
    @Option(help: "trace, debug, info, notice, warning, error or critical.") var logLevel: String?

    func run() async throws {
        BrambleLogging.bootstrap(level: logLevel)
        let (address, tls) = try relay.endpoint()
        var config = DeviceAgent.Configuration(credential: try CredentialFile.load(credential), relay: address, tls: tls)
        config.statePath = state ?? credential + ".state"
        config.logPath = log
        config.printJSON = json
        let agent = try DeviceAgent(configuration: config, logger: Logger(label: "bramble-device"))
        try await withSignalCancellation { await agent.run() }
    }
}

struct Load: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run every device whose credential is in a directory, in one process.",
        discussion: "Prints a progress line every few seconds with the number of items shown.")

    @Option(help: "Directory of *.json credential files.") var credentials: String
    @OptionGroup var relay: RelayOptions
    @Option(help: "Directory for each device's JSON-lines log and state (PIN.log, PIN.state).") var logDir: String?
    @Option(help: "trace, debug, info, notice, warning, error or critical.") var logLevel: String?

    func run() async throws {
        BrambleLogging.bootstrap(level: logLevel ?? "warning")
        let (address, tls) = try relay.endpoint()
        var agents: [DeviceAgent] = []
        for credential in try CredentialFile.loadDirectory(credentials) {
            var config = DeviceAgent.Configuration(credential: credential, relay: address, tls: tls)
            config.acceptsControl = false
            if let logDir {
                config.logPath = "\(logDir)/\(config.credential.pin).log"
                config.statePath = "\(logDir)/\(config.credential.pin).state"
            }
            agents.append(try DeviceAgent(configuration: config, logger: Logger(label: "bramble-device")))
        }
        let all = agents
        print("running \(all.count) devices against \(address)\(tls == nil ? " (no TLS)" : "")")
        try await withSignalCancellation {
            await withDiscardingTaskGroup { group in
                for agent in all { group.addTask { await agent.run() } }
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(5))
                        print("shown: \(all.reduce(0) { $0 + $1.shownCount }) items across \(all.count) devices")
                    }
                }
            }
        }
    }
}

struct Control: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Drive a running device: `more MESSAGE_ID` asks for the next chunk of a mail.",
        discussion: """
            Writes the request into the device's control spool (STATE.control/); the running
            device takes it into its outbox, sends it, and retries until the server has
            recorded it. The chunk arrives as a JSON line with service "more", message_id,
            offset, body and more_available. `make status` gives each device's control
            command as its `control` field. Exits 2 on bad input, 1 if the device's state
            has no spool (never run with this state file).
            """)

    @Option(help: "The running device's state file (run --state; default CREDENTIAL.state).") var state: String
    @Argument(help: "The verb: more.") var verb: String
    @Argument(help: "The mail's Message-ID, as its JSON line gives it.") var messageID: String

    func validate() throws {
        guard verb == "more" else { throw ValidationError("unknown verb '\(verb)'; the only verb is: more MESSAGE_ID") }
        guard MailItem.isValidMessageID(messageID) else {
            throw ValidationError("MESSAGE_ID must be 1–\(MailItem.maxMessageIDLength) bytes with no space or control character")
        }
    }

    func run() throws {
        do {
            let file = try DeviceControlRequest(more: messageID).submit(statePath: state)
            print("queued: more \(messageID) (\(file))")
        } catch {
            FileHandle.standardError.write(Data("bramble-device control: no running device with state \(state) (\(error.localizedDescription))\n".utf8))
            throw ExitCode.failure
        }
    }
}
