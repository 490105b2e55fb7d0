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
            delayMs = min(delayMs * 2, 3_000)
        }
    }

    private func session(onConnected: () -> Void) async throws {
        let connection = try await FrameConnection.connect(to: configuration.relay)
        defer { connection.close() }
        connection.send(.deviceHello(pin: pin, srpID: configuration.credential.srpID))
        var frames = connection.frames.makeAsyncIterator()
        guard case .deviceWelcome? = try await frames.next() else {
            throw CredentialError("relay did not welcome the device")
        }
        onConnected()
        logger.info("device connected", metadata: ["device.pin": "\(pin)", "relay": "\(configuration.relay)"])
        try await withTaskCancellationHandler {
            while let frame = try await frames.next() {
                switch frame {
                case .data(let data): try handle(data, on: connection)
                case .ping(let n): connection.send(.pong(n))
                case .error(let code, let message):
                    logger.warning("relay error", metadata: ["device.pin": "\(pin)", "code": "\(code)", "message": "\(message)"])
                default: break
                }
            }
        } onCancel: {
            connection.close()
        }
    }

    private func handle(_ frame: DataFrame, on connection: FrameConnection) throws {
        guard frame.pin == pin, frame.service == .push, !frame.flags.contains(.fromDevice) else {
            logger.warning("unexpected frame dropped", metadata: ["device.pin": "\(pin)", "frame.service": "\(frame.service)"])
            return
        }
        if !store.contains(frame.ref) {
            let item: PushItem
            do {
                item = try PushItem.decode(try envelope.open(frame, key: key))
            } catch {
                // Tampered or foreign: never shown, never acknowledged, so a genuine copy is still resent.
                logger.warning("item rejected", metadata: ["device.pin": "\(pin)", "frame.ref": "\(frame.ref)", "reason": "\(error)"])
                return
            }
            let shown = ShownItem(pin: pin.description, ref: frame.ref, pushID: item.pushID, service: "push",
                                  subject: item.subject, bodyLength: item.body.utf8.count, receivedAt: Date())
            try store.show(shown)
            try store.save()
            shownTotal.withLockedValue { $0 += 1 }
            onShown?(shown)
        }
        // Acknowledge repeats too: the first acknowledgement may be what was lost.
        requestNumber += 1
        var ack = DataFrame(pin: pin, service: .ack, ref: requestNumber, flags: [.fromDevice], body: [])
        ack.body = envelope.seal(AckList(refs: [frame.ref]).encoded(), key: key, header: ack)
        connection.send(.data(ack))
    }
}
