import BrambleCore
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
    public struct Entry: Codable, Equatable, Sendable {
        public var ref: UInt64
        public var messageID: String
        enum CodingKeys: String, CodingKey {
            case ref
            case messageID = "message_id"
        }
        public var request: DeviceRequest { .more(messageID: messageID) }
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

    public var pending: [Entry] { lock.withLock { state.pending } }

    /// Adds a request; returns its number.
    @discardableResult
    public func add(_ request: DeviceRequest) throws -> UInt64 {
        try lock.withLock {
            guard case .more(let id) = request else { return 0 }
            let ref = state.nextRef
            state.nextRef += 1
            state.pending.append(Entry(ref: ref, messageID: id))
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

    /// Drops what the server acknowledged; returns how many were pending.
    @discardableResult
    public func acknowledge(_ refs: [UInt64]) throws -> Int {
        try lock.withLock {
            let before = state.pending.count
            state.pending.removeAll { refs.contains($0.ref) }
            if state.pending.count != before { try save() }
            return before - state.pending.count
        }
    }

    /// Moves the spool's requests into the outbox (oldest first), up to `maxPending`.
    /// Each file is first renamed `NAME.taken`, so a crash can lose the file's request
    /// (the user asks again) but never send it twice; a file that is not a request (not
    /// a regular file of at most 4 KB of JSON) is set aside as `NAME.rejected`.
    public func takeSpooled() throws -> [UInt64] {
        guard let spool else { return [] }
        let names = try FileManager.default.contentsOfDirectory(atPath: spool).filter { $0.hasSuffix(".request") }.sorted()
        var refs: [UInt64] = []
        for name in names where pending.count < Self.maxPending {
            let file = spool + "/" + name, taken = file + ".taken"
            guard rename(file, taken) == 0 else { continue }
            guard let data = Self.readSmallRegularFile(taken, max: 4096), let request = try? DeviceControlRequest.parse(data) else {
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
        try JSONEncoder().encode(state).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}

/// A request in the control spool: `{"verb": "more", "message_id": "…"}`.
public struct DeviceControlRequest: Codable, Sendable {
    public var verb: String
    public var messageID: String
    enum CodingKeys: String, CodingKey {
        case verb
        case messageID = "message_id"
    }

    public init(more messageID: String) { (verb, self.messageID) = ("more", messageID) }

    static func parse(_ data: Data) throws -> DeviceRequest {
        let r = try JSONDecoder().decode(DeviceControlRequest.self, from: data)
        // The node's rule (a request it would refuse is never sent, so never retried forever).
        guard r.verb == "more", MailItem.isValidMessageID(r.messageID) else {
            throw CocoaError(.coderInvalidValue)
        }
        return .more(messageID: r.messageID)
    }

    /// Writes the request into a running device's spool (atomically: the device never
    /// sees half a file).
    public func submit(statePath: String) throws -> String {
        let spool = DeviceOutbox.spoolDirectory(statePath: statePath)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: spool, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: spool])
        }
        let name = "\(spool)/\(Int(Date().timeIntervalSince1970 * 1000))-\(UUID().uuidString.prefix(8)).request"
        try JSONEncoder().encode(self).write(to: URL(fileURLWithPath: name), options: .atomic)
        return name
    }
}
