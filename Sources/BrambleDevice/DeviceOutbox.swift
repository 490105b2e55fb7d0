import BrambleCore
import BrambleNet
import Foundation
import NIOConcurrencyHelpers
#if canImport(Glibc)
import Glibc
#endif

/// The device's outbox: requests it has made (More, …) under its own request numbers,
/// kept until the server acknowledges them, retried meanwhile. Persisted beside the
/// state file, so a restarted device neither forgets a request nor reuses a number (the
/// server would take a reused number for a repeat and not act on it).
///
/// Requests come in through the control spool, `STATE.control/`: `bramble-device
/// control` writes one file per request there (atomically), and the running device takes
/// each into the outbox and removes it.
public final class DeviceOutbox: @unchecked Sendable {
    /// A request waiting for the server's acknowledgement: its number and its encoded
    /// `DeviceRequest`. (An outbox saved before sends existed holds `message_id`, a More.)
    public struct Entry: Codable, Equatable, Sendable {
        public var ref: UInt64
        public var request: DeviceRequest
        enum CodingKeys: String, CodingKey {
            case ref, payload
            case messageID = "message_id"
        }

        public init(ref: UInt64, request: DeviceRequest) { (self.ref, self.request) = (ref, request) }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            ref = try c.decode(UInt64.self, forKey: .ref)
            if let payload = try c.decodeIfPresent(Data.self, forKey: .payload) {
                do { request = try DeviceRequest.decode(Array(payload)) } catch {
                    throw DecodingError.dataCorruptedError(forKey: .payload, in: c, debugDescription: "\(error)")
                }
            } else {
                request = .more(messageID: try c.decode(String.self, forKey: .messageID))
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(ref, forKey: .ref)
            try c.encode(Data(request.encoded()), forKey: .payload)
        }
    }

    struct State: Codable {
        var nextRef: UInt64 = 1
        var pending: [Entry] = []
        /// Numbers below this may have been used by acknowledgements, which are not saved
        /// one by one: a restarted device starts here.
        var reservedRef: UInt64?
        enum CodingKeys: String, CodingKey {
            case nextRef = "next_ref"
            case pending
            case reservedRef = "reserved_ref"
        }
    }

    /// Acknowledgement numbers are reserved (saved) this many at a time.
    static let reservation: UInt64 = 1_000

    /// A spooled request's file: a 64 KB body with every character escaped, and 200
    /// addresses, fit.
    public static let maxSpoolFileBytes = 512 * 1024

    /// A device holds at most this many unacknowledged requests; the spool waits beyond.
    public static let maxPending = 256
    private let path: String?
    public let spool: String?
    private let lock = NIOLock()
    private var state = State()

    /// `statePath` nil: in memory, no spool; `spool` false: no spool either.
    public init(statePath: String?, spool takesSpool: Bool = true) throws {
        path = statePath.map { $0 + ".outbox" }
        spool = takesSpool ? statePath.map(Self.spoolDirectory) : nil
        if let path, let data = FileManager.default.contents(atPath: path) {
            state = try JSONDecoder().decode(State.self, from: data)
            state.nextRef = max(state.nextRef, state.reservedRef ?? 0)
        } else {
            // No state yet (or none kept): numbers start from the clock (ms × 1,024), so
            // they go up past any a run of this device without this state used, and the
            // server's replay window and request floor take them.
            state.nextRef = UInt64(Date().timeIntervalSince1970 * 1000) << 10
        }
        if let spool { try FileManager.default.createDirectory(atPath: spool, withIntermediateDirectories: true) }
    }

    public static func spoolDirectory(statePath: String) -> String { statePath + ".control" }

