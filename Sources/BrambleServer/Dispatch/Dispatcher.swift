import BrambleCore
import BrambleNet
@preconcurrency import Crypto
import Foundation
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle

/// The BES Dispatcher: the only place that touches device crypto. It keeps each device's
/// delivery window, seals items (zlib, then AES-256-GCM under the device's master key)
/// into `SRPOutbound` for the Router to send, opens and checks what devices send, and
/// hands delivery transitions to the `DeliveryRecorder`.
///
/// It delivers only while its node serves (`serve(epoch:)` until `stopServing`); each
/// transition carries that epoch, so the recorder's write is fenced by it. On promotion it
/// loads the open items in its own service loop, so the HA manager's lease renewals never
/// wait for it. On a standby it stays warm: device keys loaded, no windows.
public actor Dispatcher: Service, LeaseFollower, SRPLinkDelegate {
    public struct Configuration: Sendable {
        /// Unacknowledged items in flight per device (BES: 5).
        public var maxInFlight = 5
        /// Resend an unacknowledged item after this long (BES: 4 hours).
        public var resendAfter: Duration = .seconds(4 * 3600)
        /// How often due resends and expiries are looked at.
        public var tickMs: UInt64 = 1_000
        public init() {}
    }

    let configuration: Configuration
    let store: any OutboundStore
    let outbound: SRPOutbound
    let recorder: DeliveryRecorder
    let clock: any NodeClock
    let metrics: NodeMetrics
    let logger: Logger
    public nonisolated let followerName = "dispatcher"

    private let healthBox = NIOLockedValueBox(HealthFacts.Dispatcher())
    /// What the health check reads without waiting for the actor.
    public nonisolated var health: HealthFacts.Dispatcher { healthBox.withLockedValue { $0 } }
    private var servingEpoch: UInt64? { didSet { let e = servingEpoch; healthBox.withLockedValue { $0.servingEpoch = e } } }
    private var windows: [PIN: DeliveryWindow<OutboundItem>] = [:]
    private var keys: [PIN: SymmetricKey] = [:]
    /// The number of the last acknowledgement frame taken from each device: devices number
    /// their frames upwards and never send an acknowledgement twice, so one at or below
    /// it is a replay.
    private var lastAckFrame: [PIN: UInt64] = [:]
    /// Devices the relay said went offline (until they come back or acknowledge), and when
    /// each device last came back: their items wait for coverage, not for this node, so
    /// they count neither in the oldest unacknowledged age nor in delivery latency.
    private var offline: Set<PIN> = []
    private var cameBackAt: [PIN: Date] = [:]
    private let envelope = Envelope()
    private let emptyWindow: DeliveryWindow<OutboundItem>
    /// PINs with no active device, and when that was looked up: a frame for one of them
    /// costs no query again within `unknownPINTTLMs` (bounded; emptied when full).
    private var unknownPINs: [PIN: UInt64] = [:]
    static let unknownPINTTLMs: UInt64 = 30_000
    static let maxUnknownPINs = 10_000
    /// Counts changes to `keys`: a refresh that raced with one only adds.
    private var keyChanges = 0
    /// Work for the service loop: the epoch whose open items to load, keys to refresh,
    /// the epoch whose link wants every device's relay key.
    private var loadWanted: UInt64?
    private var relaySyncWanted: UInt64?
    private let keysWanted = NIOLockedValueBox(false)
    private let wakes: (stream: AsyncStream<Void>, continuation: AsyncStream<Void>.Continuation)

    /// Called when device requests were recorded that were not recorded before (the
    /// Messaging Agent acts on them).
    let onRequestsRecorded: @Sendable () -> Void

    public init(configuration: Configuration, store: any OutboundStore, outbound: SRPOutbound, recorder: DeliveryRecorder,
                clock: any NodeClock = SystemClock(), metrics: NodeMetrics, logger: Logger,
                onRequestsRecorded: @escaping @Sendable () -> Void = {}) {
        (self.configuration, self.store, self.outbound, self.recorder) = (configuration, store, outbound, recorder)
        self.onRequestsRecorded = onRequestsRecorded
        (self.clock, self.metrics, self.logger) = (clock, metrics, logger)
        let resend = configuration.resendAfter.components
        emptyWindow = DeliveryWindow(maxInFlight: configuration.maxInFlight,
                                     resendAfterMs: UInt64(resend.seconds) * 1000 + UInt64(resend.attoseconds / 1_000_000_000_000_000))
        wakes = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    // MARK: Service: the tick and the slow work (loading the queue, refreshing keys)

    public func run() async throws {
        let (clock, tickMs, wakes) = (self.clock, configuration.tickMs, self.wakes)
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask { while (try? await clock.sleep(ms: tickMs)) != nil { await self.tick() } }
                tick()
                for await _ in wakes.stream { await doWanted() }
                group.cancelAll()
            }
        } onGracefulShutdown: { wakes.continuation.finish() }
    }

    /// Ask the service loop to load every active device's key (devices provisioned since).
    public nonisolated func refreshKeys() {
        keysWanted.withLockedValue { $0 = true }
        wakes.continuation.yield()
    }

    private func doWanted() async {
        while let epoch = loadWanted, epoch == servingEpoch, !Task.isCancelled {
            do {
                let open = try await withDeadline(ms: 10_000, clock: clock) { [store] in try await store.openItems() }
                load(items: open.items, keys: open.keys, epoch: epoch)
                if loadWanted == epoch { loadWanted = nil }
            } catch {
                logger.warning("loading the outbound queue failed; retrying", metadata: ["error": "\(describe(error))"])
                guard (try? await clock.sleep(ms: 200)) != nil else { return }
            }
        }
        // Cleared before the load: a refresh asked for while it runs is another one.
        if keysWanted.withLockedValue({ wanted in defer { wanted = false }; return wanted }) {
            let changes = keyChanges
            if let loaded = try? await withDeadline(ms: 10_000, clock: clock, { [store] in try await store.deviceKeys() }) {
                applyLoadedKeys(loaded, unchangedSince: changes)
            } else {
                keysWanted.withLockedValue { $0 = true }
            }
        }
        while let epoch = relaySyncWanted, epoch == servingEpoch, !Task.isCancelled {
            let changes = keyChanges
            do {
                let loaded = try await withDeadline(ms: 10_000, clock: clock) { [store] in try await store.deviceKeys() }
                applyLoadedKeys(loaded, unchangedSince: changes)
                if relaySyncWanted == epoch { relaySyncWanted = nil }
                syncRelayKeys(epoch: epoch)
            } catch {
                logger.warning("loading device keys for the relay failed; retrying", metadata: ["error": "\(describe(error))"])
                guard (try? await clock.sleep(ms: 200)) != nil else { return }
            }
        }
    }

    /// Sends the relay every device's relay key, ending with `syncEnd`: from then on the
    /// relay refuses hellos of PINs left out. Built from `keys` at this moment, so a key
    /// learnt after goes as an update behind it.
    private func syncRelayKeys(epoch: UInt64) {
        guard servingEpoch == epoch else { return }
        let entries = keys.sorted { $0.key < $1.key }.map { DeviceKeyUpdate.Entry(pin: $0.key, master: $0.value) }
        var frames: [Frame] = stride(from: 0, to: entries.count, by: DeviceKeyUpdate.maxEntries).map { start in
            .deviceKeys(DeviceKeyUpdate(phase: .sync, entries: Array(entries[start..<min(start + DeviceKeyUpdate.maxEntries, entries.count)])))
        }
        frames.append(.deviceKeys(DeviceKeyUpdate(phase: .syncEnd, entries: [])))
        if outbound.send(frames, epoch: epoch) {
            logger.info("device keys sent to the relay", metadata: ["devices": "\(entries.count)", "epoch": "\(epoch)"])
        }
    }

    /// Tells the relay of keys added, changed or removed, while serving (a sync at the next
    /// registration covers what a link that is down misses).
    private func updateRelayKeys(_ entries: [DeviceKeyUpdate.Entry]) {
        guard let epoch = servingEpoch, !entries.isEmpty else { return }
        let frames: [Frame] = stride(from: 0, to: entries.count, by: DeviceKeyUpdate.maxEntries).map { start in
            .deviceKeys(DeviceKeyUpdate(phase: .update, entries: Array(entries[start..<min(start + DeviceKeyUpdate.maxEntries, entries.count)])))
        }
        outbound.send(frames, epoch: epoch)
    }


    // MARK: LeaseFollower

    /// Becomes the serving Dispatcher at `epoch` with empty windows, and has the service
    /// loop load the open items; the Router's registration (`linkUp`) sends them.
    public func serve(epoch: UInt64) async {
        windows = [:]
        servingEpoch = epoch
        loadWanted = epoch
        wakes.continuation.yield()
    }

    /// Stops delivering: drops every window (the queue in the database is the truth; the
    /// next primary loads it).
    public func stopServing(epoch: UInt64) async {
        guard servingEpoch == epoch else { return }
        servingEpoch = nil
        windows = [:]
        lastAckFrame = [:]
        (offline, cameBackAt) = ([], [:])
        healthBox.withLockedValue { $0.queueDepth = 0 }
        metrics.queueDepth(0)
        metrics.oldestUnacked(seconds: 0)
    }

    // MARK: What the rest of the node calls

    /// Keeps device keys ready (a warm standby, or devices provisioned since); the relay
    /// learns the new ones before any item for them.
    func warm(keys: [PIN: SymmetricKey]) {
        var changed: [DeviceKeyUpdate.Entry] = []
        for (pin, key) in keys where self.keys[pin] != key {
            self.keys[pin] = key
            unknownPINs[pin] = nil
            lastAckFrame[pin] = nil  // a device provisioned again numbers its frames anew
            changed.append(DeviceKeyUpdate.Entry(pin: pin, master: key))
        }
        if !changed.isEmpty { keyChanges += 1 }
        updateRelayKeys(changed)
        let count = self.keys.count
        healthBox.withLockedValue { $0.deviceKeys = count }
    }

    /// Takes a set of active devices loaded from the database when `keyChanges` was
    /// `changes`. If a key was learnt meanwhile the set may be older than it (a device
    /// provisioned again): it is not applied, and another load is asked for.
    private func applyLoadedKeys(_ loaded: [PIN: SymmetricKey], unchangedSince changes: Int) {
        guard changes == keyChanges else {
            refreshKeys()
            return
        }
        replaceKeys(loaded)
    }

    /// Takes the database's set of active devices: new keys as `warm`; the keys of
    /// devices no longer active are forgotten and the relay is told.
    func replaceKeys(_ loaded: [PIN: SymmetricKey]) {
        let gone = self.keys.keys.filter { loaded[$0] == nil }
        for pin in gone {
            self.keys[pin] = nil
            lastAckFrame[pin] = nil
        }
        if !gone.isEmpty {
            keyChanges += 1
            logger.info("device keys removed", metadata: ["devices": "\(gone.count)"])
        }
        updateRelayKeys(gone.map(DeviceKeyUpdate.Entry.revoked))
        warm(keys: loaded)
    }

    /// Takes over open items of the outbound queue (on promotion, or after the pair's
    /// notifications may have been missed); items already held are ignored.
    func load(items: [OutboundItem], keys: [PIN: SymmetricKey], epoch: UInt64) {
        guard servingEpoch == epoch else { return }
        committed(items, keys: keys)
        logger.info("dispatcher loaded outbound queue", metadata: ["items": "\(items.count)", "devices": "\(keys.count)", "epoch": "\(epoch)"])
    }

    /// Items just committed to the outbound queue (by this node, or by its peer as a
    /// notification said). Only the serving Dispatcher takes them; a standby keeps the keys.
    func committed(_ items: [OutboundItem], keys: [PIN: SymmetricKey]) {
        if !keys.isEmpty { warm(keys: keys) }
        guard servingEpoch != nil else { return }
        let now = clock.nowMs()
        var sends: [Send<OutboundItem>] = []
        for item in items { sends += windows[item.pin, default: emptyWindow].enqueue(seq: item.seq, item: item, nowMs: now) }
        transmit(sends)
    }

    // MARK: SRPLinkDelegate

    public func linkUp(epoch: UInt64) async {
        guard servingEpoch == epoch else { return }
        relaySyncWanted = epoch
        wakes.continuation.yield()
        let now = clock.nowMs()
        var sends: [Send<OutboundItem>] = []
        for pin in windows.keys { sends += windows[pin]!.resendAll(nowMs: now) }
        transmit(sends)
    }

    public func linkDown(epoch: UInt64) async {}

    public func deviceOnline(_ pin: PIN) async {
        if offline.remove(pin) != nil { cameBackAt[pin] = Date() }
        guard windows[pin] != nil else { return }
        transmit(windows[pin]!.resendAll(nowMs: clock.nowMs()))
    }

    /// The devices among `pins` out of coverage, as far as this node can tell: one of their
    /// items has waited more than `afterMs` for its acknowledgement.
    public func deviceOffline(_ pin: PIN) async {
        offline.insert(pin)
    }

    public func outOfCoverage(_ pins: [PIN], afterMs: UInt64) -> Set<PIN> {
        let now = clock.nowMs()
        return Set(pins.filter { pin in windows[pin]?.oldestInFlightSentAtMs.map { now &- $0 > afterMs } ?? false })
    }

    private var recordingsInFlight = 0

    public func received(_ frames: [DataFrame]) async {
        let epoch = servingEpoch
        var sends: [Send<OutboundItem>] = []
        var requests: [PendingRequest] = []
        for frame in frames { sends += await open(frame, requests: &requests) }
        // A key lookup may have let a demotion in: those sends belong to windows now gone.
        guard servingEpoch == epoch, let epoch else { return }
        transmit(sends)
        guard !requests.isEmpty else { return }
        // Recorded beside the link, not in its path: a database that takes its 2 s to
        // answer (a switchover) must not stall the frames behind, the relay's heartbeats
        // among them (a link that misses them fails, and the pair fails over for nothing).
        // A few recordings at once; past that the requests wait for the devices' retry.
        guard recordingsInFlight < Self.maxRecordingsInFlight else {
            logger.debug("device requests left for the devices' retry: recordings busy", metadata: ["requests": "\(requests.count)"])
            return
        }
        recordingsInFlight += 1
        Task {
            await self.record(requests, epoch: epoch)
            self.recordingDone()
        }
    }

    /// Device request batches being recorded at once, at most.
    static let maxRecordingsInFlight = 8
    private func recordingDone() { recordingsInFlight -= 1 }

    /// Returns once no device requests are being recorded (for tests).
    func recordingsSettled() async {
        while recordingsInFlight > 0 { try? await Task.sleep(for: .milliseconds(1)) }
    }

    /// Records device requests, then tells each device which of its requests are recorded
    /// (a repeat is acknowledged again, since the first acknowledgement may be what was
    /// lost, and counted; it does not act again). Unrecorded requests get no answer: the
    /// device retries them.
    private func record(_ requests: [PendingRequest], epoch: UInt64) async {
        guard let (repeats, refused) = await recorder.recordRequests(requests, epoch: epoch), servingEpoch == epoch else { return }
        metrics.deviceRequests(new: requests.count - repeats.count - refused.count, repeated: repeats.count)
        if repeats.count + refused.count < requests.count { onRequestsRecorded() }
        if !refused.isEmpty {
            logger.warning("device requests not recorded: too many waiting", metadata: ["requests": "\(refused.count)"])
        }
        var frames: [Frame] = []
        for (pin, refs) in Dictionary(grouping: requests.filter { !refused.contains($0.key) }, by: \.pin) {
            guard let key = keys[pin] else { continue }
            let refs = refs.map(\.ref)
            for start in stride(from: 0, to: refs.count, by: AckList.maxCount) {
                let part = Array(refs[start..<min(start + AckList.maxCount, refs.count)])
                var header = DataFrame(pin: pin, service: .requestAck, ref: part[0], flags: [], body: [])
                header.body = envelope.seal(AckList(refs: part).encoded(), key: key, header: header)
                frames.append(.data(header))
            }
        }
        outbound.send(frames, epoch: epoch)
    }

    /// Checks one device frame and applies its acknowledgements (returning what the freed
    /// window slots let through) or collects its request.
    private func open(_ frame: DataFrame, requests: inout [PendingRequest]) async -> [Send<OutboundItem>] {
        if keys[frame.pin] == nil { await lookUpKey(frame.pin) }
        guard let epoch = servingEpoch else { return [] }
        guard let key = keys[frame.pin] else { return reject(frame, reason: "no active device with this PIN") }
        do {
            let payload = try envelope.open(frame, key: key)
            switch frame.service {
            case .ack:
                guard frame.ref > lastAckFrame[frame.pin] ?? 0 else {
                    return reject(frame, reason: "replayed acknowledgement (number \(frame.ref) taken before)")
                }
                lastAckFrame[frame.pin] = frame.ref
                let acks = try AckList.decode(payload)
                guard windows[frame.pin] != nil else { return [] }
                let items = Dictionary(acks.refs.compactMap { seq in windows[frame.pin]!.item(seq: seq).map { (seq, $0) } }, uniquingKeysWith: { a, _ in a })
                let (acked, sends) = windows[frame.pin]!.acknowledge(acks.refs, nowMs: clock.nowMs())
                metrics.itemsAcked(acked.count)
                measureDelivery(acked.compactMap { items[$0] }, pin: frame.pin)
                recorder.record(acked.map { .init(pin: frame.pin, seq: $0, state: .acked) }, epoch: epoch)
                return sends
            case .request:
                // The database keys requests by a signed 64-bit ref.
                guard frame.ref >= 1, frame.ref <= UInt64(Int64.max) else { return reject(frame, reason: "request number out of range") }
                requests.append(PendingRequest(pin: frame.pin, ref: frame.ref, request: try DeviceRequest.decode(payload)))
                return []
            case .push, .mail, .more, .sent, .state, .folders, .requestAck, .imSession, .im, .imContacts, .imPresence, .policy, .serviceBooks, .command:
                return reject(frame, reason: "devices do not send \(frame.service)")
            }
        } catch let error as EnvelopeError {
            return reject(frame, reason: error.description)
        } catch {
            return reject(frame, reason: "\(error)")
        }
    }

    /// Looks a PIN up that has no key here, unless it was found missing within
    /// `unknownPINTTLMs`: frames for PINs that do not exist cost one query each, not one per frame.
    private func lookUpKey(_ pin: PIN) async {
        let now = clock.nowMs()
        if let checked = unknownPINs[pin], now < checked &+ Self.unknownPINTTLMs { return }
        do {
            if let key = try await withDeadline(ms: 500, clock: clock, { [store] in try await store.deviceKey(pin) }) {
                warm(keys: [pin: key])
            } else {
                if unknownPINs.count >= Self.maxUnknownPINs { unknownPINs.removeAll(keepingCapacity: true) }
                unknownPINs[pin] = now
            }
        } catch {
            // The lookup failed: nothing learnt, nothing cached.
        }
    }

    /// Each acknowledged item's time from its commit, unless its device was out of
    /// coverage since (offline now, or back only after the commit): that wait is the
    /// device's, not the server's. An acknowledgement also proves the device is online.
    private func measureDelivery(_ items: [OutboundItem], pin: PIN) {
        let wasOffline = offline.remove(pin) != nil
        if wasOffline { cameBackAt[pin] = Date() }
        let now = Date()
        for item in items where !wasOffline && (cameBackAt[pin].map { $0 < item.createdAt } ?? true) {
            metrics.delivered(item.service, after: now.timeIntervalSince(item.createdAt))
        }
    }

    /// Resends what is due and expires what is too old; runs every `tickMs`.
    func tick() {
        let now = clock.nowMs()
        defer { healthBox.withLockedValue { $0.lastTickMs = now } }
        guard let epoch = servingEpoch else { return }
        let wallNow = Date()
        var sends: [Send<OutboundItem>] = []
        var depth = 0
        var oldest: Date?
        for pin in windows.keys {
            let inCoverage = !offline.contains(pin)
            let (expired, afterExpiry) = windows[pin]!.removeAll(where: { $0.expiresAt <= wallNow }, nowMs: now)
            if !expired.isEmpty {
                metrics.itemsExpired(expired.count)
                recorder.record(expired.map { .init(pin: pin, seq: $0, state: .expired) }, epoch: epoch)
            }
            sends += afterExpiry + windows[pin]!.due(nowMs: now)
            depth += windows[pin]!.inFlightCount + windows[pin]!.pendingCount
            if inCoverage, let created = windows[pin]!.minimum(of: \.createdAt), created < oldest ?? .distantFuture { oldest = created }
        }
        metrics.queueDepth(depth)
        metrics.oldestUnacked(seconds: oldest.map { wallNow.timeIntervalSince($0) } ?? 0)
        healthBox.withLockedValue { $0.queueDepth = depth }
        transmit(sends)
    }

    /// Seals into the outbound queue; an item sent while the link is down stays in flight
    /// and goes out again when the link is back (`linkUp`).
    private func transmit(_ sends: [Send<OutboundItem>]) {
        guard !sends.isEmpty, let epoch = servingEpoch else { return }
        var frames: [Frame] = []
        frames.reserveCapacity(sends.count)
        var firstSends: [DeliveryTransition] = []
        for send in sends {
            guard let key = keys[send.item.pin] else {
                logger.warning("no key for device, item held", metadata: ["device.pin": "\(send.item.pin)"])
                continue
            }
            var header = DataFrame(pin: send.item.pin, service: send.item.service, ref: send.seq, flags: [], body: [])
            header.body = envelope.seal(send.item.plaintext, key: key, header: header)
            if send.isResend { header.flags.insert(.resend) }
            frames.append(.data(header))
            if !send.isResend { firstSends.append(.init(pin: send.item.pin, seq: send.seq, state: .sent)) }
        }
        metrics.itemsSent(first: firstSends.count, resent: frames.count - firstSends.count)
        outbound.send(frames, epoch: epoch)
        recorder.record(firstSends, epoch: epoch)
    }

    private func reject(_ frame: DataFrame, reason: String) -> [Send<OutboundItem>] {
        metrics.frameRejected()
        logger.warning("device frame rejected", metadata: [
            "device.pin": "\(frame.pin)", "frame.ref": "\(frame.ref)", "frame.service": "\(frame.service)", "reason": "\(reason)",
        ])
        return []
    }
}
