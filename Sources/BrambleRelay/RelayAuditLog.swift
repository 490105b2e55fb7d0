import Foundation
import NIOConcurrencyHelpers

/// An append-only JSON-lines record of what the relay saw: SRP registrations,
/// displacements, refusals and closes, and every item a server session sent towards a
/// device with that session's epoch. It is evidence from outside the nodes for the
/// failover drills (chaos/): how many primaries were registered at once, and whether an
/// item ever came from an epoch below the registered one. Each line has `t` (Unix ms)
/// and `event`; a relay start writes `{"event": "start"}`. Off unless `--audit-log` is set.
final class RelayAuditLog: Sendable {
    private let handle: NIOLockedValueBox<FileHandle>

    init(path: String) throws {
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
                throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path])
            }
        }
        guard let handle = FileHandle(forWritingAtPath: path) else { throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path]) }
        try handle.seekToEnd()
        self.handle = NIOLockedValueBox(handle)
        record(["event": "start"])
    }

    func record(_ fields: [String: any Sendable]) {
        var object = fields
        object["t"] = Int64(Date().timeIntervalSince1970 * 1000)
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        handle.withLockedValue { $0.write(data + Data("\n".utf8)) }
    }
}
