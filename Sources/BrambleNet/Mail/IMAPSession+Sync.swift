import BrambleCore

/// Reading a mailbox's changes (CONDSTORE/QRESYNC, RFC 7162), its folders, searches, and
/// large body parts in ranges. Mailbox names are as the user reads them (UTF-8); they go
/// out in modified UTF-7 and come back decoded (`MailboxName`).
extension IMAPSession {
    /// What `select(_:readOnly:qresync:)` tells: the watermarks, the UIDs expunged since
    /// the given modseq (`VANISHED (EARLIER)`), and the messages whose flags changed since.
    public struct Resynced: Sendable, Equatable {
        public var selected: Selected
        /// Expanded from the server's sets, ascending, at most `maxVanished`.
        public var vanished: [UInt64]
        public var changed: [FlagChange]
    }

    /// One message's flags, and the modseq of their last change (CONDSTORE).
    public struct FlagChange: Sendable, Equatable {
        public var uid: UInt64
        public var flags: [String]
        public var modSeq: UInt64?
        public init(uid: UInt64, flags: [String], modSeq: UInt64?) { (self.uid, self.flags, self.modSeq) = (uid, flags, modSeq) }
    }

    /// One folder of `list()`.
    public struct Folder: Sendable, Equatable {
        /// As the user reads it: decoded from modified UTF-7 (the server's name as sent when
        /// it is not valid modified UTF-7; such a folder cannot be opened by this name).
        public var name: String
        /// As the server sent it.
        public var wireName: String
        /// `\\HasNoChildren`, `\\Sent`, `\\Trash`, `\\Noselect`, …
        public var attributes: [String]
        /// The hierarchy delimiter ("." for Dovecot's Maildir); nil for a flat name space.
        public var delimiter: String?
    }

    /// A body section larger than the caller's bound: it was not fetched whole.
    public struct TooLarge: Error, CustomStringConvertible {
        public var uid: UInt64
        public var section: String
        public var limit: Int
        public var description: String { "IMAP BODY[\(section)] of UID \(uid) is larger than \(limit) bytes (not fetched whole)" }
    }

    /// The most UIDs one `select(qresync:)` expands from VANISHED, and one COPYUID maps.
    public static let maxVanished = 100_000

    /// `ENABLE caps` (RFC 5161); what the server enabled. QRESYNC must be enabled before a
    /// `select(qresync:)`.
    public mutating func enable(_ capabilities: [String]) async throws -> [String] {
        guard !capabilities.isEmpty, capabilities.allSatisfy(Self.isAtom) else {
            throw Refused(command: "ENABLE", status: .bad, text: "not capability names: \(capabilities) (not sent)")
        }
        var enabled: [String] = []
        for case .enabled(let words) in try await run("ENABLE \(capabilities.joined(separator: " "))").untagged { enabled += words }
        return enabled
    }

    /// `SELECT` (`EXAMINE`) with `QRESYNC (uidvalidity modseq [known-uids])` (RFC 7162
    /// §3.2.5; QRESYNC enabled first): the watermarks, the UIDs expunged since `modSeq`
    /// (among `knownUIDs`, a UID set, when given) and the flags changed since. The server
    /// reports nothing when `uidValidity` is not the mailbox's: compare `selected.uidValidity`.
    /// Without `qresync`, a plain SELECT (no changes). More than `maxVanished` vanished
    /// UIDs are refused (resynchronize by other means).
    public mutating func select(_ mailbox: String, readOnly: Bool = false,
                                qresync: (uidValidity: UInt64, modSeq: UInt64, knownUIDs: String?)?) async throws -> Resynced {
        let verb = readOnly ? "EXAMINE" : "SELECT"
        var command = "\(verb) \(Self.mailbox(mailbox))"
        if let qresync {
            if let known = qresync.knownUIDs, !Self.isSet(known, star: false) {
                throw Refused(command: verb, status: .bad, text: "not a UID set: \(known.debugDescription) (not sent)")
            }
            command += " (QRESYNC (\(qresync.uidValidity) \(qresync.modSeq)\(qresync.knownUIDs.map { " \($0)" } ?? "")))"
        }
        let untagged = try await run(command).untagged
        var vanished: [UInt64] = []
        var changed: [FlagChange] = []
        for u in untagged {
            switch u {
            case .vanished(_, let set):
                guard let uids = IMAPUIDSet.expand(set, maxCount: Self.maxVanished - vanished.count) else {
                    throw Refused(command: verb, status: .bad, text: "VANISHED is not a UID set of at most \(Self.maxVanished): \(set.prefix(100))")
                }
                vanished += uids
            case .fetch(_, let attributes):
                guard let uid = attributes["UID"]?.number else { continue }
                changed.append(FlagChange(uid: uid, flags: attributes["FLAGS"]?.list?.compactMap(\.text) ?? [],
                                          modSeq: attributes["MODSEQ"]?.list?.first?.number))
            default: break
            }
        }
        return Resynced(selected: Self.selected(from: untagged), vanished: Array(Set(vanished)).sorted(), changed: changed)
    }

