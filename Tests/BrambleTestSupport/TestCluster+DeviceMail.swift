import BrambleCore
import BrambleNet
import Foundation

/// Mail the devices send: the control verbs, the log lines that answer them, and what
/// the mailboxes hold (read over IMAP as the service account, as a desktop would see it).
extension TestCluster {
    /// `bramble-device control --state … ARGS` on a running device.
    func control(pin: String, _ arguments: [String]) throws {
        try runCommand(Self.bin + "/bramble-device", ["control", "--state", "\(dir)/device-\(pin).json.state"] + arguments)
    }

    /// A device's log line about a request: `request` (the server recorded it) or `sent`
    /// (what became of a send, reply or forward).
    struct RequestLine: Decodable, Hashable {
        var service: String
        var ref: UInt64
        var seq: UInt64?
        var verb: String?
        var message_id: String?
        var state: String?
        var reason: String?
    }

    func requestLines(pin: String) -> [RequestLine] {
        guard let data = FileManager.default.contents(atPath: logPath(pin: pin)) else { return [] }
        return data.split(separator: UInt8(ascii: "\n")).compactMap { try? JSONDecoder().decode(RequestLine.self, from: $0) }
            .filter { $0.service == "request" || $0.service == "sent" }
    }

    /// One message in a mailbox folder.
    struct StoredMessage: Sendable {
        var uid: UInt64
        var messageID: String
        var flags: [String]
        /// The whole message as stored.
        var bytes: [UInt8]
        var text: String { String(decoding: bytes, as: UTF8.self) }
    }

    /// Every message in `user`'s `folder`, whole (BODY.PEEK[]: nothing is marked read).
    func messages(_ user: String, in folder: String = "INBOX") async throws -> [StoredMessage] {
        guard let mailHost else { throw SetupError("this cluster has no mail host (Options.mail)") }
        return try await IMAPSession.with(to: mailHost.imap, tls: mailHost.tls) { imap in
            try await imap.login(user: "\(user)*\(mailHost.serviceUser)", password: try mailHost.servicePassword)
            let selected = try await imap.select(folder, readOnly: true)
            var out: [StoredMessage] = []
            if selected.exists > 0 {
                for (uid, attributes) in try await imap.uidFetch("1:*", "UID FLAGS ENVELOPE BODY.PEEK[]") {
                    let flags = attributes["FLAGS"]?.list?.compactMap(\.text) ?? []
                    let id = attributes["ENVELOPE"].flatMap(MailEnvelope.init)?.messageID ?? ""
                    let bytes = attributes.first { $0.name.hasPrefix("BODY[") }?.value.bytes ?? []
                    out.append(StoredMessage(uid: uid, messageID: id, flags: flags, bytes: bytes))
                }
            }
            await imap.logout()
            return out.sorted { $0.uid < $1.uid }
        }
    }

    /// A device's `state` line (reconciliation): a mail's state in the mailbox.
    struct StateLine: Decodable, Hashable {
        var service: String
        var ref: UInt64
        var message_id: String
        var read: Bool
        var deleted: Bool
        var folder: String
    }

    func stateLines(pin: String) -> [StateLine] {
        guard let data = FileManager.default.contents(atPath: logPath(pin: pin)) else { return [] }
        return data.split(separator: UInt8(ascii: "\n")).compactMap { try? JSONDecoder().decode(StateLine.self, from: $0) }
            .filter { $0.service == "state" }
    }

    /// A device's `folders` line.
    struct FoldersLine: Decodable {
        struct Folder: Decodable, Hashable { var name: String; var special_use: String }
        var service: String
        var ref: UInt64
        var folders: [Folder]
    }

    func foldersLines(pin: String) -> [FoldersLine] {
        guard let data = FileManager.default.contents(atPath: logPath(pin: pin)) else { return [] }
        return data.split(separator: UInt8(ascii: "\n")).compactMap { try? JSONDecoder().decode(FoldersLine.self, from: $0) }
            .filter { $0.service == "folders" }
    }

    /// A desktop client: an IMAP session logged in as `user` with the user's own password.
    func desktop<T: Sendable>(_ user: String, _ body: (inout IMAPSession) async throws -> T) async throws -> T {
        guard let mailHost else { throw SetupError("this cluster has no mail host (Options.mail)") }
        guard let password = mailHost.passwords[user] else { throw SetupError("no password for \(user)") }
        return try await IMAPSession.with(to: mailHost.imap, tls: mailHost.tls) { imap in
            try await imap.login(user: user, password: password)
            let result = try await body(&imap)
            await imap.logout()
            return result
        }
    }
}

extension TestCluster.StateLine {
    /// What a line says, without its delivery number.
    struct Shape: Hashable, CustomStringConvertible {
        var id: String, read: Bool, deleted: Bool, folder: String
        init(_ id: String, read: Bool, deleted: Bool, folder: String) { (self.id, self.read, self.deleted, self.folder) = (id, read, deleted, folder) }
        var description: String { "\(id) read=\(read) deleted=\(deleted) folder=\(folder.debugDescription)" }
    }
    var shape: Shape { Shape(message_id, read: read, deleted: deleted, folder: folder) }
}
