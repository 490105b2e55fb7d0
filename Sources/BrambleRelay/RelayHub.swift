import BrambleCore
import BrambleNet
import Crypto
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// The relay's shell: owns the `RelayCore` behind a lock, numbers connections, and
/// carries out the core's actions (writes, closes, log lines, metrics). Audit records
/// are queued under the lock, so the log keeps the order the core applied events in;
/// all I/O happens outside it.
final class RelayHub: Sendable {
    private struct State: Sendable {
        var core: RelayCore
        var channels: [ConnectionID: any Channel] = [:]
        var nextID: ConnectionID = 1
    }

    private let state: NIOLockedValueBox<State>
    private let logger: Logger
    let metrics: RelayMetrics
    private let audit: RelayAuditLog?
    /// Mails activation requests; nil: the relay offers no activation over the air.
    private let mailer: ActivationMailer?

    init(core: RelayCore, metrics: RelayMetrics, logger: Logger, audit: RelayAuditLog? = nil, mailer: ActivationMailer? = nil) {
        self.state = NIOLockedValueBox(State(core: core))
        self.metrics = metrics
        self.logger = logger
        self.audit = audit
        self.mailer = mailer
    }

    func add(_ channel: any Channel) -> ConnectionID {
        state.withLockedValue { s in
            let id = s.nextID
            s.nextID += 1
            s.channels[id] = channel
            return id
        }
    }

