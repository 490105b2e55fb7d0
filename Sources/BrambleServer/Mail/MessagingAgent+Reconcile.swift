import BrambleCore
import BrambleNet
import Foundation
import Logging

/// Reconciliation both ways, per user (`users.reconciliation`, on by default).
///
/// Device → mailbox: a device's read, unread, delete and file become `\Seen` set or
/// cleared, an expunge (or a move to Trash: `deviceDelete`), a move; the request is marked
/// done in the transaction that records the mail's new state and enqueues a `state` item
/// for the user's other devices. A failure marks it failed and tells the requester the
/// true state. Device → mailbox requests are target states: acting twice (a crash between
/// the IMAP change and its record) is harmless.
///
/// Mailbox → device: after each check of new mail, the folders holding tracked mails are
/// examined with QRESYNC from their stored (UIDVALIDITY, HIGHESTMODSEQ); flags changed
/// and UIDs vanished since come back, a vanished mail is looked for by its Message-ID in
/// the other folders, and a `state` item goes out only for a state that differs from the
/// stored one, committed with the new watermarks only if nothing was recorded for the user
/// meanwhile. A failover resumes from the stored watermarks: nothing missed, nothing replayed.
extension MessagingAgent {
    /// What a device's `delete` does in the mailbox.
    public enum DeviceDelete: String, Sendable, CaseIterable {
        /// `\Deleted` then `UID EXPUNGE` of that one mail.
        case expunge
        /// Moved to the folder with the special use `\Trash`.
        case trash
    }

    /// The most folders a vanished mail is looked for in.
    static let maxSearchedFolders = 50

    // MARK: Device → mailbox

    /// A device's read/unread/delete/file, acted on and recorded.
    func applyDeviceChange(_ request: PendingRequest, epoch: UInt64, _ c: Configuration) async throws {
        let context = try await withDeadline(ms: 5_000, clock: clock) { [store] in try await store.requestContext(request) }
        func fail(_ reason: String) async throws {
            try await withDeadline(ms: 5_000, clock: clock) { [store, pair, node] in
                try await store.failRequest(request, reason: reason, pair: pair, node: node, epoch: epoch)
            }
        }
        guard let context else { return try await fail("no such device") }
        guard context.reconciliation else { return try await fail("reconciliation is off for this user") }
        guard let tracked = context.tracked else { return try await fail("no such mail on this device") }
        let result: ConfigStore.ReconcileResult
        do {
            result = try await withDeadline(ms: 20_000, clock: clock) {
                try await Self.act(request.request, on: tracked, email: context.email, c)
            }
        } catch let refused as IMAPSession.Refused {
            // The mail server answered NO or BAD: acting again would get the same answer.
            return try await fail(Self.describeIMAP(refused).0)
        } catch {
            // The mail server did not answer: later (the request stays pending).
            let (reason, _) = Self.describeIMAP(error)
            logger.notice("a device's mailbox change failed; retrying", metadata: ["device.pin": "\(request.pin)", "request.ref": "\(request.ref)",
                                                                                 "error": "\(reason)"])
            throw error
        }
        let committed = try await withDeadline(ms: 5_000, clock: clock) { [store, pair, node] in
            try await store.finishReconcileRequest(request, userID: context.userID, result, pair: pair, node: node, epoch: epoch, origin: node)
        }
        if !committed.items.isEmpty {
            await dispatcher.committed(committed.items, keys: committed.keys)
            metrics.stateItems(committed.items.count)
        }
    }

    /// Where a mail is: its folder, UID and read state, or nil when it is in none.
    struct Located: Sendable {
        var folder: IMAPSession.Folder?
        var name: String
        var uidValidity: UInt64
        var uid: UInt64
        var seen: Bool
    }

    static func isTrash(_ folder: IMAPSession.Folder) -> Bool { folder.attributes.contains { $0.lowercased() == "\\trash" } }
    static func isSelectable(_ folder: IMAPSession.Folder) -> Bool {
        !folder.attributes.contains { ["\\noselect", "\\nonexistent"].contains($0.lowercased()) }
    }
    static func isSeen(_ flags: [String]) -> Bool { flags.contains { $0.lowercased() == "\\seen" } }

