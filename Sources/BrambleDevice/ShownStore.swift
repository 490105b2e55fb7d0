import BrambleCore
import Foundation

/// Remembers what a device has shown, across restarts.
///
/// The JSON-lines log is the record of what was shown: an item is shown by appending
/// its line, then the small state file (high-water mark plus the few above it) is
/// rewritten atomically. At start both are read, so a kill between the two steps
/// neither loses the item nor shows it again.
final class ShownStore {
    private(set) var shown = ShownSet()
    private let statePath: String?
    private let log: FileHandle?
    private let printToStdout: Bool

    init(statePath: String?, logPath: String?, printToStdout: Bool) throws {
        self.statePath = statePath
        self.printToStdout = printToStdout
        if let statePath, let data = FileManager.default.contents(atPath: statePath) {
            shown = try JSONDecoder().decode(ShownSet.self, from: data)
        }
        if let logPath {
            let existing = FileManager.default.contents(atPath: logPath)
            let decoder = JSONDecoder()
            for line in existing?.split(separator: UInt8(ascii: "\n")) ?? [] {
                // A line cut short by a kill holds no complete item: skip it.
                if let item = try? decoder.decode(RefOnly.self, from: line), let seq = item.shownSeq { shown.insert(seq) }
            }
            if existing == nil { _ = FileManager.default.createFile(atPath: logPath, contents: nil) }
            guard let handle = FileHandle(forWritingAtPath: logPath) else {
                throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: logPath])
            }
            try handle.seekToEnd()
            // A partial last line from a kill: start the next item on a fresh line.
            if let last = existing?.last, last != UInt8(ascii: "\n") {
                handle.write(Data("\n".utf8))
            }
            log = handle
        } else {
            log = nil
        }
    }

    /// A line's numbers: a delivered item's is `seq`, else `ref`; a request line has none.
    private struct RefOnly: Decodable {
        var ref: UInt64
        var seq: UInt64?
        var service: String?
        var shownSeq: UInt64? { service == "request" ? nil : seq ?? ref }
    }

    func contains(_ seq: UInt64) -> Bool { shown.contains(seq) }

    /// Shows the item (one write of one line), then records it as shown (a request
    /// line shows no delivered item).
    func show(_ item: ShownItem) throws {
        var line = try ShownItem.encoder.encode(item)
        line.append(UInt8(ascii: "\n"))
        if let log { try log.write(contentsOf: line) }
        if printToStdout { FileHandle.standardOutput.write(line) }
        if let seq = item.shownSeq { shown.insert(seq) }
    }

    /// Prints a line that records nothing (the device's last words after a wipe: its log
    /// is gone).
    func announce(_ item: ShownItem) throws {
        guard printToStdout else { return }
        var line = try ShownItem.encoder.encode(item)
        line.append(UInt8(ascii: "\n"))
        FileHandle.standardOutput.write(line)
    }

    /// Persists the shown set; called after a burst of items, before acknowledging them.
    func save() throws {
        guard let statePath else { return }
        try JSONEncoder().encode(shown).write(to: URL(fileURLWithPath: statePath), options: .atomic)
    }
}
