import BrambleCore
import Dispatch
import Foundation
import Logging
import NIOConcurrencyHelpers

/// An append-only JSON-lines record of what the relay saw: SRP registrations,
/// displacements, refusals and closes, and every item a server session sent towards a
/// device with that session's epoch (`RelayAuditRecord` has the format). It is evidence
/// from outside the nodes for the failover drills (chaos/): how many primaries were
/// registered at once, and whether an item ever came from an epoch below the registered
/// one. Off unless `--audit-log` is set.
///
/// The hub appends under its own lock, so lines are in the order it applied the events;
/// an append only queues a small value. A dedicated thread (never an event loop) encodes
/// and writes: it wakes on the first record after it went idle and writes everything
/// queued, so a record reaches the file within one wake-up plus the writes of the records
/// queued before it: under a millisecond at drill rates, and at worst a full queue's
/// worth (100,000 records encode in ~0.35 s in a debug build, 3.5 µs each). The
/// queue holds at most `capacity` records; beyond that records are dropped, counted
/// (`bramble_relay_audit_dropped_total`), marked in the file by an `audit_dropped` line,
/// and logged once per burst.
final class RelayAuditLog: Sendable {
    static let defaultCapacity = 100_000
    /// Records encoded per write(2): bounds the encoded buffer, not the latency.
    static let writeBatch = 4_096

    private struct Queue {
        var pending: [RelayAuditRecord] = []
        var dropped = 0
        var writerIdle = false
        var closing = false
    }

    private let queue = NIOLockedValueBox(Queue())
    private let capacity: Int
    /// Signalled when a record arrives for an idle writer, or at close.
    private let wake = DispatchSemaphore(value: 0)
    /// Signalled by the writer when it has written everything and stopped.
    private let finished = DispatchSemaphore(value: 0)

    /// Opens (creating, mode 0600) the file for appending, queues a `start` record and
    /// starts the writer thread (it belongs to the open file, as the handle does);
    /// `close(timeoutMs:)` drains and stops it.
    init(path: String, metrics: RelayMetrics, logger: Logger, capacity: Int = RelayAuditLog.defaultCapacity) throws {
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
                throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path])
            }
        }
        guard let handle = FileHandle(forWritingAtPath: path) else { throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path]) }
        try handle.seekToEnd()
        self.capacity = capacity
        append(.start)
        let writer = Writer(handle: handle, path: path, metrics: metrics, logger: logger)
        let thread = Thread { [self] in
            writer.run(self)
            finished.signal()
        }
        thread.name = "bramble-relay-audit"
        thread.start()
    }

    /// Queues one record stamped now. Cheap enough to call under the hub's lock: no JSON,
    /// no I/O, no allocation once the queue has grown to its working size.
    func append(_ event: RelayAuditRecord.Event) {
        let record = RelayAuditRecord(atMs: Int64(Date().timeIntervalSince1970 * 1000), event: event)
        let signal = queue.withLockedValue { q -> Bool in
            guard !q.closing else { return false }
            guard q.pending.count < capacity else {
                q.dropped += 1
                return false
            }
            q.pending.append(record)
            guard q.writerIdle else { return false }
            q.writerIdle = false
            return true
        }
        if signal { wake.signal() }
    }

    /// Stops taking records and waits up to `timeoutMs` for the writer to write what is
    /// queued (a relay stopping must not lose the end of its evidence, nor hang on it).
    func close(timeoutMs: Int = 2_000) {
        let signal = queue.withLockedValue { q -> Bool in
            q.closing = true
            defer { q.writerIdle = false }
            return q.writerIdle
        }
        if signal { wake.signal() }
        _ = finished.wait(timeout: .now() + .milliseconds(timeoutMs))
    }

    /// What the writer takes from the queue, waiting while there is nothing: the records
    /// in order, then how many were dropped after them, and whether the log is closing.
    fileprivate func take(into batch: inout [RelayAuditRecord]) -> (dropped: Int, closing: Bool) {
        while true {
            let taken = queue.withLockedValue { q -> (dropped: Int, closing: Bool)? in
                if q.pending.isEmpty && q.dropped == 0 {
                    if q.closing { return (0, true) }
                    q.writerIdle = true
                    return nil
                }
                swap(&q.pending, &batch)  // the writer's emptied buffer keeps its capacity for the hub
                defer { q.dropped = 0 }
                return (q.dropped, q.closing)
            }
            if let taken { return taken }
            wake.wait()
        }
    }
}

/// The writer thread's side: encodes and writes batches; owns the file handle.
private final class Writer: Sendable {
    private let handle: FileHandle
    private let path: String
    private let metrics: RelayMetrics
    private let logger: Logger

    init(handle: FileHandle, path: String, metrics: RelayMetrics, logger: Logger) {
        self.handle = handle
        self.path = path
        self.metrics = metrics
        self.logger = logger
    }

    func run(_ log: RelayAuditLog) {
        var batch: [RelayAuditRecord] = []
        var bytes: [UInt8] = []
        var burst = 0  // records dropped in the current overflow burst
        var failed = false
        while true {
            batch.removeAll(keepingCapacity: true)
            let (dropped, closing) = log.take(into: &batch)
            var start = batch.startIndex
            while start < batch.endIndex {
                let end = min(start + RelayAuditLog.writeBatch, batch.endIndex)
                bytes.removeAll(keepingCapacity: true)
                for record in batch[start..<end] { record.appendJSONLine(to: &bytes) }
                write(bytes, failed: &failed)
                start = end
            }
            if dropped > 0 {
                // The dropped records came after everything that was queued before them.
                bytes.removeAll(keepingCapacity: true)
                RelayAuditRecord(atMs: Int64(Date().timeIntervalSince1970 * 1000), event: .auditDropped(count: dropped))
                    .appendJSONLine(to: &bytes)
                write(bytes, failed: &failed)
                metrics.auditDropped.increment(by: dropped)
                if burst == 0 {
                    logger.warning("audit log queue full, dropping records", metadata: ["audit.path": "\(path)"])
                }
                burst += dropped
            } else if burst > 0 {
                logger.notice("audit log queue drained", metadata: ["audit.path": "\(path)", "audit.dropped": "\(burst)"])
                burst = 0
            }
            if closing && batch.isEmpty { break }
        }
        try? handle.close()
    }

    private func write(_ bytes: [UInt8], failed: inout Bool) {
        guard !bytes.isEmpty else { return }
        do {
            try handle.write(contentsOf: bytes)
            failed = false
        } catch {
            // Log a failing disk once, not once per batch.
            if !failed { logger.error("audit log write failed", metadata: ["audit.path": "\(path)", "error": "\(error)"]) }
            failed = true
        }
    }
}
