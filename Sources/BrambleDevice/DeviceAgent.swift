import BrambleCore
import BrambleNet
@preconcurrency import Crypto
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOSSL

/// A simulated BlackBerry device: stays connected to the relay, opens each item (a push,
/// a mail, a More chunk) with its master key, shows it once (drops repeats by sequence
/// number), acknowledges it, and reconnects with back-off when the link drops. Its
/// requests (More) wait in its outbox and are sent again every `requestRetryMs` until
/// the server acknowledges them.
public final class DeviceAgent: @unchecked Sendable {
    public struct Configuration: Sendable {
        public var credential: DeviceCredential
        public var relay: HostPort
        /// TLS to the relay, whose certificate is verified (nil: plain, asked for by name).
        public var tls: NIOSSLContext?
        /// Where the shown set survives restarts; nil keeps it in memory only. Beside it:
        /// `.outbox`, `.control/` (the spool) and `.password` (the device password a lock
        /// command set: its verifier only).
        public var statePath: String? = nil
        /// The credential file, deleted by a wipe (nil: the credential is not on disk).
        public var credentialPath: String? = nil
        /// JSON-lines log of shown items (also read back at start).
        public var logPath: String? = nil
        /// Print each shown item as a JSON line on standard output.
        public var printJSON = false
        /// Unacknowledged requests are sent again this often while connected.
        public var requestRetryMs: UInt64 = 2_000
        /// Take requests: from the control spool beside the state file (`bramble-device
        /// control`), and from `request` in process; `load`'s many devices do not, so they
        /// poll nothing.
        public var acceptsControl = true
        /// A ping this often keeps the relay from closing the connection as idle (the
        /// relay closes devices silent for three minutes).
        public var keepaliveMs: UInt64 = 60_000
        public init(credential: DeviceCredential, relay: HostPort, tls: NIOSSLContext?) {
            self.credential = credential
            self.relay = relay
            self.tls = tls
        }
    }

    private let configuration: Configuration
    private let pin: PIN
    private let key: SymmetricKey
    /// What the device proves its PIN to the relay with (`DeviceProof`).
    private let relayKey: SymmetricKey
    private let logger: Logger
    private let onShown: (@Sendable (ShownItem) -> Void)?
    /// After each burst's acknowledgements were written (their sequence numbers).
    private let onAcknowledged: (@Sendable ([UInt64]) -> Void)?
    // Touched only by the task running `run()`.
    private let envelope = Envelope()
    private let store: ShownStore
    /// Shared with the session's request sender.
    public let outbox: DeviceOutbox

    public init(configuration: Configuration, logger: Logger, onShown: (@Sendable (ShownItem) -> Void)? = nil,
                onAcknowledged: (@Sendable ([UInt64]) -> Void)? = nil) throws {
        self.onAcknowledged = onAcknowledged
        (pin, key) = try configuration.credential.validated()
        relayKey = DeviceProof.relayKey(master: key, pin: pin)
        self.configuration = configuration
        self.logger = logger
        self.onShown = onShown
        self.store = try ShownStore(statePath: configuration.statePath, logPath: configuration.logPath,
                                    printToStdout: configuration.printJSON)
        self.outbox = try DeviceOutbox(statePath: configuration.statePath, spool: configuration.acceptsControl)
        // A wipe received before a restart is still due: once its confirmation is recorded
        // (still in the outbox: sent again, with the grace period), or at once (it was).
        if let path = wipingPath, let data = Self.readRegularFile(path), let kind = ITCommand.Kind(name: String(decoding: data, as: UTF8.self)) {
            let unconfirmed = outbox.pending.contains { if case .commandDone(_, let k) = $0.request { k == kind } else { false } }
            wipeDue.withLockedValue { $0 = (kind, unconfirmed ? .now + .seconds(Self.wipeGraceSeconds) : .now) }
        }
    }

    private let shownTotal = NIOLockedValueBox(0)

