import BrambleAPI
import BrambleCore
import BrambleNet
import Foundation

/// Over-the-air activation from a test: the administrator's password, the device's
/// `bramble-device activate`, and a device played by hand for crafted requests.
extension TestCluster {
    /// One JSON line of `bramble-device activate`.
    struct ActivationLine: Decodable, Equatable {
        var service: String
        var stage: String
        var pin: String
        var email: String
        var error: String?
    }

    /// Sets `email`'s activation password through the admin API (the user is added first
    /// if need be); returns the activation's state.
    @discardableResult
    func setActivationPassword(_ email: String, _ password: String, expiresSeconds: Int? = nil) async throws -> ActivationStatus {
        _ = try? bramble(["user", "add", "--email", email])
        return try await admin(options.nodes[0]).call(.POST, AdminAPI.activation(email),
                                                      body: NewActivation(password: password, expires_seconds: expiresSeconds), as: ActivationSet.self).activation
    }

    func activation(_ email: String, node: String? = nil) async throws -> ActivationStatus {
        try await admin(node ?? options.nodes[0]).call(.GET, AdminAPI.user(email), as: UserRecord.self).activation ?? .none
    }

    /// Runs `bramble-device activate`; its exit status and stage lines. The credential goes
    /// to `dir/device-PIN.json` (where `startDevice` looks).
    func activateDevice(email: String, password: String, pin: String, timeout: Int = 60) throws -> (status: Int32, lines: [ActivationLine]) {
        let passwordFile = "\(dir)/activation-password-\(UUID().uuidString.prefix(8))"
        try SecretFilePermissions.create(passwordFile, bytes: Array(password.utf8), what: "activation password")
        defer { try? FileManager.default.removeItem(atPath: passwordFile) }
        let arguments = ["activate", "--email", email, "--password-file", passwordFile, "--pin", pin, "--relay", relayDevices.description,
                         "--ca-file", tls.ca, "--credential", "\(dir)/device-\(pin).json", "--timeout", "\(timeout)"]
        let output: String
        let status: Int32
        do {
            output = try runCommand(Self.bin + "/bramble-device", arguments)
            status = 0
        } catch let failed as CommandFailed {
            (output, status) = (failed.output, failed.status)
        }
        let lines = output.split(separator: "\n").compactMap { try? JSONDecoder().decode(ActivationLine.self, from: Data($0.utf8)) }
        return (status, lines)
    }

    /// A device played by hand: sends `request` (its etp.dat) through the relay as an
    /// activation request, and returns what the relay passes back first (a response or a
    /// result), leaving the connection to `body` for the rest.
    func rawActivation<T: Sendable>(pin: PIN, email: String, etp: [UInt8],
                                    _ body: @Sendable (FrameLink, inout FrameReader) async throws -> T) async throws -> T {
        try await FrameLink.connect(to: relayDevices, tls: deviceTLS) { link, frames in
            guard case .challenge? = try await frames.next() else { throw SetupError("no challenge from the relay") }
            try await link.outbound.write(.activation(ActivationFrame(phase: .request, pin: pin, email: email, body: etp)))
            return try await body(link, &frames)
        }
    }

    /// The next activation frame for the device (pongs and pings skipped), within `seconds`.
    /// The next activation frame (of `phase`, if given: as the device does, a repeated
    /// response — a new primary answering the same request mail again — is passed over).
    static func nextActivationFrame(_ frames: inout FrameReader, phase: ActivationFrame.Phase? = nil) async throws -> ActivationFrame {
        while let frame = try await frames.next() {
            switch frame {
            case .activation(let a) where phase == nil || a.phase == phase: return a
            case .error(let code, let message): throw SetupError("the relay refused: \(code) \(message)")
            default: continue
            }
        }
        throw SetupError("the relay closed the activation connection")
    }

    /// Messages in `user`'s INBOX that carry the activation header (requests not yet removed).
    func activationMailsLeft(_ user: String) async throws -> Int {
        try await messages(user).filter { $0.text.lowercased().contains(Activation.mailHeader.lowercased() + ":") }.count
    }
}
