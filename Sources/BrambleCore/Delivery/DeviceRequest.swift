/// What a device asks of its server (service `request`), under its own request number
/// (`DataFrame.ref`): the server records it under (PIN, ref) before acknowledging
/// (service `requestAck`, an `AckList` of request numbers), so a retry acts once.
///
/// Tags: 1 kind, 2 message_id (the mail asked about, replied to or forwarded), 3 to
/// (repeated), 4 cc (repeated), 5 subject, 6 body (the device user's text), 7 all (reply
/// to all), 8 folder (where `file` puts the mail, as the user reads its name); for
/// instant messaging 9 jid, 10 password (on the wire only), 11 sealed_password (as
/// recorded: the password sealed under the nodes' key-encryption key, bound to the PIN),
/// 12 presence; for the Policy Service 13 version, 14 digest, 15 reason, 16 command id,
/// 17 command kind; `imSend` carries its peer in 3 (to) and its text in 6 (body).
public enum DeviceRequest: Equatable, Sendable {
    /// The next chunk of a mail's text.
    case more(messageID: String)
    /// A new mail from the device's user.
    case send(to: [String], cc: [String], subject: String, body: String)
    /// A reply to a mail the device has; the server quotes the original's full text.
    case reply(messageID: String, body: String, all: Bool)
    /// A mail the device has, forwarded whole (text and attachments) with the user's text.
    case forward(messageID: String, to: [String], cc: [String], body: String)
    /// Reconciliation, device → mailbox: the mail marked read (\Seen) or unread in the
    /// mailbox, deleted (expunged, or moved to Trash: the node's `mail-device-delete`), or
    /// filed (moved) into a folder. Each names a target state, so doing it twice is harmless.
    case read(messageID: String)
    case unread(messageID: String)
    case delete(messageID: String)
    case file(messageID: String, folder: String)
    /// The user's folder list, answered with a `folders` item.
    case folders
    /// Instant messaging (the Collaboration Service): log in to the company's XMPP server
    /// as `jid`, answered with an `imSession` item; the session lasts until `imLogout`, the
    /// idle timeout or the administrator, across failovers.
    case imLogin(jid: String, secret: IMLoginSecret)
    /// A one-to-one message to `to` (a bare JID).
    case imSend(to: String, body: String)
    /// The device user's own presence, as their contacts see it.
    case imPresence(IMPresence)
    case imLogout
    /// The Policy Service: the device verified the IT policy of `version` (signed by its
    /// domain's key) and applied it; `digest` is SHA-256 of the policy as signed.
    case policyApplied(version: UInt64, digest: [UInt8])
    /// The device did not apply the policy of `version` (its signature is not its domain's,
    /// or it cannot be read); `reason` says why.
    case policyRefused(version: UInt64, digest: [UInt8], reason: String)
    /// The device carried out IT command `id` (`ITCommand`): locked, or about to wipe.
    case commandDone(id: UInt64, kind: ITCommand.Kind)
    /// The device did not carry out IT command `id` (not signed by its domain, not for
    /// it, an older lock than the one in force), and why.
    case commandRefused(id: UInt64, reason: String)

    public enum Kind: UInt64, Sendable {
        case more = 1, send = 2, reply = 3, forward = 4, read = 5, unread = 6, delete = 7, file = 8, folders = 9
        case imLogin = 10, imSend = 11, imPresence = 12, imLogout = 13
        case policyApplied = 14, policyRefused = 15, commandDone = 16, commandRefused = 17

        /// What the Policy Service acts on.
        public static let policyKinds: [Kind] = [.policyApplied, .policyRefused, .commandDone, .commandRefused]
    }

    /// An IM login's password: as the device sends it, or as the node records it (sealed
    /// under the key-encryption key, so no copy of the database holds it in the clear).
    public enum IMLoginSecret: Equatable, Sendable {
        case password(String)
        case sealed(String)
    }

    /// An IM password: generous, but bounded.
    public static let maxPasswordLength = 1024
    /// A sealed password as `MasterKeyVault.sealSecret` writes it.
    public static let maxSealedLength = 2048

    /// Why a device refused a policy.
    public static let maxReasonLength = 256

    /// A device's text: well above what a handheld's user types, far below a frame's 256 KB.
    public static let maxBodyLength = 64 * 1024
    /// An address as SMTP carries it (RFC 5321: 64 + 1 + 255, less the brackets).
    public static let maxAddressLength = 254
    /// A folder's name (UTF-8, as the user reads it).
    public static let maxFolderLength = 1024

