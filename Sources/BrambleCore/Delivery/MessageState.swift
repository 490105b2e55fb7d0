/// The state of a mail in the user's mailbox (service `state`, server → device, delivered
/// and acknowledged like a mail): read (\Seen), deleted (expunged, or in the Trash), and
/// the folder it is in (UTF-8; "" once expunged). Sent when another client (or another of
/// the user's devices) changed it, and to a device whose read/unread/delete/file failed,
/// with the true state. Tags: 1 message_id, 2 read, 3 deleted, 4 folder.
public struct MessageState: Equatable, Sendable {
    public var messageID: String
    public var read: Bool
    public var deleted: Bool
    public var folder: String

    public init(messageID: String, read: Bool, deleted: Bool, folder: String) {
        (self.messageID, self.read, self.deleted, self.folder) = (messageID, read, deleted, folder)
    }

    public func encoded() -> [UInt8] {
        var w = PayloadWriter()
        w.string(1, messageID, max: MailItem.maxMessageIDLength)
        w.bool(2, read)
        w.bool(3, deleted)
        w.string(4, folder, max: DeviceRequest.maxFolderLength)
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(PayloadError) -> MessageState {
        let f = try PayloadFields(bytes)
        return MessageState(messageID: try f.requiredString(1, max: MailItem.maxMessageIDLength, "message_id"), read: try f.bool(2, "read"),
                            deleted: try f.bool(3, "deleted"), folder: try f.string(4, max: DeviceRequest.maxFolderLength, "folder") ?? "")
    }
}

/// The user's folders (service `folders`, server → device, delivered and acknowledged like
/// a mail), the answer to a `folders` request: each folder's name (UTF-8) and its special
/// use (RFC 6154: `\Sent`, `\Trash`, …; "" for none). Tags: 1 folder (repeated record:
/// 1 name, 2 special_use).
public struct FolderList: Equatable, Sendable {
    public struct Folder: Equatable, Sendable, Codable {
        public var name: String
        public var special_use: String
        public init(name: String, specialUse: String) { (self.name, self.special_use) = (name, specialUse) }
    }
    public static let maxFolders = 1000
    public static let maxSpecialUseLength = 64
    /// What the list may take of a frame's payload: folders past it are left out.
    public static let budget = 192 * 1024

    public var folders: [Folder]
    public init(folders: [Folder]) { self.folders = folders }

    public func encoded() -> [UInt8] {
        var w = PayloadWriter()
        for folder in folders.prefix(Self.maxFolders) where w.bytes.count < Self.budget {
            var r = PayloadWriter()
            r.string(1, folder.name, max: DeviceRequest.maxFolderLength)
            r.string(2, folder.special_use, max: Self.maxSpecialUseLength)
            w.record(1, r)
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(PayloadError) -> FolderList {
        let f = try PayloadFields(bytes)
        var out: [Folder] = []
        for r in try f.records(1, maxCount: maxFolders, "folders") {
            out.append(Folder(name: try r.requiredString(1, max: DeviceRequest.maxFolderLength, "name"),
                              specialUse: try r.string(2, max: maxSpecialUseLength, "special_use") ?? ""))
        }
        return FolderList(folders: out)
    }
}