    /// The message `messageID` among `uids` of the selected folder (its Message-ID
    /// confirmed), with its read state.
    static func confirm(_ messageID: String, _ uids: [UInt64], _ session: inout IMAPSession) async throws -> (uid: UInt64, seen: Bool)? {
        guard !uids.isEmpty else { return nil }
        for (uid, attributes) in try await session.uidFetch(uids.prefix(20).map(String.init).joined(separator: ","), "UID FLAGS ENVELOPE")
        where attributes["ENVELOPE"].flatMap(MailEnvelope.init)?.messageID == messageID {
            return (uid, isSeen(attributes["FLAGS"]?.list?.compactMap(\.text) ?? []))
        }
        return nil
    }

    /// Finds a mail: where it was last seen (by UID, then by Message-ID), then in every
    /// other folder (at most `maxSearchedFolders`). Leaves the folder it is in selected
    /// (read-write).
    static func locate(_ tracked: TrackedMessage, folders: [IMAPSession.Folder], _ session: inout IMAPSession) async throws -> Located? {
        let known = folders.first { $0.name == tracked.folder }
        var order = known.map { [$0] } ?? []
        order += folders.filter { $0.name != tracked.folder && isSelectable($0) }.prefix(maxSearchedFolders)
        for folder in order {
            let selected = try await session.select(folder.name)
            guard let validity = selected.uidValidity, selected.exists > 0 else { continue }
            var hit: (uid: UInt64, seen: Bool)?
            if folder.name == tracked.folder, validity == tracked.uidValidity { hit = try await confirm(tracked.messageID, [tracked.uid], &session) }
            if hit == nil { hit = try await confirm(tracked.messageID, try await session.uidSearch(header: "Message-ID", value: tracked.messageID), &session) }
            if let hit { return Located(folder: folder, name: folder.name, uidValidity: validity, uid: hit.uid, seen: hit.seen) }
        }
        return nil
    }

    /// Does what the device asked, in one IMAP session as the user; the mail's new state.
    static func act(_ request: DeviceRequest, on tracked: TrackedMessage, email: String, _ c: Configuration) async throws -> ConfigStore.ReconcileResult {
        try await IMAPSession.with(to: c.imap, tls: c.tls, connectTimeout: .seconds(2)) { session in
            try await session.login(user: "\(email)*\(c.serviceUser)", password: c.servicePassword)
            let folders = try await session.list()
            guard let at = try await locate(tracked, folders: folders, &session) else {
                // In no folder: expunged (by another client, or by this request before a crash).
                var gone = tracked
                (gone.folder, gone.deleted) = ("", true)
                if case .delete = request { return .done(gone) }
                return .failed(reason: "the mail is no longer in the mailbox", state: gone)
            }
            var now = TrackedMessage(messageID: tracked.messageID, folder: at.name, uidValidity: at.uidValidity, uid: at.uid, seen: at.seen,
                                     deleted: at.folder.map(isTrash) ?? false)
            func move(to folder: IMAPSession.Folder) async throws {
                let map = try await session.uidMove("\(at.uid)", to: folder.name)
                let status = try await session.select(folder.name, readOnly: true)
                now.folder = folder.name
                now.uidValidity = status.uidValidity ?? 0
                if let uid = map?[at.uid] {
                    now.uid = uid
                } else if let hit = try await confirm(tracked.messageID, try await session.uidSearch(header: "Message-ID", value: tracked.messageID), &session) {
                    now.uid = hit.uid
                }
            }
            switch request {
            case .read, .unread:
                let read = request.kind == .read
                try await session.uidStore("\(at.uid)", flags: ["\\Seen"], add: read)
                now.seen = read
            case .delete:
                switch c.deviceDelete {
                case .expunge:
                    try await session.uidStore("\(at.uid)", flags: ["\\Deleted"], add: true)
                    try await session.uidExpunge("\(at.uid)")
                    (now.folder, now.deleted) = ("", true)
                case .trash:
                    guard let trash = folders.first(where: isTrash) else { return .failed(reason: "the mailbox has no Trash folder", state: now) }
                    if at.name != trash.name { try await move(to: trash) }
                    now.deleted = true
                }
            case .file(_, let name):
                guard let target = folders.first(where: { $0.name == name }), isSelectable(target) else {
                    return .failed(reason: "no folder \(MailText.printable(String(name.prefix(200))).debugDescription)", state: now)
                }
                if at.name != target.name { try await move(to: target) }
                now.deleted = isTrash(target)
            case .more, .send, .reply, .forward, .folders, .imLogin, .imSend, .imPresence, .imLogout, .policyApplied, .policyRefused, .commandDone, .commandRefused:
                return .failed(reason: "not a mailbox change", state: nil)
            }
            return .done(now)
        }
    }

