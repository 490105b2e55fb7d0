import BrambleCore
import BrambleNet
@preconcurrency import Crypto
import Foundation
import Logging
import NIOConcurrencyHelpers

/// The BES Dispatcher: the only place that touches device crypto. It keeps each
/// device's delivery window, seals items (zlib, then AES-256-GCM under the device's
/// master key), opens and checks what devices send, and reports delivery transitions
/// to the recorder, which writes them to the outbound queue in batches.
///
/// It delivers only while its node serves as primary (`startServing(epoch:)` until
/// `stopServing()`); each transition carries that epoch, so the recorder's write is
/// fenced by it. On a standby it stays warm: device keys loaded, no windows, no link.
public actor Dispatcher {
    public struct Configuration: Sendable {
        /// Unacknowledged items in flight per device (BES: 5).
        public var maxInFlight = 5
        /// Resend an unacknowledged item after this long (BES: 4 hours).
        public var resendAfter: Duration = .seconds(4 * 3600)
        public init() {}
    }

    private let configuration: Configuration
    private let logger: Logger
    private let metrics: NodeMetrics
    /// A delivery transition and the epoch under which it happened.
    struct Recorded: Sendable {
        var epoch: UInt64
        var transition: DeliveryTransition
    }

    /// What the health check reads without waiting for the actor (a stuck Dispatcher
    /// shows as unhealthy instead of stalling the heartbeat).
    struct Health: Sendable {
        var lastTickMs: UInt64 = 0
        var servingEpoch: UInt64?
        var deviceKeys = 0
        var queueDepth = 0
    }

    let transitions = Batcher<Recorded>()
    private let healthBox = NIOLockedValueBox(Health())
    nonisolated var health: Health { healthBox.withLockedValue { $0 } }
    private var servingEpoch: UInt64? {
        didSet { healthBox.withLockedValue { $0.servingEpoch = servingEpoch } }
    }
    private var windows: [PIN: DeliveryWindow<OutboundItem>] = [:]
    private var keys: [PIN: SymmetricKey] = [:]
    private let envelope = Envelope()
    private var link: FrameConnection?
    /// What a device's window starts as (the configuration, nothing in it).
    private let emptyWindow: DeliveryWindow<OutboundItem>
    /// Reads a device's key from the configuration database, for a device provisioned
    /// after this Dispatcher loaded (nil: no active device with that PIN).
    private let keyLookup: @Sendable (PIN) async throws -> SymmetricKey?

    public init(configuration: Configuration, metrics: NodeMetrics, logger: Logger,
                keyLookup: @escaping @Sendable (PIN) async throws -> SymmetricKey?) {
        self.configuration = configuration
        self.keyLookup = keyLookup
        let resend = configuration.resendAfter.components
        self.emptyWindow = DeliveryWindow(
            maxInFlight: configuration.maxInFlight,
            resendAfterMs: UInt64(resend.seconds) * 1000 + UInt64(resend.attoseconds / 1_000_000_000_000_000))
        self.metrics = metrics
        self.logger = logger
    }

    /// Keeps device keys ready (a warm standby, or devices provisioned since).
    func warm(keys: [PIN: SymmetricKey]) {
        self.keys.merge(keys) { _, new in new }
        healthBox.withLockedValue { $0.deviceKeys = self.keys.count }
    }

    /// Becomes the serving Dispatcher at `epoch`, with empty windows: the caller loads the
    /// open items next, and the Router's registration (`linkUp`) sends them.
    func startServing(epoch: UInt64) {
        windows = [:]
        link = nil
        servingEpoch = epoch
    }

    /// Stops delivering: drops the link and every window (the queue in the database is
    /// the truth; the next primary loads it).
    func stopServing() {
        servingEpoch = nil
        link = nil
        windows = [:]
        healthBox.withLockedValue { $0.queueDepth = 0 }
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
        let now = Monotonic.nowMs()
        var sends: [Send<OutboundItem>] = []
        for item in items {
            sends += windows[item.pin, default: emptyWindow].enqueue(seq: item.seq, item: item, nowMs: now)
        }
        transmit(sends)
    }

    /// The SRP link registered: anything sent over an earlier link may be lost, so send
    /// every unacknowledged item again.
    func linkUp(_ connection: FrameConnection, epoch: UInt64) {
        guard servingEpoch == epoch else { connection.close(); return }
        link = connection
        let now = Monotonic.nowMs()
        var sends: [Send<OutboundItem>] = []
        for pin in windows.keys { sends += windows[pin]!.resendAll(nowMs: now) }
        transmit(sends)
    }

    func linkDown(_ connection: FrameConnection) {
        if link === connection { link = nil }
    }

    /// A device came online at the relay: resend what it has not acknowledged.
    func deviceOnline(_ pin: PIN) {
        guard windows[pin] != nil else { return }
        transmit(windows[pin]!.resendAll(nowMs: Monotonic.nowMs()))
    }

    /// Data frames from devices, via the relay, as they arrived in one read.
    func received(_ frames: [DataFrame]) async {
        var sends: [Send<OutboundItem>] = []
        for frame in frames { sends += await open(frame) }
        transmit(sends)
    }

    /// Checks one device frame and applies its acknowledgements; returns what the
    /// freed window slots let through.
    private func open(_ frame: DataFrame) async -> [Send<OutboundItem>] {
        if keys[frame.pin] == nil, let key = try? await keyLookup(frame.pin) { warm(keys: [frame.pin: key]) }
        guard let epoch = servingEpoch else { return [] }
        guard let key = keys[frame.pin] else {
            reject(frame, reason: "no active device with this PIN")
            return []
        }
        do {
            let payload = try envelope.open(frame, key: key)
            switch frame.service {
            case .ack:
                let acks = try AckList.decode(payload)
                guard windows[frame.pin] != nil else { return [] }
                let (acked, sends) = windows[frame.pin]!.acknowledge(acks.refs, nowMs: Monotonic.nowMs())
                metrics.itemsAcked.increment(by: Int64(acked.count))
                transitions.append(contentsOf: acked.map { Recorded(epoch: epoch, transition: .init(pin: frame.pin, seq: $0, state: .acked)) })
                return sends
            case .push:
                reject(frame, reason: "devices do not push")
            }
        } catch let error as EnvelopeError {
            reject(frame, reason: error.description)
        } catch {
            reject(frame, reason: "\(error)")
        }
        return []
    }

    /// Resends what is due and expires what is too old; run about once a second.
    func tick() {
        let now = Monotonic.nowMs()
        defer { healthBox.withLockedValue { $0.lastTickMs = now } }
        guard let epoch = servingEpoch else { return }
        let wallNow = Date()
        var sends: [Send<OutboundItem>] = []
        var depth = 0
        for pin in windows.keys {
            let (expired, afterExpiry) = windows[pin]!.removeAll(where: { $0.expiresAt <= wallNow }, nowMs: now)
            if !expired.isEmpty {
                metrics.itemsExpired.increment(by: Int64(expired.count))
                transitions.append(contentsOf: expired.map { Recorded(epoch: epoch, transition: .init(pin: pin, seq: $0, state: .expired)) })
            }
            sends += afterExpiry + windows[pin]!.due(nowMs: now)
            depth += windows[pin]!.inFlightCount + windows[pin]!.pendingCount
        }
        metrics.queueDepth.set(Double(depth))
        healthBox.withLockedValue { $0.queueDepth = depth }
        transmit(sends)
    }

    /// Seals and writes; an item sent while the link is down stays in flight and goes
    /// out again when the link is back (`linkUp`).
    private func transmit(_ sends: [Send<OutboundItem>]) {
        guard !sends.isEmpty, let epoch = servingEpoch else { return }
        var frames: [Frame] = []
        frames.reserveCapacity(sends.count)
        var firstSends: [Recorded] = []
        for send in sends {
            guard let key = keys[send.item.pin] else {
                logger.warning("no key for device, item held", metadata: ["device.pin": "\(send.item.pin)"])
                continue
            }
            var header = DataFrame(pin: send.item.pin, service: .push, ref: send.seq, flags: [], body: [])
            header.body = envelope.seal(
                PushItem(pushID: send.item.pushID.uuidString.lowercased(), subject: send.item.subject, body: send.item.body).encoded(),
                key: key, header: header)
            if send.isResend { header.flags.insert(.resend) }
            frames.append(.data(header))
            if send.isResend { metrics.itemsResent.increment() } else {
                metrics.itemsSent.increment()
                firstSends.append(Recorded(epoch: epoch, transition: .init(pin: send.item.pin, seq: send.seq, state: .sent)))
            }
        }
        link?.send(frames)
        transitions.append(contentsOf: firstSends)
    }

    private func reject(_ frame: DataFrame, reason: String) {
        metrics.framesRejected.increment()
        logger.warning("device frame rejected", metadata: [
            "device.pin": "\(frame.pin)", "frame.ref": "\(frame.ref)", "frame.service": "\(frame.service)", "reason": "\(reason)",
        ])
    }
}