    /// `LIST "" "*" RETURN (SPECIAL-USE)` (RFC 6154): every folder, names decoded.
    public mutating func list() async throws -> [Folder] {
        try await run("LIST \"\" \"*\" RETURN (SPECIAL-USE)").untagged.compactMap {
            guard case .list(let attributes, let delimiter, let wireName) = $0 else { return nil }
            return Folder(name: MailboxName.decode(wireName) ?? wireName, wireName: wireName, attributes: attributes, delimiter: delimiter)
        }
    }

    /// `UID SEARCH criteria`: the UIDs found, ascending. `criteria` goes into the command as
    /// it is: build its strings with `IMAPSession.astring`.
    public mutating func uidSearch(_ criteria: String) async throws -> [UInt64] {
        var found: Set<UInt64> = []
        for case .search(let numbers) in try await run("UID SEARCH \(criteria)").untagged { found.formUnion(numbers.map(UInt64.init)) }
        return found.sorted()
    }

    /// `UID SEARCH HEADER name value`: messages whose header `name` contains `value` (a
    /// substring match, case-insensitive: confirm a hit by fetching the header). The value
    /// is quoted, or sent as a literal with `CHARSET UTF-8` when it is not printable ASCII;
    /// a header name that is not one (empty, a space, a colon, a control byte) is refused.
    public mutating func uidSearch(header name: String, value: String) async throws -> [UInt64] {
        guard !name.isEmpty, name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != 0x3A }) else {
            throw Refused(command: "UID", status: .bad, text: "not a header name: \(name.debugDescription) (not sent)")
        }
        let ascii = value.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
        return try await uidSearch("\(ascii ? "" : "CHARSET UTF-8 ")HEADER \(Self.astring(name)) \(Self.astring(value))")
    }

    /// A body section of message `uid` (`""` the whole message, `"TEXT"`, `"1.2"`, `"2.MIME"`)
    /// fetched in ranges of `rangeBytes` (`BODY.PEEK[section]<offset.length>`, each below the
    /// decoder's `maxLiteral`), so a large part never arrives as one response; nil when the
    /// message is not there. More than `maxBytes` in all: `TooLarge`, after at most
    /// `maxBytes + 1` bytes were read.
    public mutating func uidFetchSection(_ uid: UInt64, section: String, maxBytes: Int,
                                         rangeBytes: Int = 8 << 20) async throws -> [UInt8]? {
        guard section.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2E || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) }),
              maxBytes >= 0, rangeBytes > 0 else {
            throw Refused(command: "UID", status: .bad, text: "not a section: \(section.debugDescription) (not sent)")
        }
        var out: [UInt8] = []
        while true {
            // One byte more than allowed tells a part that is too large.
            let want = min(rangeBytes, maxBytes - out.count + 1)
            let fetched = try await uidFetch("\(uid)", "BODY.PEEK[\(section)]<\(out.count).\(want)>")
            guard let attributes = fetched.first(where: { $0.uid == uid })?.attributes else { return nil }
            guard let value = attributes["BODY[\(section.uppercased())]<\(out.count)>"] else {
                throw Refused(command: "UID", status: .bad, text: "no BODY[\(section)]<\(out.count)> in the answer")
            }
            let bytes = value.bytes ?? []  // NIL or "" past the end
            out += bytes
            guard out.count <= maxBytes else { throw TooLarge(uid: uid, section: section, limit: maxBytes) }
            if bytes.count < want { return out }
        }
    }

    /// An IMAP atom (a capability, a flag keyword; `\\Seen` passes with its backslash).
    static func isAtom(_ s: String) -> Bool {
        let bytes = Array(s.utf8)
        return !bytes.isEmpty && bytes.enumerated().allSatisfy { i, b in
            (b > 0x20 && b < 0x7F && !"(){%*\"]\\".utf8.contains(b)) || (i == 0 && b == 0x5C && bytes.count > 1)
        }
    }

    /// A UID set as a command argument: digits, ":" and ",", and "*" where allowed.
    static func isSet(_ s: String, star: Bool) -> Bool {
        !s.isEmpty && s.utf8.count <= 1 << 16 && s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x3A || $0 == 0x2C || (star && $0 == 0x2A) }
    }
}