    /// A `folders` request: the user's folder list.
    func answerFolders(_ request: PendingRequest, epoch: UInt64, _ c: Configuration) async throws {
        let context = try await withDeadline(ms: 5_000, clock: clock) { [store] in try await store.requestContext(request) }
        guard let context else {
            return try await withDeadline(ms: 5_000, clock: clock) { [store, pair, node] in
                try await store.failRequest(request, reason: "no such device", pair: pair, node: node, epoch: epoch)
            }
        }
        let folders = try await withDeadline(ms: 20_000, clock: clock) {
            try await IMAPSession.with(to: c.imap, tls: c.tls, connectTimeout: .seconds(2)) { session in
                try await session.login(user: "\(context.email)*\(c.serviceUser)", password: c.servicePassword)
                let list = try await session.list()
                await session.logout()
                return list
            }
        }
        let uses = ["\\all", "\\archive", "\\drafts", "\\flagged", "\\junk", "\\sent", "\\trash"]
        let list = FolderList(folders: folders.filter(Self.isSelectable).map { folder in
            .init(name: folder.name, specialUse: folder.attributes.first { uses.contains($0.lowercased()) } ?? "")
        })
        let committed = try await withDeadline(ms: 5_000, clock: clock) { [store, pair, node] in
            try await store.answerFolders(request, list, pair: pair, node: node, epoch: epoch, origin: node)
        }
        if !committed.items.isEmpty { await dispatcher.committed(committed.items, keys: committed.keys) }
    }

    // MARK: Mailbox → device

    /// What changed in the mailbox for the mails the user's devices have, recorded and
    /// sent (`state` items); `false` when someone recorded a change meanwhile (check again).
    static func reconcile(_ m: WatchedMailbox, epoch: UInt64, configuration c: Configuration, store: ConfigStore, pair: String, node: String,
                          clock: any NodeClock) async throws -> (committed: ConfigStore.CommittedPushes, stale: Bool) {
        let empty = ConfigStore.CommittedPushes(outcomes: [], keys: [:], items: [])
        guard let snapshot = try await withDeadline(ms: 5_000, clock: clock, { try await store.reconcileSnapshot(userID: m.userID) }),
              snapshot.reconciliation, !snapshot.tracked.isEmpty else { return (empty, false) }
        let (watermarks, observed) = try await withDeadline(ms: 20_000, clock: clock) {
            try await Self.observe(m, snapshot, c)
        }
        let committed = try await withDeadline(ms: 5_000, clock: clock) {
            try await store.commitReconcile(userID: m.userID, stateVersion: snapshot.stateVersion, watermarks: watermarks, observed: observed,
                                            pair: pair, node: node, epoch: epoch, origin: node)
        }
        guard let committed else { return (empty, true) }
        return (committed, false)
    }