    /// Writes a file into a running device's spool, mode 0600 from its creation and
    /// atomically (the device never sees half a file); its path.
    static func spool(_ bytes: Data, statePath: String, suffix: String, what: String) throws -> String {
        let spool = spoolDirectory(statePath: statePath)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: spool, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: spool])
        }
        let name = "\(spool)/\(Int(Date().timeIntervalSince1970 * 1000))-\(UUID().uuidString.prefix(8)).\(suffix)"
        try SecretFilePermissions.replace(name, bytes: bytes, what: what)
        return name
    }

    public var pending: [Entry] { lock.withLock { state.pending } }

    /// Adds a request; returns its number.
    @discardableResult
    public func add(_ request: DeviceRequest) throws -> UInt64 {
        try lock.withLock {
            let ref = state.nextRef
            state.nextRef += 1
            state.pending.append(Entry(ref: ref, request: request))
            try save()
            return ref
        }
    }

    /// The number of the next acknowledgement frame. Requests and acknowledgements share
    /// one sequence that never goes back, across restarts too: the server refuses a
    /// device frame numbered at or below one it has taken (a replay).
    public func nextFrameNumber() throws -> UInt64 {
        try lock.withLock {
            let n = state.nextRef
            state.nextRef += 1
            if path != nil, state.nextRef > state.reservedRef ?? 0 {
                state.reservedRef = state.nextRef + Self.reservation
                try save()
            }
            return n
        }
    }

    /// Drops what the server acknowledged; returns the entries that were pending (each
    /// once: a repeated acknowledgement finds nothing).
    @discardableResult
    public func acknowledge(_ refs: [UInt64]) throws -> [Entry] {
        try lock.withLock {
            let acknowledged = Set(refs)
            let dropped = state.pending.filter { acknowledged.contains($0.ref) }
            guard !dropped.isEmpty else { return [] }
            state.pending.removeAll { acknowledged.contains($0.ref) }
            try save()
            return dropped
        }
    }

    /// Moves the spool's requests into the outbox (oldest first), up to `maxPending`.
    /// Each file is first renamed `NAME.taken`, so a crash can lose the file's request
    /// (the user asks again) but never send it twice; a file that is not a request (not
    /// a regular file of at most `maxSpoolFileBytes` of JSON the node would take) is set
    /// aside as `NAME.rejected`.
    public func takeSpooled() throws -> [UInt64] {
        guard let spool else { return [] }
        let names = try FileManager.default.contentsOfDirectory(atPath: spool).filter { $0.hasSuffix(".request") }.sorted()
        var refs: [UInt64] = []
        for name in names where pending.count < Self.maxPending {
            let file = spool + "/" + name, taken = file + ".taken"
            guard rename(file, taken) == 0 else { continue }
            guard let data = Self.readSmallRegularFile(taken, max: Self.maxSpoolFileBytes), let request = try? DeviceControlRequest.parse(data) else {
                _ = rename(taken, file + ".rejected")
                continue
            }
            refs.append(try add(request))
            unlink(taken)
        }
        return refs
    }

    /// The file's bytes if it is a regular file (not a link, FIFO or device) of at most `max` bytes.
    static func readSmallRegularFile(_ path: String, max: Int) -> Data? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_size <= max else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        return n == bytes.count ? Data(bytes) : nil
    }

    private func save() throws {
        guard let path else { return }
        // 0600: an IM login waits here with its password until the server records it.
        try SecretFilePermissions.replace(path, bytes: try JSONEncoder().encode(state), what: "device outbox")
    }
}

/// A request in the control spool, as `bramble-device control` writes it:
/// `{"verb": "more"|"send"|"reply"|"forward"|"read"|"unread"|"delete"|"file"|"folders"|
/// "im-login"|"im-send"|"im-presence"|"im-logout", "message_id", "to", "cc", "subject",
/// "body", "all", "folder", "jid", "password", "presence"}` (each verb with its fields).
/// The file is mode 0600 from its creation (an IM login's carries its password).
public struct DeviceControlRequest: Codable, Sendable, Equatable {
    public static let verbs = ["more", "send", "reply", "forward", "read", "unread", "delete", "file", "folders",
                               "im-login", "im-send", "im-presence", "im-logout"]

    public var verb: String
    public var messageID: String?
    public var to: [String]?
    public var cc: [String]?
    public var subject: String?
    public var body: String?
    public var all: Bool?
    public var folder: String?
    public var jid: String?
    public var password: String?
    public var presence: String?
    enum CodingKeys: String, CodingKey {
        case verb, to, cc, subject, body, all, folder, jid, password, presence
        case messageID = "message_id"
    }

    public init(verb: String, messageID: String? = nil, to: [String]? = nil, cc: [String]? = nil,
                subject: String? = nil, body: String? = nil, all: Bool? = nil, folder: String? = nil,
                jid: String? = nil, password: String? = nil, presence: String? = nil) {
        (self.verb, self.messageID, self.to, self.cc) = (verb, messageID, to, cc)
        (self.subject, self.body, self.all, self.folder) = (subject, body, all, folder)
        (self.jid, self.password, self.presence) = (jid, password, presence)
    }

    public init(more messageID: String) { self.init(verb: "more", messageID: messageID) }

