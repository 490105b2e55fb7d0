import ArgumentParser
import BrambleCore
import BrambleDevice
import BrambleNet
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOSSL

@main
struct BrambleDeviceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bramble-device",
        abstract: "A simulated BlackBerry device, or many of them.",
        subcommands: [Run.self, Activate.self, Load.self, Control.self])
}

struct Activate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Activate a device over the air with the user's e-mail address and activation password.",
        discussion: """
            BES's Enterprise Activation: no credential file is handed over. The device sends
            an activation request through the relay, which mails it to the address (an
            e-mail with an etp.dat attachment); the user's Bramble finds it in the mailbox,
            and the two agree on the device's master key with CPace on the activation password
            (a captured exchange gives nothing to test passwords against). Then the device
            verifies and applies its IT policy, signed by the domain's key, and receives its
            service books.

            Prints one JSON line per stage: {"service": "activation", "stage": S, "pin", "email",
            "at"}, S being "Activating", "Encryption Verified. Waiting for Services", "Services
            Received", "Activation Complete"; on failure a line with stage "error" and "error"
            the reason, and exit status 1 (a wrong password, an expired or locked activation,
            a policy not signed by the domain, the time out). The credential file (mode 0600)
            is written once the key is agreed; `bramble-device run --credential OUT` then runs
            the device, continuing from OUT.state. The password is read from a file ('-':
            standard input), never from the command line.
            """)

    @Option(help: "The user's e-mail address.") var email: String
    @Option(help: "File holding the activation password ('-': standard input).") var passwordFile: String
    @OptionGroup var relay: RelayOptions
    @Option(help: "Where to write the device's credential file (default: device-PIN.json).") var credential: String?
    @Option(help: "The device's PIN, 1–8 hex digits (default: a random one).") var pin: String?
    @Option(help: "Give up after this many seconds.") var timeout = 120
    @Flag(help: "Also print the device's items (policy, service books) as JSON lines.") var json = false
    @Option(help: "trace, debug, info, notice, warning, error or critical.") var logLevel: String?

    func validate() throws {
        if let pin, PIN(pin) == nil { throw ValidationError("--pin must be 1–8 hex digits, got '\(pin)'") }
        guard (5...3_600).contains(timeout) else { throw ValidationError("--timeout must be 5…3600 seconds") }
        guard email.contains("@"), !email.contains(" ") else { throw ValidationError("--email must be an e-mail address, got '\(email)'") }
    }

    func run() async throws {
        BrambleLogging.bootstrap(level: logLevel ?? "warning")
        let (address, tls) = try relay.endpoint()
        guard let password = PasswordFile.read(passwordFile), !password.isEmpty else {
            throw ValidationError("cannot read the activation password from \(passwordFile)")
        }
        let pin = self.pin.flatMap(PIN.init) ?? PIN(UInt32.random(in: 1...UInt32.max))
        let out = credential ?? "device-\(pin).json"
        guard !FileManager.default.fileExists(atPath: out) else { throw ValidationError("\(out) already exists; choose another --credential or remove it") }
        let canonical = ActivationPassword.canonicalEmail(email)
        let printer = StagePrinter(pin: pin.description, email: canonical)
        do {
            let json = self.json
            try await withDeadline(ms: timeout * 1_000) {
                try await Self.activate(pin: pin, email: canonical, password: password, out: out, address: address, tls: tls, json: json, printer: printer)
            }
        } catch {
            printer.print(stage: "error", error: error is DeadlineExceeded ? Self.timedOut(after: printer.lastStage, seconds: timeout) : "\(error)")
            throw ExitCode.failure
        }
    }

    /// What a time-out means at the stage it came.
    static func timedOut(after stage: String?, seconds: Int) -> String {
        switch stage {
        case DeviceActivation.Stage.activating.rawValue?:
            "the request was mailed but no Bramble answered within \(seconds) s: is an activation password set for this address, "
                + "and does its Bramble watch the mailbox?"
        case DeviceActivation.Stage.encryptionVerified.rawValue?:
            "the key was agreed, but the IT policy and service books did not arrive within \(seconds) s: "
                + "run `bramble-device run` with the credential file to finish"
        default:
            "no answer within \(seconds) s"
        }
    }

    /// `statePath`: where the device keeps its state (default: the credential's path + ".state").
    static func activate(pin: PIN, email: String, password: String, out: String, statePath: String? = nil, address: HostPort, tls: NIOSSLContext?,
                         json: Bool, logPath: String? = nil, printer: StagePrinter) async throws {
        let exchange = DeviceActivation(configuration: .init(email: email, password: password, pin: pin, relay: address, tls: tls))
        let credential = try await exchange.exchangeKeys { printer.print(stage: $0.rawValue) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try SecretFilePermissions.create(out, bytes: try encoder.encode(credential), what: "device credential")

        try await exchange.receiveServices(credential: credential, credentialPath: out, statePath: statePath ?? out + ".state", logPath: logPath, printJSON: json) {
            printer.print(stage: $0.rawValue)
        }
    }
}