    /// Challenges a new connection, or refuses it at a connection cap.
    func connected(_ conn: ConnectionID, listener: RelayCore.Listener, source: String) {
        let nonce = Array(SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) })
        let now = Monotonic.nowMs()
        run { $0.connected(conn, listener: listener, source: source, nonce: nonce, nowMs: now) }
    }

    func received(_ frame: Frame, on conn: ConnectionID) {
        let now = Monotonic.nowMs()
        run { core in
            // Which epoch each item to a device came from, before the core routes it
            // (drills count items from an epoch below the registered one).
            if let audit, case .data(let data) = frame, let session = core.serverSession(conn) {
                audit.append(.data(srpID: session.srpID, epoch: session.epoch, pin: data.pin, ref: data.ref))
            }
            return core.frameReceived(frame, on: conn, nowMs: now)
        }
    }

    func disconnected(_ conn: ConnectionID) {
        run { $0.disconnected(conn) }
        state.withLockedValue { _ = $0.channels.removeValue(forKey: conn) }
    }

    func tick() {
        let now = Monotonic.nowMs()
        run { $0.tick(nowMs: now) }
    }

    struct Snapshot: Sendable {
        var connectedDevices: Int
        var connections: Int
        var unauthenticated: Int
        var deviceKeys: Int
        var sessions: [String: UInt64]
        var storedForDevices: Int
        var storedForServers: Int
        var storedBytes: Int
    }

    var snapshot: Snapshot {
        state.withLockedValue { s in
            Snapshot(connectedDevices: s.core.connectedDevices, connections: s.core.connections,
                     unauthenticated: s.core.unauthenticatedConnections, deviceKeys: s.core.registeredDeviceKeys,
                     sessions: s.core.registeredSessions, storedForDevices: s.core.storedForDevices,
                     storedForServers: s.core.storedForServers, storedBytes: s.core.storedBytesTotal)
        }
    }

    /// Writes what is queued for the audit log and stops its writer (bounded).
    func finishAudit() {
        audit?.close()
    }

    /// Applies `event` to the core under the lock and queues its I/O on each channel's
    /// event loop before the lock is released: two events that both send to a connection
    /// (its welcome, then an item for it from another thread) reach it in the core's order.
    /// Queuing only (`execute`) runs nothing of the channel's under the lock, so a close
    /// whose channelInactive comes back here cannot deadlock. Events are reported after.
    private func run(_ event: (inout RelayCore) -> [RelayCore.Action]) {
        let actions = state.withLockedValue { s -> [RelayCore.Action] in
            let actions = event(&s.core)
            var writes: [ConnectionID: [Frame]] = [:]
            var order: [ConnectionID] = []
            var closing: Set<ConnectionID> = []
            for action in actions {
                switch action {
                case .send(let id, let frame):
                    if writes[id] == nil { order.append(id) }
                    writes[id, default: []].append(frame)
                case .close(let id):
                    if writes[id] == nil { order.append(id); writes[id] = [] }
                    closing.insert(id)
                case .event(let event):
                    if let audit, let record = RelayAuditRecord.Event(event) { audit.append(record) }
                }
            }
            for id in order {
                guard let channel = s.channels[id] else { continue }
                let frames = writes[id] ?? [], close = closing.contains(id)
                // Writes queued before the close go out first: one task, in order.
                channel.eventLoop.execute {
                    for frame in frames { channel.write(frame, promise: nil) }
                    channel.flush()
                    if close { channel.close(promise: nil) }
                }
            }
            return actions
        }
        for action in actions {
            if case .event(let event) = action { report(event) }
        }
    }

    /// The log line and metrics of an event (its audit record was queued under the lock).
    private func report(_ event: RelayEvent) {
        metrics.record(event)
        switch event {
        case .registered(let srpID, let epoch, _):
            logger.info("srp registered", metadata: ["srp.id": "\(srpID)", "srp.epoch": "\(epoch)"])
        case .unregistered(let srpID, let epoch):
            logger.info("srp link closed", metadata: ["srp.id": "\(srpID)", "srp.epoch": "\(epoch)"])
        case .displaced(let srpID, let old, let new):
            logger.notice("srp session displaced by higher epoch",
                          metadata: ["srp.id": "\(srpID)", "srp.old_epoch": "\(old)", "srp.epoch": "\(new)"])
        case .refused(let srpID, let epoch, let reason):
            logger.warning("srp registration refused",
                           metadata: ["srp.id": "\(srpID)", "srp.epoch": "\(epoch)", "reason": "\(reason.rawValue)"])
        case .serverSilent(let srpID, let silentMs):
            logger.notice("srp connection silent, closed", metadata: ["srp.id": "\(srpID ?? "-")", "silent_ms": "\(silentMs)"])
        case .refusedData(let srpID, let pin):
            logger.warning("data for a PIN of another SRP ID refused", metadata: ["srp.id": "\(srpID)", "device.pin": "\(pin)"])
        case .deviceOnline(let pin):
            logger.debug("device online", metadata: ["device.pin": "\(pin)"])
        case .deviceOffline(let pin):
            logger.debug("device offline", metadata: ["device.pin": "\(pin)"])
        case .storedForDevice, .storedForServer, .storedExpired, .presenceDeferred, .helloTimedOut, .deviceIdle, .connectionRefused:
            break  // counted in metrics; a line each would let a flood of connections flood the log
        case .helloRefused(let pin, let reason):
            // Debug: anyone can send bad hellos; the metric counts them.
            logger.debug("device hello refused", metadata: ["device.pin": "\(pin)", "reason": "\(reason.rawValue)"])
        case .deviceKeysSynced(let srpID, let count):
            logger.info("device keys registered", metadata: ["srp.id": "\(srpID)", "devices": "\(count)"])
        case .deviceKeysRefused(let srpID, let count):
            logger.warning("device keys for PINs of another SRP ID ignored", metadata: ["srp.id": "\(srpID)", "devices": "\(count)"])
        case .storeOverflow(let n):
            logger.notice("store-and-forward queue full, oldest dropped", metadata: ["dropped": "\(n)"])
        case .activationRequested(let conn, let request):
            mail(request, for: conn)
        case .activationRefused(let pin):
            logger.debug("activation request refused", metadata: ["device.pin": "\(pin)"])
        case .activationUndeliverable(let pin):
            logger.debug("activation message with nowhere to go", metadata: ["device.pin": "\(pin)"])
        case .activationTimedOut(let pin):
            logger.debug("activating device closed after the activation timeout", metadata: ["device.pin": "\(pin)"])
        }
    }

    /// Mails the request in its own task; a failure closes the device's connection with
    /// the reason (the address only in debug: anyone can send requests).
    private func mail(_ request: ActivationFrame, for conn: ConnectionID) {
        guard let mailer else {
            run { $0.activationMailFailed(conn, reason: "no mail route configured") }
            return
        }
        Task {
            do {
                // Bounded: SMTP waits for nothing by itself.
                try await withDeadline(ms: 20_000) { try await mailer.send(request) }
                metrics.activationMails.increment()
                logger.info("activation request mailed", metadata: ["device.pin": "\(request.pin)"])
            } catch {
                metrics.activationMailFailures.increment()
                logger.warning("activation request not mailed", metadata: ["device.pin": "\(request.pin)", "error": "\(error)"])
                let reason = (error as? SMTPSession.Refused).map { "the mail server answered \($0.reply.code)" } ?? "the mail server could not be reached"
                run { $0.activationMailFailed(conn, reason: reason) }
            }
        }
    }
}