    /// What is wrong with the request, in words for the command line.
    public struct Invalid: Error, CustomStringConvertible { public let description: String }

    /// The device request, checked by the node's own rules (`DeviceRequest.decode`): a
    /// request the node would refuse is never sent, so never retried forever. A field
    /// over its bound is refused here, not cut.
    public func request() throws(Invalid) -> DeviceRequest {
        let body = body ?? "", to = to ?? [], cc = cc ?? []
        func need(_ field: String?, _ name: String) throws(Invalid) -> String {
            guard let field else { throw Invalid(description: "\(verb) needs \(name)") }
            return field
        }
        func check(_ ok: Bool, _ what: String) throws(Invalid) { if !ok { throw Invalid(description: what) } }
        try check(body.utf8.count <= DeviceRequest.maxBodyLength, "the body is over \(DeviceRequest.maxBodyLength) bytes")
        try check((subject ?? "").utf8.count <= MailItem.maxSubjectLength, "the subject is over \(MailItem.maxSubjectLength) bytes")
        try check(to.count <= MailItem.maxAddresses && cc.count <= MailItem.maxAddresses, "more than \(MailItem.maxAddresses) addresses in to or cc")
        for a in to + cc where !verb.hasPrefix("im-") {
            try check(DeviceRequest.isAddressShaped(a) && a.utf8.count <= DeviceRequest.maxAddressLength, "\(a.debugDescription) is not an address")
        }
        let request: DeviceRequest
        switch verb {
        case "more":
            request = .more(messageID: try need(messageID, "a MESSAGE_ID"))
        case "send":
            try check(!to.isEmpty, "send needs --to")
            request = .send(to: to, cc: cc, subject: subject ?? "", body: body)
        case "reply":
            try check(to.isEmpty && cc.isEmpty, "reply takes no --to or --cc (--all replies to everyone)")
            request = .reply(messageID: try need(messageID, "a MESSAGE_ID"), body: body, all: all ?? false)
        case "forward":
            try check(!to.isEmpty, "forward needs --to")
            request = .forward(messageID: try need(messageID, "a MESSAGE_ID"), to: to, cc: cc, body: body)
        case "read": request = .read(messageID: try need(messageID, "a MESSAGE_ID"))
        case "unread": request = .unread(messageID: try need(messageID, "a MESSAGE_ID"))
        case "delete": request = .delete(messageID: try need(messageID, "a MESSAGE_ID"))
        case "file":
            let folder = try need(folder, "a FOLDER")
            try check(DeviceRequest.isValidFolder(folder), "FOLDER must be 1–\(DeviceRequest.maxFolderLength) bytes with no control character")
            request = .file(messageID: try need(messageID, "a MESSAGE_ID"), folder: folder)
        case "folders": request = .folders
        case "im-login":
            let jid = try need(jid, "a JID")
            try check(IMAddress.isBareJID(jid), "\(jid.debugDescription) is not a bare JID (user@domain)")
            let password = try need(password, "a password")
            try check(!password.isEmpty && password.utf8.count <= DeviceRequest.maxPasswordLength, "the password must be 1–\(DeviceRequest.maxPasswordLength) bytes")
            request = .imLogin(jid: jid, secret: .password(password))
        case "im-send":
            try check(to.count == 1, "im send needs one --to JID")
            try check(IMAddress.isBareJID(to[0]), "\(to[0].debugDescription) is not a bare JID (user@domain)")
            try check(!body.isEmpty, "im send needs a --body")
            request = .imSend(to: to[0], body: body)
        case "im-presence":
            let raw = try need(presence, "a presence (available, away, busy)")
            guard let p = IMPresence(rawValue: raw), p != .offline else { throw Invalid(description: "the presence is available, away or busy") }
            request = .imPresence(p)
        case "im-logout": request = .imLogout
        default:
            throw Invalid(description: "unknown verb \(verb.debugDescription); the verbs are: \(Self.verbs.joined(separator: ", "))")
        }
        do {
            return try DeviceRequest.decode(request.encoded())
        } catch {
            throw Invalid(description: "\(error)")
        }
    }

    static func parse(_ data: Data) throws -> DeviceRequest {
        try JSONDecoder().decode(DeviceControlRequest.self, from: data).request()
    }

    /// Writes the request into a running device's spool (atomically: the device never
    /// sees half a file).
    public func submit(statePath: String) throws -> String {
        try DeviceOutbox.spool(try JSONEncoder().encode(self), statePath: statePath, suffix: "request", what: "control request")
    }
}
