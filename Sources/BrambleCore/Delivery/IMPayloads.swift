/// Instant messaging's payloads (the Collaboration Service ↔ the device), all in the
/// tagged-field encoding (`PayloadWriter`), delivered and acknowledged like a mail.

extension DeviceRequest.Kind {
    /// The kinds the Collaboration Service acts on.
    public var isIM: Bool {
        switch self {
        case .imLogin, .imSend, .imPresence, .imLogout: true
        case .more, .send, .reply, .forward, .read, .unread, .delete, .file, .folders, .policyApplied, .policyRefused, .commandDone, .commandRefused: false
        }
    }
    public static let imKinds: [DeviceRequest.Kind] = [.imLogin, .imSend, .imPresence, .imLogout]
}

/// A presence as the device shows it; XMPP's `<show/>` values map onto it (RFC 6121
/// §4.7.2.1: none = available, away and xa = away, dnd = busy, chat = available).
public enum IMPresence: String, Equatable, Sendable, Codable, CaseIterable {
    case available, away, busy, offline

    /// The `<show/>` a device's presence is sent with (nil: none, available).
    public var show: String? {
        switch self {
        case .available, .offline: nil
        case .away: "away"
        case .busy: "dnd"
        }
    }

    /// A received presence: `type` unavailable is offline; else from `show`.
    public init(type: String?, show: String?) {
        if type == "unavailable" { self = .offline; return }
        switch show {
        case "away", "xa": self = .away
        case "dnd": self = .busy
        default: self = .available
        }
    }
}

/// The rules for the JIDs the device and the wire carry: bare JIDs, `local@domain`,
/// printable, no space, no resource; RFC 7622's parts are at most 1023 bytes each, the
/// device's at most 1023 in all.
public enum IMAddress {
    public static let maxLength = 1023

    public static func isBareJID(_ jid: String) -> Bool {
        let bytes = Array(jid.utf8)
        guard !bytes.isEmpty, bytes.count <= maxLength,
              let at = bytes.firstIndex(of: UInt8(ascii: "@")), at > 0, at < bytes.count - 1,
              bytes.lastIndex(of: UInt8(ascii: "@")) == at else { return false }
        // No resource, and nothing XMPP forbids in a localpart or that would break a log line.
        let forbidden: Set<UInt8> = [UInt8(ascii: "/"), UInt8(ascii: "\""), UInt8(ascii: "&"), UInt8(ascii: "'"),
                                     UInt8(ascii: ":"), UInt8(ascii: "<"), UInt8(ascii: ">")]
        return bytes.allSatisfy { $0 > 0x20 && $0 != 0x7F && !forbidden.contains($0) }
    }

    /// The bare JID of a full one (`user@domain/resource` → `user@domain`), lowercased
    /// (the localpart and domain compare case-insensitively for what Bramble uses).
    public static func bare(_ jid: String) -> String {
        String(jid.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).first ?? "").lowercased()
    }

    public static func domain(_ jid: String) -> String {
        String(bare(jid).split(separator: "@").last ?? "")
    }
}

/// What became of an IM login, or why a session ended (service `imSession`): `state`
/// logged-in, logged-out, server-busy (BES's "Server Busy": the pair's maximum of sessions
/// is reached and none is idle), or failed (BES's "Failed", and every other refusal: no
/// permission, a wrong password, the IM server unreachable, the server's own limit).
/// Tags: 1 jid, 2 state, 3 reason, 4 request_ref (the login or logout it answers; absent
/// when the server ended the session).
public struct IMSessionOutcome: Equatable, Sendable {
    public enum State: String, Sendable, Codable { case loggedIn = "logged-in", loggedOut = "logged-out", serverBusy = "server-busy", failed }
    public static let maxReasonLength = 1024

    public var jid: String
    public var state: State
    public var reason: String?
    public var requestRef: UInt64?

    public init(jid: String, state: State, reason: String? = nil, requestRef: UInt64? = nil) {
        (self.jid, self.state, self.reason, self.requestRef) = (jid, state, reason, requestRef)
    }

    public func encoded() -> [UInt8] {
        var w = PayloadWriter()
        w.string(1, jid, max: IMAddress.maxLength)
        w.string(2, state.rawValue, max: 16)
        if let reason { w.string(3, reason, max: Self.maxReasonLength) }
        if let requestRef { w.uint(4, requestRef) }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(PayloadError) -> IMSessionOutcome {
        let f = try PayloadFields(bytes)
        let raw = try f.requiredString(2, max: 16, "state")
        guard let state = State(rawValue: raw) else { throw PayloadError("unknown state \(raw.debugDescription)") }
        return IMSessionOutcome(jid: try f.requiredString(1, max: IMAddress.maxLength, "jid"), state: state,
                                reason: try f.string(3, max: maxReasonLength, "reason"), requestRef: try f.uint(4, "request_ref"))
    }
}

/// One instant message (service `im`): received by the device user (`from` a contact),
/// or sent by them from the device (`from` themselves, `ref` the request that sent it;
/// `error` if the IM server refused it). `id` is the message's id attribute as the sender
/// gave it (a device's own: `bramble-PIN-REF`); `receivedAt` when the IM server took it
/// (milliseconds since 1970). Tags: 1 from, 2 to, 3 id, 4 body, 5 received_at, 6 ref,
/// 7 error.
public struct IMMessage: Equatable, Sendable {
    public static let maxIDLength = 256
    public static let maxBodyLength = 64 * 1024
    public static let maxErrorLength = 1024