    public var kind: Kind {
        switch self {
        case .more: .more
        case .send: .send
        case .reply: .reply
        case .forward: .forward
        case .read: .read
        case .unread: .unread
        case .delete: .delete
        case .file: .file
        case .folders: .folders
        case .imLogin: .imLogin
        case .imSend: .imSend
        case .imPresence: .imPresence
        case .imLogout: .imLogout
        case .policyApplied: .policyApplied
        case .policyRefused: .policyRefused
        case .commandDone: .commandDone
        case .commandRefused: .commandRefused
        }
    }

    /// Whether the Collaboration Service acts on it (the Messaging Agent acts on the rest).
    public var isIM: Bool { kind.isIM }

    /// The mail the request is about (every kind but `send` and `folders`).
    public var messageID: String? {
        switch self {
        case .more(let id), .reply(let id, _, _), .forward(let id, _, _, _), .read(let id), .unread(let id), .delete(let id), .file(let id, _): id
        case .send, .folders, .imLogin, .imSend, .imPresence, .imLogout, .policyApplied, .policyRefused, .commandDone, .commandRefused: nil
        }
    }

    /// Whether it changes the mailbox (reconciliation, device → mailbox).
    public var reconciles: Bool {
        switch kind {
        case .read, .unread, .delete, .file: true
        case .more, .send, .reply, .forward, .folders, .imLogin, .imSend, .imPresence, .imLogout, .policyApplied, .policyRefused, .commandDone, .commandRefused: false
        }
    }

    /// The word for it on the command line and in the device's log.
    public var verb: String {
        switch kind {
        case .more: "more"
        case .send: "send"
        case .reply: "reply"
        case .forward: "forward"
        case .read: "read"
        case .unread: "unread"
        case .delete: "delete"
        case .file: "file"
        case .folders: "folders"
        case .imLogin: "im login"
        case .imSend: "im send"
        case .imPresence: "im presence"
        case .imLogout: "im logout"
        case .policyApplied: "policy applied"
        case .policyRefused: "policy refused"
        case .commandDone: "command done"
        case .commandRefused: "command refused"
        }
    }

    /// Whom a send or forward goes to (To, then Cc); a reply's come from the original.
    public var recipients: [String] {
        switch self {
        case .send(let to, let cc, _, _), .forward(_, let to, let cc, _): to + cc
        case .more, .reply, .read, .unread, .delete, .file, .folders, .imLogin, .imSend, .imPresence, .imLogout, .policyApplied, .policyRefused, .commandDone, .commandRefused: []
        }
    }

    /// Whether the server sends mail for it.
    public var sendsMail: Bool {
        switch kind {
        case .send, .reply, .forward: true
        case .more, .read, .unread, .delete, .file, .folders, .imLogin, .imSend, .imPresence, .imLogout, .policyApplied, .policyRefused, .commandDone, .commandRefused: false
        }
    }

    public func encoded() -> [UInt8] {
        var w = PayloadWriter()
        w.uint(1, kind.rawValue)
        if let messageID { w.string(2, messageID, max: MailItem.maxMessageIDLength) }
        switch self {
        case .more, .read, .unread, .delete, .folders, .imLogout: break
        case .imLogin(let jid, let secret):
            w.string(9, jid, max: IMAddress.maxLength)
            switch secret {
            case .password(let password): w.string(10, password, max: Self.maxPasswordLength)
            case .sealed(let sealed): w.string(11, sealed, max: Self.maxSealedLength)
            }
        case .imSend(let to, let body):
            w.string(3, to, max: IMAddress.maxLength)
            w.string(6, body, max: Self.maxBodyLength)
        case .imPresence(let presence):
            w.string(12, presence.rawValue, max: 16)
        case .policyApplied(let version, let digest):
            w.uint(13, version)
            w.bytes(14, digest)
        case .policyRefused(let version, let digest, let reason):
            w.uint(13, version)
            w.bytes(14, digest)
            w.string(15, reason, max: Self.maxReasonLength)
        case .commandDone(let id, let kind):
            w.uint(16, id)
            w.uint(17, UInt64(kind.rawValue))
        case .commandRefused(let id, let reason):
            w.uint(16, id)
            w.string(15, reason, max: Self.maxReasonLength)
        case .file(_, let folder):
            w.string(8, folder, max: Self.maxFolderLength)
        case .send(let to, let cc, let subject, let body):
            Self.write(&w, to: to, cc: cc)
            w.string(5, subject, max: MailItem.maxSubjectLength)
            w.string(6, body, max: Self.maxBodyLength)
        case .reply(_, let body, let all):
            w.string(6, body, max: Self.maxBodyLength)
            w.bool(7, all)
        case .forward(_, let to, let cc, let body):
            Self.write(&w, to: to, cc: cc)
            w.string(6, body, max: Self.maxBodyLength)
        }
        return w.bytes
    }