    /// A wipe the device confirmed: carried out once the server recorded the confirmation,
    /// or after `wipeGraceSeconds` whatever happens.
    private let wipeDue = NIOLockedValueBox<(kind: ITCommand.Kind, deadline: ContinuousClock.Instant)?>(nil)
    static let wipeGraceSeconds = 30
    /// What the device wiped, once it has (its `run` then returns).
    public var wiped: ITCommand.Kind? { wipedKind.withLockedValue { $0 } }
    private let wipedKind = NIOLockedValueBox<ITCommand.Kind?>(nil)

    /// Ends the session: the wipe is due now.
    struct WipeNow: Error { let kind: ITCommand.Kind }

    /// Rung when a request is added in process (`request`), so it goes out at once.
    private let doorbell = Doorbell()

    /// Makes a request at once, as `bramble-device control` does through the spool but
    /// without waiting for the spool's next reading; returns its number.
    @discardableResult
    public func request(_ request: DeviceRequest) throws -> UInt64 {
        let ref = try outbox.add(request)
        doorbell.ring()
        return ref
    }

    /// Items shown since this agent started (safe to read from any task).
    public var shownCount: Int { shownTotal.withLockedValue { $0 } }

    /// Runs until the task is cancelled, or until the device wiped itself.
    public func run() async {
        var delayMs: UInt64 = 100
        while !Task.isCancelled {
            if let due = wipeDue.withLockedValue({ $0 }), ContinuousClock.now >= due.deadline { return wipe(due.kind) }
            do {
                try await session { delayMs = 100 }
                logger.info("relay closed the connection", metadata: ["device.pin": "\(pin)"])
            } catch is CancellationError {
                return
            } catch let now as WipeNow {
                return wipe(now.kind)
            } catch {
                logger.info("connection to relay failed", metadata: ["device.pin": "\(pin)", "error": "\(error)"])
            }
            try? await Task.sleep(for: .milliseconds(delayMs + UInt64.random(in: 0...delayMs / 2)))
            delayMs = min(delayMs * 2, 1_000)  // a restarted relay is found again within about a second
        }
    }

