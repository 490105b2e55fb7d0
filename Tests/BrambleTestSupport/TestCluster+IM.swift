import BrambleCore
import BrambleDevice
import BrambleNet
import Foundation

/// Instant messaging in a test cluster: the devices' IM verbs and log lines, and desktop
/// users on the IM host (XMPP clients of their own).
extension TestCluster {
    /// Every line a device showed, decoded as the device wrote it.
    func shownItems(pin: String) -> [ShownItem] {
        guard let data = FileManager.default.contents(atPath: logPath(pin: pin)) else { return [] }
        return data.split(separator: UInt8(ascii: "\n")).compactMap { try? ShownItem.decoder.decode(ShownItem.self, from: $0) }
    }

    /// The device's lines of one service ("im", "im-session", "im-contacts", "im-presence").
    func shown(pin: String, service: String) -> [ShownItem] { shownItems(pin: pin).filter { $0.service == service } }

    func imPassword(_ jid: String) throws -> String {
        guard let im = imHost else { throw SetupError("this cluster has no IM host (Options.im)") }
        guard let password = im.passwords[jid] else { throw SetupError("the IM host has no account \(jid)") }
        return password
    }

    /// `bramble-device control … im login --jid JID --password-file F` (the password in a
    /// 0600 file, as an operator would give it). `password` nil: the account's own.
    func imLogin(pin: String, jid: String, password: String? = nil) async throws {
        // A device just started may not have made its control spool yet.
        try await waitFor("device \(pin)'s control spool", seconds: 10) {
            FileManager.default.fileExists(atPath: "\(dir)/device-\(pin).json.state.control")
        }
        let file = "\(dir)/im-password-\(pin)-\(UUID().uuidString.prefix(6))"
        try SecretFilePermissions.create(file, bytes: Array((try password ?? imPassword(jid)).utf8), what: "IM password")
        defer { unlink(file) }
        try control(pin: pin, ["im", "login", "--jid", jid, "--password-file", file])
    }

    /// Waits for the device's `im-session` line answering its `n`-th login or logout (or,
    /// with `ref` nil, any new one after `after` lines of that service).
    func imSession(pin: String, after: Int = 0, seconds: Double = 20) async throws -> ShownItem {
        var found: ShownItem?
        try await waitFor("an im-session line on \(pin)", seconds: seconds) {
            let lines = shown(pin: pin, service: "im-session")
            found = lines.count > after ? lines[after] : nil
            return found != nil
        }
        return found!
    }

    /// A desktop user on the IM host (an XMPP client of their own), logged in.
    func desk(_ jid: String) async throws -> XMPPChatClient {
        guard let im = imHost else { throw SetupError("this cluster has no IM host (Options.im)") }
        return try await XMPPChatClient.connect(to: im.xmpp, tls: im.tls, jid: jid, password: try imPassword(jid))
    }

    /// `bramble …` against this cluster's node-a (or `node`), its output.
    @discardableResult
    func bramble(_ arguments: [String], node: String? = nil) throws -> String {
        let env = ["BRAMBLE_TOKEN": token, "BRAMBLE_URL": node.map(nodeURL) ?? nodeURL, "BRAMBLE_CA_FILE": tls.ca]
        return try runCommand(Self.bin + "/bramble", arguments, environment: env)
    }
}
