import BrambleCore

/// Changing a selected mailbox (not EXAMINEd): flags, moves (RFC 6851) and expunges of
/// chosen UIDs (UIDPLUS, RFC 4315). Sets are UID sets ("3", "1:4,9", "5:*").
extension IMAPSession {
    /// `UID STORE set ±FLAGS.SILENT (flags)`: adds (`add`) or removes `flags` (`\\Seen`,
    /// `\\Deleted`, keywords). Returns the new MODSEQ of each UID the server reported one
    /// for (with CONDSTORE enabled).
    @discardableResult
    public mutating func uidStore(_ set: String, flags: [String], add: Bool) async throws -> [UInt64: UInt64] {
        guard Self.isSet(set, star: true), flags.allSatisfy(Self.isAtom) else {
            throw Refused(command: "UID", status: .bad, text: "not a UID set or flags: \(set.debugDescription) \(flags) (not sent)")
        }
        let answer = try await run("UID STORE \(set) \(add ? "+" : "-")FLAGS.SILENT (\(flags.joined(separator: " ")))")
        var modSeqs: [UInt64: UInt64] = [:]
        for case .fetch(_, let attributes) in answer.untagged {
            if let uid = attributes["UID"]?.number, let modSeq = attributes["MODSEQ"]?.list?.first?.number { modSeqs[uid] = modSeq }
        }
        return modSeqs
    }

    /// `UID MOVE set mailbox`: the old UID → new UID mapping from the server's COPYUID
    /// (UIDPLUS), or nil when it gave none.
    @discardableResult
    public mutating func uidMove(_ set: String, to mailbox: String) async throws -> [UInt64: UInt64]? {
        guard Self.isSet(set, star: true) else {
            throw Refused(command: "UID", status: .bad, text: "not a UID set: \(set.debugDescription) (not sent)")
        }
        let answer = try await run("UID MOVE \(set) \(Self.mailbox(mailbox))")
        // Dovecot sends COPYUID in an untagged OK before the expunges (RFC 6851 §4.3); the
        // tagged OK may carry it too.
        let codes = answer.untagged.compactMap { if case .status(.ok, let code?, _) = $0 { code } else { nil } } + [answer.code].compactMap { $0 }
        for code in codes where code.name == "COPYUID" && code.values.count == 3 {
            guard let from = code.values[1].text.flatMap({ IMAPUIDSet.expand($0, maxCount: Self.maxVanished) }),
                  let to = code.values[2].text.flatMap({ IMAPUIDSet.expand($0, maxCount: Self.maxVanished) }),
                  from.count == to.count else { return nil }
            return Dictionary(zip(from, to), uniquingKeysWith: { first, _ in first })
        }
        return nil
    }

    /// `UID EXPUNGE set`: removes the messages of `set` that are marked `\\Deleted`, and no
    /// others (UIDPLUS).
    public mutating func uidExpunge(_ set: String) async throws {
        guard Self.isSet(set, star: true) else {
            throw Refused(command: "UID", status: .bad, text: "not a UID set: \(set.debugDescription) (not sent)")
        }
        try await run("UID EXPUNGE \(set)")
    }
}