/// The activation's JSON lines on standard output.
struct StagePrinter: Sendable {
    let pin: String
    let email: String
    private let printed = NIOLockedValueBox<String?>(nil)

    init(pin: String, email: String) { (self.pin, self.email) = (pin, email) }

    /// The last stage printed (nil: none yet).
    var lastStage: String? { printed.withLockedValue { $0 } }

    func print(stage: String, error: String? = nil) {
        if error == nil { printed.withLockedValue { $0 = stage } }
        struct Line: Encodable { var service = "activation"; var stage: String; var pin: String; var email: String; var at: String; var error: String? }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let line = Line(stage: stage, pin: pin, email: email, at: Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true)), error: error)
        guard let data = try? encoder.encode(line) else { return }
        FileHandle.standardOutput.write(data + Data("\n".utf8))
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Connect one device and show what it receives.",
        discussion: """
            Stays connected to the relay (reconnecting with back-off), decrypts each item
            with the device's master key, shows it once, and acknowledges it. Repeats are
            dropped by sequence number, remembered across restarts in the state file and
            the JSON-lines log. Stop with SIGTERM or Ctrl-C.
            IT commands from the administrator (`bramble device lock|wipe|wipe-work`) are
            carried out when signed by the device's domain: a lock keeps the new device
            password's verifier in STATE.password; a wipe is confirmed to the server first,
            then deletes the state, outbox, control spool and log (for `wipe` also
            STATE.password), then the credential file (overwritten first), prints a last
            "wiped" line and exits 0. Only regular files are removed.
            With --await-activation and no credential file yet, the device waits to be
            activated over the air, as a new handheld at its Enterprise Activation screen:
            `bramble-device control --state STATE activate --email E --password-file F`
            gives it the address and activation password; it prints the activation's stage
            lines (as `bramble-device activate` does; a failed run prints its error and the
            device waits for the next try), writes the credential file (0600) and runs.
            """)

    @Option(help: "Credential file written by `bramble device provision` or an activation.") var credential: String
    @OptionGroup var relay: RelayOptions
    @Option(help: "State file remembering shown items (default: CREDENTIAL.state).") var state: String?
    @Option(help: "Append one JSON line per shown item to this file.") var log: String?
    @Flag(help: "Print one JSON line per shown item on standard output.") var json = false
    @Flag(help: "No credential file yet: wait for `bramble-device control --state STATE activate` and activate over the air.")
    var awaitActivation = false
    @Option(help: "The PIN to activate with (--await-activation; default: a random one).") var pin: String?
    @Option(help: "Give each activation run up to this many seconds (--await-activation).") var activationTimeout = 120
    @Option(help: "trace, debug, info, notice, warning, error or critical.") var logLevel: String?

    func validate() throws {
        if let pin, PIN(pin) == nil { throw ValidationError("--pin must be 1–8 hex digits, got '\(pin)'") }
        if pin != nil, !awaitActivation { throw ValidationError("--pin is for --await-activation (a credential names its PIN)") }
        guard (5...3_600).contains(activationTimeout) else { throw ValidationError("--activation-timeout must be 5…3600 seconds") }
    }

    func run() async throws {
        BrambleLogging.bootstrap(level: logLevel)
        let (address, tls) = try relay.endpoint()
        let statePath = state ?? credential + ".state"
        let needsActivation = !FileManager.default.fileExists(atPath: credential)
        if needsActivation, !awaitActivation {
            throw ValidationError("\(credential) does not exist: provision the device (`bramble device provision`), activate it "
                                  + "(`bramble-device activate`), or give --await-activation to activate this one over the air")
        }
        // One signal handler for both phases: SIGTERM ends the wait or the run.
        let failure = NIOLockedValueBox<(any Error)?>(nil)
        try await withSignalCancellation {
            do {
                if needsActivation, try await awaitActivation(statePath: statePath, address: address, tls: tls) == false { return }
                try await runDevice(statePath: statePath, address: address, tls: tls)
            } catch {
                failure.withLockedValue { $0 = error }
            }
        }
        if let error = failure.withLockedValue({ $0 }) { throw error }
    }

    private func runDevice(statePath: String, address: HostPort, tls: NIOSSLContext?) async throws {
        var config = DeviceAgent.Configuration(credential: try CredentialFile.load(credential), relay: address, tls: tls)
        config.statePath = statePath
        config.logPath = log
        config.printJSON = json
        config.credentialPath = credential
        let agent = try DeviceAgent(configuration: config, logger: Logger(label: "bramble-device"))
        await agent.run()
        if let wiped = agent.wiped {
            FileHandle.standardError.write(Data("device \(config.credential.pin) wiped (\(wiped == .wipe ? "all data" : "work data")) by its administrator\n".utf8))
        }
    }

    /// Waits for activations from the control spool and runs each until one completes;
    /// false if cancelled first.
    private func awaitActivation(statePath: String, address: HostPort, tls: NIOSSLContext?) async throws -> Bool {
        let pin = self.pin.flatMap(PIN.init) ?? PIN(UInt32.random(in: 1...UInt32.max))
        try FileManager.default.createDirectory(atPath: DeviceOutbox.spoolDirectory(statePath: statePath), withIntermediateDirectories: true)
        FileHandle.standardError.write(Data("""
            device \(pin) waits to be activated: bramble-device control --state \(statePath) activate --email E --password-file F

            """.utf8))
        while !Task.isCancelled {
            guard let taken = SpooledActivation.take(statePath: statePath) else {
                try? await Task.sleep(for: .milliseconds(200))
                continue
            }
            let request: SpooledActivation
            switch taken {
            case .success(let r): request = r
            case .failure(let failed):
                StagePrinter(pin: pin.description, email: "").print(stage: "error", error: failed.description)
                continue
            }
            let email = ActivationPassword.canonicalEmail(request.email)
            let printer = StagePrinter(pin: pin.description, email: email)
            do {
                let (out, json, log, timeout) = (credential, self.json, self.log, activationTimeout)
                try await withDeadline(ms: timeout * 1_000) {
                    try await Activate.activate(pin: pin, email: email, password: request.password, out: out, statePath: statePath,
                                                address: address, tls: tls, json: json, logPath: log, printer: printer)
                }
                return true
            } catch is CancellationError {
                return false
            } catch {
                printer.print(stage: "error", error: error is DeadlineExceeded ? Activate.timedOut(after: printer.lastStage, seconds: activationTimeout) : "\(error)")
                // The key was agreed (the credential is written): run it, which finishes the rest.
                if FileManager.default.fileExists(atPath: credential) { return true }
            }
        }
        return false
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
        abstract: "Drive a running device: ask for more of a mail; send, reply to and forward mail; read, unread, delete and file it; list the folders; instant messaging.",
        discussion: """
            Verbs:
              more MESSAGE_ID                              the next chunk of a mail's text
              send --to ADDR [--to …] [--cc ADDR …] --subject S (--body T | --body-file F)
              reply MESSAGE_ID (--body T | --body-file F) [--all]
              forward MESSAGE_ID --to ADDR [--to …] [--cc …] (--body T | --body-file F)
              read MESSAGE_ID | unread MESSAGE_ID          mark the mail read or unread in the mailbox
              delete MESSAGE_ID                            expunge it (or move it to Trash: the node's mail-device-delete)
              file MESSAGE_ID FOLDER                       move it into FOLDER
              folders                                      the user's folder list
              im login [--jid JID] --password-file F       log in to instant messaging (JID: the credential's e-mail address)
              im send --to JID (--body T | --body-file F)  a message to a contact
              im presence available|away|busy              the user's presence as contacts see it
              im logout
              activate --email E --password-file F         activate a device waiting for it (run --await-activation)
            A reply quotes the original's full text from the mailbox and goes to its sender
            (--all: and to everyone it was sent to); a forward carries the original's full
            text and attachments. The mail goes out as the device's user, and a copy is kept
            in the user's Sent folder.

            Writes the request into the device's control spool (STATE.control/); the running
            device takes it into its outbox, sends it, and retries until the server has
            recorded it, which its log says once with a line: service "request", ref (the
            request's number), verb. A More chunk arrives as a line with service "more",
            message_id, offset, body and more_available; what became of a send, reply or
            forward as a line with service "sent", ref (the request's number), seq,
            message_id and state "sent", or "failed" with a reason (unknown recipient,
            message too large, original not found, …). With reconciliation on (`bramble user
            set EMAIL --reconciliation on`, the default), a mail's state changed in the
            mailbox (by another client, or another of the user's devices, or a failed
            read/unread/delete/file of this one) arrives as a line with service "state",
            message_id, read, deleted and folder ("" once expunged); the folder list as a
            line with service "folders" and folders (each name and special_use).
            Instant messaging: the login's outcome, and a session's end, arrive as a line with
            service "im-session", jid, state (logged-in, logged-out, server-busy, failed) and
            reason; messages as lines with service "im", from, to, id and body (the device's
            own with ref, and error if it failed); the contacts as a line with service
            "im-contacts" (each jid, name, presence, status), and their changes with service
            "im-presence". The password is read from a file ('-': standard input), never
            from the command line. `make status` gives each device's
            control command as its `control` field. Exits 2 on bad input, 1 if the device's
            state has no spool (never run with this state file). --body-file keeps the text
            out of the process list; - reads standard input.
            """)

    @Option(help: "The running device's state file (run --state; default CREDENTIAL.state).") var state: String
    @Argument(help: "The verb, then the mail's Message-ID as its JSON line gives it (all but send and folders), then for file the FOLDER.") var words: [String]
    @Option(help: "A recipient (send, forward); repeat for more.") var to: [String] = []
    @Option(help: "A copy recipient (send, forward); repeat for more.") var cc: [String] = []
    @Option(help: "The subject (send).") var subject: String?
    @Option(help: "The text (send, reply, forward).") var body: String?
    @Option(help: "Read the text from this file ('-': standard input).") var bodyFile: String?
    @Flag(help: "Reply to the sender and everyone the mail went to (reply).") var all = false
    @Option(help: "The IM user ID (im login; default: the e-mail address in the credential file beside the state file).") var jid: String?
    @Option(help: "Read the IM password (im login) or the activation password (activate) from this file ('-': standard input).")
    var passwordFile: String?
    @Option(help: "The user's e-mail address (activate).") var email: String?

    func validate() throws {
        if words.first == "activate" {
            guard words.count == 1 else { throw ValidationError("activate takes --email and --password-file only") }
            guard let email, email.contains("@"), !email.contains(" ") else { throw ValidationError("activate needs --email, the user's e-mail address") }
            guard passwordFile != nil else { throw ValidationError("activate needs --password-file (the password never goes on the command line)") }
            guard to.isEmpty, cc.isEmpty, subject == nil, body == nil, bodyFile == nil, !all, jid == nil else {
                throw ValidationError("activate takes --email and --password-file only")
            }
            return
        }
        guard email == nil else { throw ValidationError("--email is for activate") }
        if words.first == "im" {
            let login = words.dropFirst().first == "login"
            _ = try imRequest(body: body ?? (bodyFile == nil ? nil : "x"), password: passwordFile == nil ? nil : "x",
                              jid: login ? (jid ?? "x@x") : jid)
        } else {
            guard jid == nil, passwordFile == nil else { throw ValidationError("--jid and --password-file are for im login") }
            _ = try request(body: body ?? (bodyFile == nil ? nil : ""))
        }
    }

    /// `im login|send|presence|logout`, checked with the node's rules.
    func imRequest(body: String?, password: String?, jid: String?) throws -> DeviceControlRequest {
        guard words.count >= 2 else { throw ValidationError("im needs login, send, presence or logout") }
        let sub = words[1]
        var r = DeviceControlRequest(verb: "im-\(sub)")
        switch sub {
        case "login":
            guard words.count == 2, body == nil, to.isEmpty else { throw ValidationError("im login takes --jid and --password-file only") }
            guard password != nil else { throw ValidationError("im login needs --password-file (the password never goes on the command line)") }
            (r.jid, r.password) = (jid, password)
        case "send":
            guard words.count == 2, to.count == 1, body != nil else { throw ValidationError("im send needs one --to JID and --body or --body-file") }
            (r.to, r.body) = (to, body)
        case "presence":
            guard words.count == 3 else { throw ValidationError("im presence takes available, away or busy") }
            r.presence = words[2]
        case "logout":
            guard words.count == 2 else { throw ValidationError("im logout takes nothing more") }
        default:
            throw ValidationError("im takes login, send, presence or logout, not \(sub.debugDescription)")
        }
        if sub != "login", jid != nil || password != nil { throw ValidationError("--jid and --password-file are for im login") }
        if sub != "send", body != nil || !to.isEmpty { throw ValidationError("--to and --body are for im send") }
        guard cc.isEmpty, subject == nil, !all else { throw ValidationError("im takes no --cc, --subject or --all") }
        do { _ = try r.request() } catch { throw ValidationError(error.description) }
        return r
    }

    /// The IM user ID: --jid, or the e-mail address of the credential the state file is beside.
    func defaultJID() -> String? {
        if let jid { return jid }
        guard state.hasSuffix(".state") else { return nil }
        return try? CredentialFile.load(String(state.dropLast(".state".count))).email
    }

    /// The spool request, checked with the node's rules.
    func request(body: String?) throws -> DeviceControlRequest {
        guard let verb = words.first else { throw ValidationError("a verb is needed: \(DeviceControlRequest.verbs.joined(separator: ", "))") }
        let wantsID = verb != "send" && verb != "folders"
        let words = self.words.count == 3 && verb == "file" ? Array(self.words.prefix(2)) : self.words
        let folder = verb == "file" && self.words.count == 3 ? self.words[2] : nil
        if verb == "file", folder == nil { throw ValidationError("file takes MESSAGE_ID FOLDER") }
        guard words.count == (wantsID ? 2 : 1) else {
            throw ValidationError(wantsID ? "\(verb) takes one MESSAGE_ID" : "\(verb) takes no MESSAGE_ID\(verb == "send" ? " (its recipients are --to)" : "")")
        }
        if wantsID, !MailItem.isValidMessageID(words[1]) {
            throw ValidationError("MESSAGE_ID must be 1–\(MailItem.maxMessageIDLength) bytes with no space or control character")
        }
        guard self.body == nil || bodyFile == nil else { throw ValidationError("--body and --body-file: give one") }
        let bare = ["more", "read", "unread", "delete", "file", "folders"].contains(verb)
        if bare, body != nil || !to.isEmpty || !cc.isEmpty || subject != nil || all {
            throw ValidationError("\(verb) takes no --to, --cc, --subject, --body or --all")
        }
        if !bare, body == nil { throw ValidationError("\(verb) needs --body or --body-file") }
        if all, verb != "reply" { throw ValidationError("--all is for reply") }
        if subject != nil, verb != "send" { throw ValidationError("--subject is for send (a reply or forward takes the original's)") }
        let r = DeviceControlRequest(verb: verb, messageID: wantsID ? words[1] : nil, to: to.isEmpty ? nil : to, cc: cc.isEmpty ? nil : cc,
                                     subject: subject, body: body, all: all ? true : nil, folder: folder)
        do { _ = try r.request() } catch { throw ValidationError(error.description) }
        return r
    }

    /// `activate`: the address and password into the waiting device's spool.
    func activate() throws {
        guard let password = passwordFile.flatMap(PasswordFile.read), !password.isEmpty else {
            FileHandle.standardError.write(Data("bramble-device control: cannot read the activation password from \(passwordFile ?? "")\n".utf8))
            throw ExitCode.validationFailure
        }
        do {
            let file = try SpooledActivation(email: email ?? "", password: password).submit(statePath: state)
            print("queued: activate \(email ?? "") (\(file))")
        } catch {
            FileHandle.standardError.write(Data("bramble-device control: no device waiting with state \(state) (\(error.localizedDescription))\n".utf8))
            throw ExitCode.failure
        }
    }

    func run() throws {
        if words.first == "activate" { return try activate() }
        var text = body
        if let bodyFile {
            guard let data = bodyFile == "-" ? FileHandle.standardInput.readDataToEndOfFile() : FileManager.default.contents(atPath: bodyFile),
                  let s = String(data: data, encoding: .utf8) else {
                FileHandle.standardError.write(Data("bramble-device control: cannot read UTF-8 text from \(bodyFile)\n".utf8))
                throw ExitCode.validationFailure
            }
            text = s
        }
        var password: String?
        if let passwordFile, words.first == "im" {
            password = PasswordFile.read(passwordFile)
            guard password != nil else {
                FileHandle.standardError.write(Data("bramble-device control: cannot read the password from \(passwordFile)\n".utf8))
                throw ExitCode.validationFailure
            }
        }
        let request: DeviceControlRequest
        do {
            if words.first == "im" {
                let jid = words.dropFirst().first == "login" ? defaultJID() : nil
                if words.dropFirst().first == "login", jid == nil {
                    throw ValidationError("im login needs --jid (no credential file beside \(state) names the user)")
                }
                request = try imRequest(body: text, password: password, jid: jid)
            } else {
                request = try self.request(body: text)
            }
        } catch {
            FileHandle.standardError.write(Data("bramble-device control: \(error)\n".utf8))
            throw ExitCode.validationFailure
        }
        do {
            let file = try request.submit(statePath: state)
            print("queued: \(words.joined(separator: " ")) (\(file))")
        } catch {
            FileHandle.standardError.write(Data("bramble-device control: no running device with state \(state) (\(error.localizedDescription))\n".utf8))
            throw ExitCode.failure
        }
    }
}