    /// One IMAP session: each folder holding tracked mails examined with QRESYNC from its
    /// watermark (or resynchronized: no watermark, a new UIDVALIDITY, NOMODSEQ), and the
    /// mails that left it looked for elsewhere. Returns the new watermarks and the state of
    /// every tracked mail that may have changed.
    static func observe(_ m: WatchedMailbox, _ snapshot: ReconcileSnapshot, _ c: Configuration) async throws
        -> (watermarks: [String: FolderWatermark], observed: [TrackedMessage]) {
        try await IMAPSession.with(to: c.imap, tls: c.tls, connectTimeout: .seconds(2)) { session in
            try await session.login(user: "\(m.email)*\(c.serviceUser)", password: c.servicePassword)
            _ = try await session.enable(["QRESYNC"])
            let folders = try await session.list()
            let byFolder = Dictionary(grouping: snapshot.tracked, by: \.folder)
            var watermarks: [String: FolderWatermark] = [:]
            var observed: [TrackedMessage] = []
            var missing: [TrackedMessage] = []
            for (name, tracked) in byFolder.sorted(by: { $0.key < $1.key }).prefix(maxSearchedFolders) {
                guard let folder = folders.first(where: { $0.name == name }), isSelectable(folder) else {
                    missing += tracked  // the folder is gone (renamed, deleted): look for its mails
                    continue
                }
                let byUID = Dictionary(tracked.map { ($0.uid, $0) }, uniquingKeysWith: { a, _ in a })
                let known = byUID.keys.sorted().map(String.init).joined(separator: ",")
                var changes: IMAPSession.Resynced
                let mark = snapshot.watermarks[name]
                if let mark {
                    changes = try await session.select(name, readOnly: true, qresync: (mark.uidValidity, mark.highestModSeq, known.isEmpty ? nil : known))
                }
                else {
                    changes = try await session.select(name, readOnly: true, qresync: nil)
                }
                let validity = changes.selected.uidValidity ?? 0
                if mark == nil || mark?.uidValidity != validity || changes.selected.highestModSeq == nil {
                    // Resynchronize: the flags of every tracked UID (those still there, in
                    // this UIDVALIDITY); the others are looked for by Message-ID.
                    let current = tracked.filter { $0.uidValidity == validity }
                    missing += tracked.filter { $0.uidValidity != validity }
                    var flags: [UInt64: [String]] = [:]
                    if !current.isEmpty {
                        for (uid, attributes) in try await session.uidFetch(current.map { String($0.uid) }.joined(separator: ","), "UID FLAGS") {
                            flags[uid] = attributes["FLAGS"]?.list?.compactMap(\.text) ?? []
                        }
                    }
                    changes.vanished = current.map(\.uid).filter { flags[$0] == nil }
                    changes.changed = flags.map { IMAPSession.FlagChange(uid: $0.key, flags: $0.value, modSeq: nil) }
                }
                if let highest = changes.selected.highestModSeq { watermarks[name] = FolderWatermark(uidValidity: validity, highestModSeq: highest) }
                let trash = isTrash(folder)
                for change in changes.changed {
                    guard var message = byUID[change.uid], message.uidValidity == validity else { continue }
                    message.seen = isSeen(change.flags)
                    message.deleted = trash
                    observed.append(message)
                }
                for uid in changes.vanished { if let message = byUID[uid] { missing.append(message) } }
            }
            // Vanished: filed elsewhere, in the Trash, or expunged.
            if !missing.isEmpty {
                var left = Dictionary(missing.map { ($0.messageID, $0) }, uniquingKeysWith: { a, _ in a })
                for folder in folders.filter(isSelectable).prefix(maxSearchedFolders) where !left.isEmpty {
                    let selected = try await session.select(folder.name, readOnly: true, qresync: nil).selected
                    guard let validity = selected.uidValidity, selected.exists > 0 else { continue }
                    for (id, message) in left {
                        // Not where it was: a hit under the same UID in the same folder is the mail still there.
                        guard let hit = try await confirm(id, try await session.uidSearch(header: "Message-ID", value: id), &session) else { continue }
                        if folder.name == message.folder && validity == message.uidValidity && hit.uid == message.uid { continue }
                        observed.append(TrackedMessage(messageID: id, folder: folder.name, uidValidity: validity, uid: hit.uid, seen: hit.seen,
                                                       deleted: isTrash(folder)))
                        left[id] = nil
                    }
                }
                for var message in left.values {
                    (message.folder, message.deleted) = ("", true)
                    observed.append(message)
                }
            }
            await session.logout()
            return (watermarks, observed)
        }
    }
}