    private static func write(_ w: inout PayloadWriter, to: [String], cc: [String]) {
        for a in to.prefix(MailItem.maxAddresses) { w.string(3, a, max: maxAddressLength) }
        for a in cc.prefix(MailItem.maxAddresses) { w.string(4, a, max: maxAddressLength) }
    }

    /// Checks each kind's fields: what the node records it must be able to act on, and
    /// nothing in it may break the record (a NUL in a Message-ID would fail the database
    /// batch it is written with) or a command line later (an address with a line break).
    public static func decode(_ bytes: [UInt8]) throws(PayloadError) -> DeviceRequest {
        let request = try decodeStored(bytes)
        if case .imLogin(_, .sealed) = request { throw PayloadError("a device sends its password, not a sealed one") }
        return request
    }

    /// A request as the node recorded it: an IM login's password sealed (`decode` is the
    /// wire's, which refuses that form).
    public static func decodeStored(_ bytes: [UInt8]) throws(PayloadError) -> DeviceRequest {
        let f = try PayloadFields(bytes)
        let raw = try f.requiredUInt(1, "kind")
        guard let kind = Kind(rawValue: raw) else { throw PayloadError("unknown request kind \(raw)") }
        switch kind {
        case .more:
            return .more(messageID: try messageID(f))
        case .send:
            let (to, cc) = try recipients(f)
            let subject = try f.string(5, max: MailItem.maxSubjectLength, "subject") ?? ""
            return .send(to: to, cc: cc, subject: subject, body: try f.string(6, max: maxBodyLength, "body") ?? "")
        case .reply:
            return .reply(messageID: try messageID(f), body: try f.string(6, max: maxBodyLength, "body") ?? "", all: try f.bool(7, "all"))
        case .forward:
            let id = try messageID(f)
            let (to, cc) = try recipients(f)
            return .forward(messageID: id, to: to, cc: cc, body: try f.string(6, max: maxBodyLength, "body") ?? "")
        case .read: return .read(messageID: try messageID(f))
        case .unread: return .unread(messageID: try messageID(f))
        case .delete: return .delete(messageID: try messageID(f))
        case .file:
            let id = try messageID(f)
            let folder = try f.requiredString(8, max: maxFolderLength, "folder")
            guard isValidFolder(folder) else { throw PayloadError("folder empty or with a control character") }
            return .file(messageID: id, folder: folder)
        case .folders: return .folders
        case .imLogin:
            let jid = try f.requiredString(9, max: IMAddress.maxLength, "jid")
            guard IMAddress.isBareJID(jid) else { throw PayloadError("jid is not a bare JID (user@domain)") }
            let password = try f.string(10, max: maxPasswordLength, "password")
            let sealed = try f.string(11, max: maxSealedLength, "sealed_password")
            switch (password, sealed) {
            case (let password?, nil):
                guard !password.isEmpty, !password.utf8.contains(0) else { throw PayloadError("password empty or with a NUL") }
                return .imLogin(jid: jid, secret: .password(password))
            case (nil, let sealed?): return .imLogin(jid: jid, secret: .sealed(sealed))
            default: throw PayloadError("an IM login needs exactly one of password and sealed_password")
            }
        case .imSend:
            let to = try f.requiredString(3, max: IMAddress.maxLength, "to")
            guard IMAddress.isBareJID(to) else { throw PayloadError("to is not a bare JID (user@domain)") }
            let body = try f.requiredString(6, max: maxBodyLength, "body")
            guard !body.isEmpty else { throw PayloadError("body empty") }
            return .imSend(to: to, body: body)
        case .imPresence:
            let raw = try f.requiredString(12, max: 16, "presence")
            guard let presence = IMPresence(rawValue: raw), presence != .offline else { throw PayloadError("presence must be available, away or busy") }
            return .imPresence(presence)
        case .imLogout: return .imLogout
        case .policyApplied:
            let digest = try f.bytes(14, max: 32, "digest")
            guard let digest, digest.count == 32 else { throw PayloadError("digest is not 32 bytes") }
            return .policyApplied(version: try f.requiredUInt(13, "version"), digest: Array(digest))
        case .policyRefused:
            let reason = try f.string(15, max: maxReasonLength, "reason") ?? ""
            let digest = try f.bytes(14, max: 32, "digest")
            guard let digest, digest.count == 32 else { throw PayloadError("digest is not 32 bytes") }
            return .policyRefused(version: try f.requiredUInt(13, "version"), digest: Array(digest), reason: MailText.printable(reason))
        case .commandDone:
            guard let kind = ITCommand.Kind(rawValue: UInt8(clamping: try f.requiredUInt(17, "command kind"))) else {
                throw PayloadError("unknown command kind")
            }
            return .commandDone(id: try f.requiredUInt(16, "command id"), kind: kind)
        case .commandRefused:
            let reason = try f.string(15, max: maxReasonLength, "reason") ?? ""
            return .commandRefused(id: try f.requiredUInt(16, "command id"), reason: MailText.printable(reason))
        }
    }

