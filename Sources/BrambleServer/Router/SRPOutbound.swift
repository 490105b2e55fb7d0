import BrambleCore
import NIOConcurrencyHelpers

/// The frames waiting to go out on the SRP link: the Dispatcher puts them in (from any
/// task, without waiting), the Router's writer takes them out as fast as the relay reads.
/// Only frames for the epoch the link is registered at are taken; without a registered
/// link they are dropped, as the Dispatcher expects (they stay in flight and go out again
/// when the link is back). Bounded in bytes: a relay that stops reading makes the link
/// overflow, and the Router ends it (and resends everything on the next one) instead of
/// buffering without end.
public final class SRPOutbound: Sendable {
    /// The default bound: one resend of every in-flight item (5 per device) of a few
    /// thousand devices.
    public static let defaultMaxBytes = 64 << 20

    private struct State {
        var epoch: UInt64?
        var frames: [Frame] = []
        var bytes = 0
        var overflowed = false
        var writer: CheckedContinuation<Void, Never>?
    }
    private let state = NIOLockedValueBox(State())
    let maxBytes: Int

    public init(maxBytes: Int = SRPOutbound.defaultMaxBytes) { self.maxBytes = maxBytes }

    /// Queues device data sealed under `epoch`; false (nothing queued) unless the link is
    /// registered at that epoch.
    @discardableResult
    public func send(_ frames: [Frame], epoch: UInt64) -> Bool {
        enqueue(frames) { $0.epoch == epoch }
    }

    /// Queues a link-level frame (ping, pong) while any link is open.
    func sendControl(_ frame: Frame) { _ = enqueue([frame]) { $0.epoch != nil } }

    /// The link registered at `epoch`: frames for it are taken from now on.
    func open(epoch: UInt64) {
        state.withLockedValue { $0 = State(epoch: epoch) }
    }

    /// The link ended: what was queued is dropped.
    func close() {
        let writer = state.withLockedValue { s in defer { s = State() }; return s.writer }
        writer?.resume()
    }

    struct Overflow: Error, CustomStringConvertible {
        let maxBytes: Int
        var description: String { "the relay stopped reading: more than \(maxBytes >> 20) MiB waited for the SRP link" }
    }

    /// The writer's side: everything queued, waiting for some if none; nil once closed.
    func take() async throws -> [Frame]? {
        while true {
            let taken = state.withLockedValue { s -> Result<[Frame]?, Overflow>? in
                if s.overflowed { return .failure(Overflow(maxBytes: maxBytes)) }
                if s.epoch == nil { return .success(nil) }
                guard !s.frames.isEmpty else { return nil }
                defer { s.frames = []; s.bytes = 0 }
                return .success(s.frames)
            }
            if let taken { return try taken.get() }
            await withTaskCancellationHandler {
                await withCheckedContinuation { writer in
                    let ready = state.withLockedValue { s in
                        let ready = !s.frames.isEmpty || s.overflowed || s.epoch == nil || Task.isCancelled
                        if !ready { s.writer = writer }
                        return ready
                    }
                    if ready { writer.resume() }
                }
            } onCancel: {
                state.withLockedValue { s in defer { s.writer = nil }; return s.writer }?.resume()
            }
            try Task.checkCancellation()
        }
    }

    private func enqueue(_ frames: [Frame], when open: (State) -> Bool) -> Bool {
        guard !frames.isEmpty else { return true }
        let size = frames.reduce(0) { $0 + $1.encodedSizeEstimate }
        let (queued, writer) = state.withLockedValue { s -> (Bool, CheckedContinuation<Void, Never>?) in
            guard open(s), !s.overflowed else { return (false, nil) }
            if s.bytes + size > maxBytes {
                s.overflowed = true
                s.frames = []
                s.bytes = 0
            } else {
                s.frames += frames
                s.bytes += size
            }
            defer { s.writer = nil }
            return (!s.overflowed, s.writer)
        }
        writer?.resume()
        return queued
    }
}

extension Frame {
    /// About what the frame takes on the wire (exact for data frames, the bulk of it).
    var encodedSizeEstimate: Int {
        if case .data(let d) = self { return 20 + d.body.count }
        return 64
    }
}
