import BrambleCore
import BrambleNet
@preconcurrency import Crypto
import Foundation
import Logging
import NIOConcurrencyHelpers

/// A simulated BlackBerry device: stays connected to the relay, opens each item with its
/// master key, shows it once (drops repeats by sequence number), acknowledges it, and
/// reconnects with back-off when the link drops.
public final class DeviceAgent: @unchecked Sendable {
    public struct Configuration: Sendable {
        public var credential: DeviceCredential
        public var relay: HostPort
        /// Where the shown set survives restarts; nil keeps it in memory only.
        public var statePath: String? = nil
        /// JSON-lines log of shown items (also read back at start).
        public var logPath: String? = nil
        /// Print each shown item as a JSON line on standard output.
        public var printJSON = false
        public init(credential: DeviceCredential, relay: HostPort) {
            self.credential = credential
            self.relay = relay
        }
    }

    private let configuration: Configuration
    private let pin: PIN
    private let key: SymmetricKey
    private let logger: Logger
    private let onShown: (@Sendable (ShownItem) -> Void)?
    // Touched only by the task running `run()`.
    private let envelope = Envelope()
    private let store: ShownStore
    private var requestNumber: UInt64 = 0

    public init(configuration: Configuration, logger: Logger, onShown: (@Sendable (ShownItem) -> Void)? = nil) throws {
        (pin, key) = try configuration.credential.validated()
        self.configuration = configuration
        self.logger = logger
        self.onShown = onShown
        self.store = try ShownStore(statePath: configuration.statePath, logPath: configuration.logPath,
                                    printToStdout: configuration.printJSON)
    }

    private let shownTotal = NIOLockedValueBox(0)

    /// Items shown since this agent started (safe to read from any task).
    public var shownCount: Int { shownTotal.withLockedValue { $0 } }

    /// Runs until the task is cancelled.
    public func run() async {
        var delayMs: UInt64 = 100
        while !Task.isCancelled {
            do {
                try await session { delayMs = 100 }
                logger.info("relay closed the connection", metadata: ["device.pin": "\(pin)"])
            } catch is CancellationError {
                return
            } catch {
                logger.info("connection to relay failed", metadata: ["device.pin": "\(pin)", "error": "\(error)"])
            }
            try? await Task.sleep(for: .milliseconds(delayMs + UInt64.random(in: 0...delayMs / 2)))
            delayMs = min(delayMs * 2, 1_000)  // a restarted relay is found again within about a second
        }
    }

    private func session(onConnected: () -> Void) async throws {
        try await FrameLink.connect(to: configuration.relay) { link, frames in
            try await link.outbound.write(.deviceHello(pin: pin, srpID: configuration.credential.srpID))
            guard case .deviceWelcome? = try await frames.next() else {
                throw CredentialError("relay did not welcome the device")
            }
            onConnected()
            logger.info("device connected", metadata: ["device.pin": "\(pin)", "relay": "\(configuration.relay)"])
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
                try await link.outbound.write(contentsOf: acknowledgements(refs))
            }
        }
    }

    /// Shows an item unless it was shown before; returns its sequence number to
    /// acknowledge (repeats too: the first acknowledgement may be what was lost), or
    /// nil for a frame that must not be acknowledged.
    private func show(_ frame: DataFrame) throws -> UInt64? {
        guard frame.pin == pin, frame.service == .push, !frame.flags.contains(.fromDevice) else {
            logger.warning("unexpected frame dropped", metadata: ["device.pin": "\(pin)", "frame.service": "\(frame.service)"])
            return nil
        }
        if store.contains(frame.ref) { return frame.ref }
        let item: PushItem
        do {
            item = try PushItem.decode(try envelope.open(frame, key: key))
        } catch {
            // Tampered or foreign: never shown, never acknowledged, so a genuine copy is still resent.
            logger.warning("item rejected", metadata: ["device.pin": "\(pin)", "frame.ref": "\(frame.ref)", "reason": "\(error)"])
            return nil
        }
        let shown = ShownItem(pin: pin.description, ref: frame.ref, pushID: item.pushID, service: "push",
                              subject: item.subject, bodyLength: item.body.utf8.count, receivedAt: Date())
        try store.show(shown)
        shownTotal.withLockedValue { $0 += 1 }
        onShown?(shown)
        return frame.ref
    }

    /// Sealed acknowledgement frames for `refs`, at most `AckList.maxCount` per frame.
    private func acknowledgements(_ refs: [UInt64]) -> [Frame] {
        stride(from: 0, to: refs.count, by: AckList.maxCount).map { start in
            requestNumber += 1
            var ack = DataFrame(pin: pin, service: .ack, ref: requestNumber, flags: [.fromDevice], body: [])
            ack.body = envelope.seal(AckList(refs: Array(refs[start..<min(start + AckList.maxCount, refs.count)])).encoded(),
                                     key: key, header: ack)
            return .data(ack)
        }
    }
}