    private func session(onConnected: () -> Void) async throws {
        try await FrameLink.connect(to: configuration.relay, tls: configuration.tls) { link, frames in
            try await hello(link, &frames)
            onConnected()
            logger.info("device connected", metadata: ["device.pin": "\(pin)", "relay": "\(configuration.relay)"])
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await self.keepAlive(link) }
                // A device that can have no request (no control spool, an empty outbox) runs no sender.
                // In process (`request`) or through the spool; `load`'s many devices make none.
                if configuration.acceptsControl || !outbox.pending.isEmpty { group.addTask { try await self.sendRequests(on: link) } }
                try await self.receive(&frames, on: link)
                group.cancelAll()
            }
        }
    }

    /// Answers the relay's challenge with the proof of the PIN; returns once welcomed.
    private func hello(_ link: FrameLink, _ frames: inout FrameReader) async throws {
        guard case .challenge(let nonce)? = try await frames.next() else {
            throw RelayRefusal("the relay did not challenge the device")
        }
        let srpID = configuration.credential.srpID
        let proof = DeviceProof.compute(relayKey: relayKey, nonce: nonce, pin: pin, srpID: srpID)
        try await link.outbound.write(.deviceHello(pin: pin, srpID: srpID, proof: proof))
        switch try await frames.next() {
        case .deviceWelcome?: return
        case .error(let code, let message)?: throw RelayRefusal("the relay refused the device (\(code)): \(message)")
        case let other: throw RelayRefusal("the relay answered the hello with \(other.map { "\($0.type)" } ?? "nothing")")
        }
    }

    /// Pings the relay every `keepaliveMs`; ends (quietly) when the session does.
    private func keepAlive(_ link: FrameLink) async throws {
        var n: UInt64 = 0
        while (try? await Task.sleep(for: .milliseconds(configuration.keepaliveMs))) != nil {
            n += 1
            try await link.outbound.write(.ping(n))
        }
    }

    /// Takes requests from the control spool into the outbox and sends what is
    /// unacknowledged: at once when new, and every `requestRetryMs`.
    private func sendRequests(on link: FrameLink) async throws {
        let retryMs = configuration.requestRetryMs
        var sinceRetryMs: UInt64 = retryMs
        var sentOnce: Set<UInt64> = []
        while !Task.isCancelled {
            if let due = wipeDue.withLockedValue({ $0 }), ContinuousClock.now >= due.deadline { throw WipeNow(kind: due.kind) }
            let fresh: [UInt64]
            do {
                fresh = try outbox.takeSpooled()
            } catch {
                // The spool is unreadable or the outbox cannot be saved: say so, keep the link.
                logger.warning("control spool not read", metadata: ["device.pin": "\(pin)", "error": "\(error)"])
                fresh = []
            }
            // New ones at once (from the spool, or `request`); all of them every retryMs.
            let due = sinceRetryMs >= retryMs ? outbox.pending : outbox.pending.filter { fresh.contains($0.ref) || !sentOnce.contains($0.ref) }
            if sinceRetryMs >= retryMs { sinceRetryMs = 0 }
            sentOnce.formUnion(due.map(\.ref))
            if !due.isEmpty {
                try await link.outbound.write(contentsOf: due.map { entry in
                    var frame = DataFrame(pin: pin, service: .request, ref: entry.ref, flags: [.fromDevice], body: [])
                    frame.body = Envelope().seal(entry.request.encoded(), key: key, header: frame)
                    return .data(frame)
                })
            }
            // Cancelled when the session ends: return, so the session's end is the
            // receiver's (a CancellationError here would read as the device being stopped).
            let started = ContinuousClock.now
            await doorbell.wait(ms: 100)
            guard !Task.isCancelled else { return }
            sinceRetryMs += UInt64((ContinuousClock.now - started) / .milliseconds(1))
        }
    }

    private func receive(_ frames: inout FrameReader, on link: FrameLink) async throws {
        while let batch = try await frames.nextBatch() {
            var refs: [UInt64] = []
            var pongs: [Frame] = []
            for frame in batch {
                switch frame {
                case .data(let data): if let ref = try show(data) { refs.append(ref) }
                case .ping(let n): pongs.append(.pong(n))
                case .error(let code, let message):
                    logger.warning("relay error", metadata: ["device.pin": "\(pin)", "code": "\(code)", "message": "\(message)"])
                default: break
                }
            }
            if !pongs.isEmpty { try await link.outbound.write(contentsOf: pongs) }
            guard !refs.isEmpty else { continue }
            // Persist once per burst, then acknowledge the burst.
            try store.save()
            try await link.outbound.write(contentsOf: try acknowledgements(refs))
            onAcknowledged?(refs)
        }
    }

    /// Shows an item unless it was shown before; returns its sequence number to
    /// acknowledge (repeats too: the first acknowledgement may be what was lost), or
    /// nil for a frame that must not be acknowledged.
    private func show(_ frame: DataFrame) throws -> UInt64? {
        guard frame.pin == pin, !frame.flags.contains(.fromDevice), frame.service.isDelivered || frame.service == .requestAck else {
            logger.warning("unexpected frame dropped", metadata: ["device.pin": "\(pin)", "frame.service": "\(frame.service)"])
            return nil
        }
        if frame.service.isDelivered, store.contains(frame.ref) { return frame.ref }
        let shown: ShownItem
        do {
            let payload = try envelope.open(frame, key: key)
            let (p, ref, now) = (pin.description, frame.ref, Date())
            switch frame.service {
            case .push: shown = .push(try PushItem.decode(payload), pin: p, ref: ref, at: now)
            case .mail: shown = .mail(try MailItem.decode(payload), pin: p, ref: ref, at: now)
            case .more: shown = .more(try MoreChunk.decode(payload), pin: p, ref: ref, at: now)
            case .sent: shown = .sent(try SentOutcome.decode(payload), pin: p, seq: ref, at: now)
            case .state: shown = .state(try MessageState.decode(payload), pin: p, ref: ref, at: now)
            case .folders: shown = .folders(try FolderList.decode(payload), pin: p, ref: ref, at: now)
            case .imSession: shown = .imSession(try IMSessionOutcome.decode(payload), pin: p, seq: ref, at: now)
            case .im: shown = .im(try IMMessage.decode(payload), pin: p, seq: ref, at: now)
            case .imContacts: shown = .imContacts(try IMContactList.decode(payload), pin: p, ref: ref, at: now)
            case .imPresence: shown = .imPresence(try IMPresenceUpdate.decode(payload), pin: p, ref: ref, at: now)
            case .policy: shown = try applyPolicy(try SignedPolicy.decode(payload), ref: ref, at: now)
            case .serviceBooks: shown = .serviceBooks(try ServiceBooks.decode(payload), pin: p, ref: ref, at: now)
            case .command: shown = try carryOut(try SignedCommand.decode(payload), ref: ref, at: now)
            default:
                // The server recorded these requests: they leave the outbox, each said once.
                var confirmedWipe: ITCommand.Kind?
                for entry in try outbox.acknowledge(try AckList.decode(payload).refs) {
                    try store.show(.request(entry.request, pin: p, ref: entry.ref, at: now))
                    if case .commandDone(_, let kind) = entry.request, kind != .lock { confirmedWipe = kind }
                }
                // The server has the wipe's confirmation: wipe now.
                if let confirmedWipe { throw WipeNow(kind: confirmedWipe) }
                return nil
            }
        } catch let error as EnvelopeError {
            // Tampered or foreign: never shown, never acknowledged, so a genuine copy is still resent.
            logger.warning("item rejected", metadata: ["device.pin": "\(pin)", "frame.ref": "\(frame.ref)", "reason": "\(error)"])
            return nil
        } catch let error as PayloadError {
            logger.warning("item rejected", metadata: ["device.pin": "\(pin)", "frame.ref": "\(frame.ref)", "reason": "\(error)"])
            return nil
        }
        try store.show(shown)
        shownTotal.withLockedValue { $0 += 1 }
        onShown?(shown)
        return frame.ref
    }

    /// Applies an IT policy signed by the device's domain and says so (a `policyApplied`
    /// request); one signed by any other key is refused, and the refusal said.
    private func applyPolicy(_ signed: SignedPolicy, ref: UInt64, at now: Date) throws -> ShownItem {
        let claimed = try? ITPolicy.decode(signed.policy)
        do {
            guard let domainKey = configuration.credential.domainPublicKey else {
                throw SignedPolicy.Refused(description: "the device has no domain key to check policies with (activate it again)")
            }
            let policy = try signed.verified(domainKey: domainKey)
            try request(.policyApplied(version: policy.version, digest: signed.digest))
            return .policy(policy, applied: true, reason: nil, pin: pin.description, ref: ref, at: now)
        } catch let refused as SignedPolicy.Refused {
            logger.warning("IT policy refused", metadata: ["device.pin": "\(pin)", "reason": "\(refused)"])
            try request(.policyRefused(version: claimed?.version ?? 0, digest: signed.digest, reason: refused.description))
            return .policy(claimed, applied: false, reason: refused.description, pin: pin.description, ref: ref, at: now)
        }
    }

    /// Carries out an IT command signed by the device's domain for this device: a lock
    /// keeps the new device password's verifier and confirms; a wipe confirms first and
    /// happens once the server recorded the confirmation (`WipeNow`). Anything else is
    /// refused, and shown so.
    func carryOut(_ signed: SignedCommand, ref: UInt64, at now: Date) throws -> ShownItem {
        let claimed = try? ITCommand.decode(signed.command)
        do {
            guard let domainKey = configuration.credential.domainPublicKey else {
                throw SignedPolicy.Refused(description: "the device has no domain key to check commands with (activate it again)")
            }
            let command = try signed.verified(domainKey: domainKey, pin: pin)
            switch command.kind {
            case .lock:
                // A lock command always carries its verifier (`ITCommand.decode`).
                if let lock = command.lock { try saveDeviceLock(lock, commandID: command.id, at: now) }
                try request(.commandDone(id: command.id, kind: .lock))
                logger.notice("device locked by the administrator", metadata: ["device.pin": "\(pin)", "command": "\(command.id)"])
                return .command(.lock, id: command.id, state: "locked", pin: pin.description, ref: ref, at: now)
            case .wipe, .wipeWork:
                // The marker first: a restart after the confirmation left the outbox still wipes.
                if let path = wipingPath { try SecretFilePermissions.replace(path, bytes: Array(command.kind.name.utf8), what: "wipe marker") }
                try request(.commandDone(id: command.id, kind: command.kind))
                wipeDue.withLockedValue { $0 = (command.kind, .now + .seconds(Self.wipeGraceSeconds)) }
                logger.notice("wipe confirmed; wiping once the server has the confirmation", metadata: ["device.pin": "\(pin)", "command": "\(command.kind.name)"])
                return .command(command.kind, id: command.id, state: "wiping", pin: pin.description, ref: ref, at: now)
            }
        } catch let refused as SignedPolicy.Refused {
            logger.warning("IT command refused", metadata: ["device.pin": "\(pin)", "reason": "\(refused)"])
            // Said to the server when the command names itself (else it cannot be matched).
            if let id = claimed?.id { try request(.commandRefused(id: id, reason: refused.description)) }
            return .command(claimed?.kind, id: claimed?.id, state: "refused", reason: refused.description, pin: pin.description, ref: ref, at: now)
        }
    }

    /// The device password's file beside the state file (its verifier, never the password).
    var devicePasswordPath: String? { configuration.statePath.map { $0 + ".password" } }
    /// Says a wipe was received (its kind), until the wipe is done.
    var wipingPath: String? { configuration.statePath.map { $0 + ".wiping" } }
    /// The lock of a device without a state file.
    private let lockInMemory = NIOLockedValueBox<(commandID: UInt64, lock: DeviceLock)?>(nil)

    static func readRegularFile(_ path: String) -> Data? { DeviceOutbox.readSmallRegularFile(path, max: 4_096) }

    /// Keeps the lock's verifier; an older lock than the one in force (a lower command id)
    /// is refused, so the password cannot be set back; the same one again changes nothing.
    /// On disk beside the state file, or in memory for a device without one.
    private func saveDeviceLock(_ lock: DeviceLock, commandID: UInt64, at now: Date) throws {
        struct Stored: Codable { var command_id: UInt64; var locked_at: Date; var salt: String; var verifier: String }
        let inForce = devicePasswordPath.flatMap(Self.readRegularFile).flatMap { try? JSONDecoder().decode(Stored.self, from: $0) }?.command_id
            ?? lockInMemory.withLockedValue { $0?.commandID }
        if let inForce {
            guard commandID >= inForce else {
                throw SignedPolicy.Refused(description: "an older lock (command \(commandID)) than the one in force (command \(inForce))")
            }
            if commandID == inForce { return }
        }
        guard let path = devicePasswordPath else { return lockInMemory.withLockedValue { $0 = (commandID, lock) } }
        let data = try JSONEncoder().encode(Stored(command_id: commandID, locked_at: now, salt: Data(lock.salt).base64EncodedString(),
                                                   verifier: Data(lock.verifier).base64EncodedString()))
        // Written aside, then renamed over the old one: a crash leaves one whole verifier.
        try SecretFilePermissions.replace(path, bytes: data, what: "device password verifier")
    }

    /// Deletes what `kind` says (all: items, outbox, spool, log, the device password and the
    /// credential; work: all but the device password) and says so on standard output. The
    /// data go first and the credential last (overwritten before it is unlinked), the
    /// marker after it: a crash part way leaves a device that wipes again at its start.
    /// Only regular files are removed (a log that is /dev/stdout, or a link, is left).
    private func wipe(_ kind: ITCommand.Kind) {
        var paths = [configuration.logPath]
        if let state = configuration.statePath {
            paths += [state, state + ".outbox"]
            if kind == .wipe { paths.append(devicePasswordPath) }
            let spool = DeviceOutbox.spoolDirectory(statePath: state)
            for name in (try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? [] { paths.append(spool + "/" + name) }
        }
        for path in paths.compactMap({ $0 }) { removeRegularFile(path) }
        if let state = configuration.statePath { rmdir(DeviceOutbox.spoolDirectory(statePath: state)) }
        if let credential = configuration.credentialPath {
            // The master key is in it: overwritten before it is unlinked (not through a link).
            let fd = open(credential, O_WRONLY | O_NOFOLLOW | O_CLOEXEC)
            if fd >= 0 {
                var info = stat()
                if fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG {
                    let zeros = [UInt8](repeating: 0, count: Int(info.st_size))
                    _ = zeros.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                    fsync(fd)
                }
                close(fd)
            }
            removeRegularFile(credential)
        }
        if let marker = wipingPath { removeRegularFile(marker) }
        lockInMemory.withLockedValue { $0 = nil }
        wipedKind.withLockedValue { $0 = kind }
        logger.notice(kind == .wipe ? "device wiped" : "device's work data wiped", metadata: ["device.pin": "\(pin)"])
        try? store.announce(.command(kind, id: nil, state: "wiped", pin: pin.description, ref: 0, at: Date()))
    }

    private func removeRegularFile(_ path: String) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            logger.warning("not a regular file: left by the wipe", metadata: ["device.pin": "\(pin)", "path": "\(path)"])
            return
        }
        if unlink(path) != 0 {
            logger.error("could not delete during the wipe", metadata: ["device.pin": "\(pin)", "path": "\(path)", "errno": "\(errno)"])
        }
    }

    /// Sealed acknowledgement frames for `refs`, at most `AckList.maxCount` per frame.
    private func acknowledgements(_ refs: [UInt64]) throws -> [Frame] {
        try stride(from: 0, to: refs.count, by: AckList.maxCount).map { start in
            var ack = DataFrame(pin: pin, service: .ack, ref: try outbox.nextFrameNumber(), flags: [.fromDevice], body: [])
            ack.body = envelope.seal(AckList(refs: Array(refs[start..<min(start + AckList.maxCount, refs.count)])).encoded(),
                                     key: key, header: ack)
            return .data(ack)
        }
    }
}

