import BrambleCore
import BrambleNet
import NIOConcurrencyHelpers

/// The SRP link as the health check and `/health` read it, kept by the Router.
public final class LinkStatus: Sendable {
    public struct Snapshot: Sendable {
        public var link = HealthFacts.Link()
        /// The epoch the Router holds (or tries to hold) the link at.
        public var epoch: UInt64?
    }
    private let box = NIOLockedValueBox(Snapshot())
    let clock: any NodeClock

    public init(clock: any NodeClock = SystemClock()) { self.clock = clock }

    public var snapshot: HealthFacts.Link { box.withLockedValue { $0.link } }
    public var epoch: UInt64? { box.withLockedValue { $0.epoch } }

    func set(up: Bool, epoch: UInt64?, error: String?, cause: LinkDownCause = .relayAnswered) {
        let now = clock.nowMs()
        box.withLockedValue {
            if $0.link.up != up || $0.link.sinceMs == 0 { $0.link.sinceMs = now }
            ($0.link.up, $0.epoch, $0.link.lastError, $0.link.cause) = (up, epoch, error, cause)
        }
    }
}

/// What the Router tells the component that owns device data (the Dispatcher).
public protocol SRPLinkDelegate: Sendable {
    /// The link registered at `epoch`: anything sent over an earlier one may be lost.
    func linkUp(epoch: UInt64) async
    func linkDown(epoch: UInt64) async
    /// Data frames from devices, as they arrived in one read.
    func received(_ frames: [DataFrame]) async
    /// A device came online at the relay.
    func deviceOnline(_ pin: PIN) async
    /// A device went offline at the relay (out of coverage).
    func deviceOffline(_ pin: PIN) async
}

extension SRPLinkDelegate {
    public func deviceOffline(_ pin: PIN) async {}
}
