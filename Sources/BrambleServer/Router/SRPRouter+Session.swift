import BrambleCore
import BrambleNet
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

extension SRPRouter {
    /// The relay holds a higher (or our) epoch for the SRP ID: we are refused or displaced.
    struct EpochRefused: Error, CustomStringConvertible {
        let reason: EpochRefusal
        let heldEpoch: UInt64
        var description: String { "relay \(reason == .stale ? "refused our epoch" : "displaced us"); it holds epoch \(heldEpoch)" }
    }

    struct RefusedError: Error, CustomStringConvertible {
        let code: Frame.ErrorCode
        let message: String
        var description: String { "relay refused registration (\(code)): \(message)" }
    }

    struct ProtocolError: Error, CustomStringConvertible {
        let description: String
    }

    /// The relay went quiet on an open link (see `Configuration.linkTimeoutMs`).
    struct RelaySilent: Error, CustomStringConvertible {
        let silentMs: UInt64
        var description: String { "relay silent for \(silentMs) ms" }
    }

    /// Why a link or connect failed: a lockout; the relay's end alive enough to answer (a
    /// refused connection, a reset, an error frame); or silence: a timeout, an unreachable
    /// network, a blackholed route.
    static func cause(of error: any Error) -> LinkDownCause {
        func answered(_ error: any Error) -> Bool {
            switch error {
            case is RefusedError, is ProtocolError, is WireError, is SRPOutbound.Overflow: return true
            // A TLS handshake that failed (a certificate that does not verify: an impostor,
            // or a relay with the wrong certificate) was answered, not silent.
            case is NIOSSLError, is BoringSSLError, is NIOSSLExtraError: return true
            case let io as IOError: return [ECONNREFUSED, ECONNRESET, EPIPE].contains(io.errnoCode)
            case let connect as NIOConnectionError: return connect.connectionErrors.contains { answered($0.error) }
            default: return false
            }
        }
        if let refused = error as? RefusedError, refused.code == .lockedOut { return .lockedOut }
        return answered(error) ? .relayAnswered : .relaySilent
    }

    /// One connection's life: challenge, register, then frames until it ends, with a
    /// watchdog beside it that pings and ends the link when the relay goes silent, and one
    /// writer for everything this side sends.
    func session(epoch: UInt64, onRegistered: @escaping () -> Void) async throws {
        // Why the watchdog or the writer ended the link (they close it, which ends the
        // reader here); that, not the reader's end, is then this session's error.
        let ended = NIOLockedValueBox<(any Error)?>(nil)
        // A connect bounded like the link's silence: a stop (demotion) waits for a connect in
        // flight, and a relay that does not answer within the timeout is as good as silent.
        let connectTimeout = TimeAmount.milliseconds(Int64(max(configuration.linkTimeoutMs, 200)))
        try await FrameLink.connect(to: configuration.relay, tls: configuration.tls, connectTimeout: connectTimeout, clock: clock) { link, reader in
            try Task.checkCancellation()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await self.watch(link, ended: ended) }
                defer { group.cancelAll() }
                func failIfSilent() throws { if let error = ended.withLockedValue({ $0 }) { throw error } }
                do { try await register(link, &reader, epoch: epoch) } catch { try failIfSilent(); throw error }
                try failIfSilent()
                onRegistered()
                outbound.open(epoch: epoch)
                defer { outbound.close() }
                group.addTask {
                    do {
                        try await self.write(link)
                    } catch {
                        ended.withLockedValue { $0 = $0 ?? error }
                        link.close()
                    }
                }
                status.set(up: true, epoch: epoch, error: nil)
                metrics.srpLink(up: true)
                logger.info("srp registered", metadata: ["srp.id": "\(configuration.srpID)", "srp.epoch": "\(epoch)", "relay": "\(configuration.relay)"])
                await delegate.linkUp(epoch: epoch)
                do {
                    try await read(&reader)
                } catch {
                    await delegate.linkDown(epoch: epoch)
                    try failIfSilent()
                    throw error
                }
                await delegate.linkDown(epoch: epoch)
                try failIfSilent()
            }
        }
    }

    /// Challenge, proof, registration; pongs to the watchdog's pings are skipped.
    private func register(_ link: FrameLink, _ reader: inout FrameReader, epoch: UInt64) async throws {
        func nextAnswer() async throws -> Frame? {
            var frame = try await reader.next()
            while case .pong? = frame { frame = try await reader.next() }
            return frame
        }
        guard case .challenge(let nonce)? = try await nextAnswer() else {
            throw ProtocolError(description: "relay did not send a challenge")
        }
        let proof = SRPProof.compute(key: configuration.key, nonce: nonce, srpID: configuration.srpID, epoch: epoch)
        try await link.outbound.write(.register(srpID: configuration.srpID, epoch: epoch, proof: proof))
        switch try await nextAnswer() {
        case .registered(let id, let e)? where id == configuration.srpID && e == epoch: return
        case .epochRefused(let reason, let held)?: throw EpochRefused(reason: reason, heldEpoch: held)
        case .error(let code, let message)?: throw RefusedError(code: code, message: message)
        case let other: throw ProtocolError(description: "unexpected answer to registration: \(String(describing: other?.type))")
        }
    }

    /// Frames from the relay until the link ends.
    private func read(_ reader: inout FrameReader) async throws {
        while let batch = try await reader.nextBatch() {
            var data: [DataFrame] = []
            for frame in batch {
                switch frame {
                case .data(let d): data.append(d)
                case .presence(let pin, true): await delegate.deviceOnline(pin)
                case .presence(let pin, false): await delegate.deviceOffline(pin)
                case .pong, .registered: break
                case .ping(let n): outbound.sendControl(.pong(n))
                case .epochRefused(let reason, let held): throw EpochRefused(reason: reason, heldEpoch: held)
                case .error(let code, let message):
                    logger.warning("relay error on srp link", metadata: ["code": "\(code)", "message": "\(message)"])
                case .activation(let a) where a.phase == .confirm: onActivation(a)
                case .deviceHello, .deviceWelcome, .challenge, .register, .deviceKeys, .activation:
                    throw ProtocolError(description: "unexpected \(frame.type) frame on srp link")
                }
            }
            if !data.isEmpty { await delegate.received(data) }
        }
    }

    /// The link's one writer: what the Dispatcher and the watchdog queued, as fast as the
    /// relay reads it. An overflow (the relay stopped reading) or a failed write ends it.
    private func write(_ link: FrameLink) async throws {
        while let frames = try await outbound.take() {
            try await link.outbound.write(contentsOf: frames)
        }
    }

    /// Pings every third of the timeout; when nothing at all has come back for the whole
    /// timeout, closes the link and records `RelaySilent` as the reason.
    private func watch(_ link: FrameLink, ended: NIOLockedValueBox<(any Error)?>) async throws {
        let timeoutMs = configuration.linkTimeoutMs
        var n: UInt64 = 0
        while true {
            try await clock.sleep(ms: max(timeoutMs / 3, 1))
            let silent = clock.msSince(link.lastHeardMs)
            if silent >= timeoutMs {
                ended.withLockedValue { $0 = $0 ?? RelaySilent(silentMs: silent) }
                link.close()
                return
            }
            n += 1
            // Queued, so a relay that stopped reading cannot hold the watchdog up; before
            // registration nothing is queued, and the relay's challenge is what we wait for.
            outbound.sendControl(.ping(n))
        }
    }
}