/// The relay would not take the device's hello.
public struct RelayRefusal: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Wakes one waiter at once, or the next one to wait; a wait ends after `ms` anyway.
final class Doorbell: Sendable {
    private struct State {
        var rung = false
        var waiter: (number: UInt64, continuation: CheckedContinuation<Void, Never>)?
        var waits: UInt64 = 0
    }
    private let state = NIOLockedValueBox(State())

    func ring() {
        let waiter = state.withLockedValue { s -> CheckedContinuation<Void, Never>? in
            guard let w = s.waiter else { s.rung = true; return nil }
            s.waiter = nil
            return w.continuation
        }
        waiter?.resume()
    }

    func wait(ms: UInt64) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let number = state.withLockedValue { s -> UInt64? in
                if s.rung { s.rung = false; return nil }
                s.waits += 1
                s.waiter = (s.waits, c)
                return s.waits
            }
            guard let number else { c.resume(); return }
            Task { [weak self] in
                try? await Task.sleep(for: .milliseconds(ms))
                self?.endWait(number)
            }
        }
    }

    /// Ends wait `number` if it is still waiting (its timer must not end a later one).
    private func endWait(_ number: UInt64) {
        let waiter = state.withLockedValue { s -> CheckedContinuation<Void, Never>? in
            guard let w = s.waiter, w.number == number else { return nil }
            s.waiter = nil
            return w.continuation
        }
        waiter?.resume()
    }
}