    /// A folder name a request may carry: not empty, no control character (it goes into
    /// an IMAP command, quoted, and into the database's text).
    public static func isValidFolder(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= maxFolderLength && name.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value != 0x7F }
    }

    private static func messageID(_ f: PayloadFields) throws(PayloadError) -> String {
        let id = try f.requiredString(2, max: MailItem.maxMessageIDLength, "message_id")
        guard !id.isEmpty else { throw PayloadError("message_id empty") }
        // As the server gives them: NUL above all, which the database's text refuses,
        // would fail the batch of every device's requests it is recorded with.
        guard MailItem.isValidMessageID(id) else { throw PayloadError("message_id with a space or a control character") }
        return id
    }

    private static func recipients(_ f: PayloadFields) throws(PayloadError) -> (to: [String], cc: [String]) {
        let to = try f.strings(3, max: maxAddressLength, maxCount: MailItem.maxAddresses, "to")
        let cc = try f.strings(4, max: maxAddressLength, maxCount: MailItem.maxAddresses, "cc")
        guard !to.isEmpty else { throw PayloadError("no recipient (to)") }
        for a in to + cc where !isAddressShaped(a) {
            throw PayloadError("recipient \(MailText.printable(String(a.prefix(64))).debugDescription) is not an address")
        }
        return (to, cc)
    }

    /// The wire's rule for an address: one '@' between non-empty parts, no space, control
    /// character or angle bracket (it goes into an SMTP command line). The Messaging Agent
    /// checks the full syntax and answers a bad address with a "failed" outcome.
    public static func isAddressShaped(_ a: String) -> Bool {
        let bytes = Array(a.utf8)
        guard let at = bytes.firstIndex(of: UInt8(ascii: "@")), at > 0, at < bytes.count - 1,
              bytes.lastIndex(of: UInt8(ascii: "@")) == at else { return false }
        return bytes.allSatisfy { $0 > 0x20 && $0 != 0x7F && $0 != UInt8(ascii: "<") && $0 != UInt8(ascii: ">") }
    }
}

/// What became of a device's send, reply or forward (service `sent`, server → device,
/// delivered and acknowledged like a mail): its request number, the Message-ID the mail
/// went out with, and "sent", or "failed" with a reason (unknown recipient, message too
/// large, original not found, …). Tags: 1 request_ref, 2 message_id, 3 state, 4 reason.
public struct SentOutcome: Equatable, Sendable {
    public enum State: String, Sendable { case sent, failed }
    public static let maxReasonLength = 1024

    public var requestRef: UInt64
    public var messageID: String
    public var state: State
    public var reason: String?

    public init(requestRef: UInt64, messageID: String, state: State, reason: String? = nil) {
        (self.requestRef, self.messageID, self.state, self.reason) = (requestRef, messageID, state, reason)
    }

    public func encoded() -> [UInt8] {
        var w = PayloadWriter()
        w.uint(1, requestRef)
        w.string(2, messageID, max: MailItem.maxMessageIDLength)
        w.string(3, state.rawValue, max: 16)
        if let reason { w.string(4, reason, max: Self.maxReasonLength) }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(PayloadError) -> SentOutcome {
        let f = try PayloadFields(bytes)
        let raw = try f.requiredString(3, max: 16, "state")
        guard let state = State(rawValue: raw) else { throw PayloadError("unknown state \(raw.debugDescription)") }
        return SentOutcome(requestRef: try f.requiredUInt(1, "request_ref"),
                           messageID: try f.requiredString(2, max: MailItem.maxMessageIDLength, "message_id"),
                           state: state, reason: try f.string(4, max: maxReasonLength, "reason"))
    }
}

/// The Message-ID of the mail a device's request sends: derived from (PIN, request
/// number) alone, so every node (and a drill counting from outside) names the same mail,
/// and a new primary can look for a send the old one may have completed (in the user's
/// Sent folder) instead of sending it twice. `<bramble.2A00F00D.1234@example.test>`:
/// the '@domain' ends the key, so ref 123 never matches a search for ref 1234's ID.
public enum OutgoingMessageID {
    public static func make(pin: PIN, ref: UInt64, domain: String) -> String {
        "<\(localPart(pin: pin, ref: ref))@\(domain)>"
    }

    public static func localPart(pin: PIN, ref: UInt64) -> String { "bramble.\(pin).\(ref)" }
}