    public var from: String
    public var to: String
    public var id: String
    public var body: String
    public var receivedAtMs: UInt64
    public var ref: UInt64?
    public var error: String?

    public init(from: String, to: String, id: String, body: String, receivedAtMs: UInt64, ref: UInt64? = nil, error: String? = nil) {
        (self.from, self.to, self.id, self.body, self.receivedAtMs, self.ref, self.error) = (from, to, id, body, receivedAtMs, ref, error)
    }

    public func encoded() -> [UInt8] {
        var w = PayloadWriter()
        w.string(1, from, max: IMAddress.maxLength)
        w.string(2, to, max: IMAddress.maxLength)
        w.string(3, id, max: Self.maxIDLength)
        w.string(4, body, max: Self.maxBodyLength)
        w.uint(5, receivedAtMs)
        if let ref { w.uint(6, ref) }
        if let error { w.string(7, error, max: Self.maxErrorLength) }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(PayloadError) -> IMMessage {
        let f = try PayloadFields(bytes)
        return IMMessage(from: try f.requiredString(1, max: IMAddress.maxLength, "from"), to: try f.requiredString(2, max: IMAddress.maxLength, "to"),
                         id: try f.string(3, max: maxIDLength, "id") ?? "", body: try f.string(4, max: maxBodyLength, "body") ?? "",
                         receivedAtMs: try f.requiredUInt(5, "received_at"), ref: try f.uint(6, "ref"),
                         error: try f.string(7, max: maxErrorLength, "error"))
    }

    /// The id a device's message goes out with: from (PIN, request number) alone, so a
    /// new primary resending it after a failover names the same message.
    public static func deviceMessageID(pin: PIN, ref: UInt64) -> String { "bramble-\(pin)-\(ref)" }
}

/// The device user's contacts (service `imContacts`): the roster, each with their
/// presence, sent at login and when the roster changes. Tags: 1 contact (repeated record:
/// 1 jid, 2 name, 3 presence, 4 status).
public struct IMContactList: Equatable, Sendable {
    public struct Contact: Equatable, Sendable, Codable {
        public var jid: String
        public var name: String
        public var presence: IMPresence
        public var status: String
        public init(jid: String, name: String, presence: IMPresence, status: String = "") {
            (self.jid, self.name, self.presence, self.status) = (jid, name, presence, status)
        }
    }
    public static let maxContacts = 2000
    public static let maxNameLength = 256
    public static let maxStatusLength = 1024
    /// What the list may take of a frame's payload: contacts past it are left out.
    public static let budget = 192 * 1024

    public var contacts: [Contact]
    public init(contacts: [Contact]) { self.contacts = contacts }

    public func encoded() -> [UInt8] {
        var w = PayloadWriter()
        for c in contacts.prefix(Self.maxContacts) where w.bytes.count < Self.budget {
            var r = PayloadWriter()
            r.string(1, c.jid, max: IMAddress.maxLength)
            r.string(2, c.name, max: Self.maxNameLength)
            r.string(3, c.presence.rawValue, max: 16)
            r.string(4, c.status, max: Self.maxStatusLength)
            w.record(1, r)
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(PayloadError) -> IMContactList {
        let f = try PayloadFields(bytes)
        var out: [Contact] = []
        for r in try f.records(1, maxCount: maxContacts, "contact") {
            let raw = try r.requiredString(3, max: 16, "presence")
            guard let presence = IMPresence(rawValue: raw) else { throw PayloadError("unknown presence \(raw.debugDescription)") }
            out.append(Contact(jid: try r.requiredString(1, max: IMAddress.maxLength, "jid"), name: try r.string(2, max: maxNameLength, "name") ?? "",
                               presence: presence, status: try r.string(4, max: maxStatusLength, "status") ?? ""))
        }
        return IMContactList(contacts: out)
    }
}

/// A contact's presence changed (service `imPresence`). Tags: 1 jid, 2 presence, 3 status.
public struct IMPresenceUpdate: Equatable, Sendable {
    public var jid: String
    public var presence: IMPresence
    public var status: String

    public init(jid: String, presence: IMPresence, status: String = "") { (self.jid, self.presence, self.status) = (jid, presence, status) }

    public func encoded() -> [UInt8] {
        var w = PayloadWriter()
        w.string(1, jid, max: IMAddress.maxLength)
        w.string(2, presence.rawValue, max: 16)
        w.string(3, status, max: IMContactList.maxStatusLength)
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(PayloadError) -> IMPresenceUpdate {
        let f = try PayloadFields(bytes)
        let raw = try f.requiredString(2, max: 16, "presence")
        guard let presence = IMPresence(rawValue: raw) else { throw PayloadError("unknown presence \(raw.debugDescription)") }
        return IMPresenceUpdate(jid: try f.requiredString(1, max: IMAddress.maxLength, "jid"), presence: presence,
                                status: try f.string(3, max: IMContactList.maxStatusLength, "status") ?? "")
    }
}
