import BrambleNet
import NIOCore
import NIOSSL
import NIOConcurrencyHelpers
import ServiceLifecycle

/// A standby's wireless network parameter: can it open a connection to the relay's SRP
/// listener? (It connects and closes without registering, which the relay's lockout would
/// count.) Probes once a second; the primary's parameter comes from its own link.
public final class RelayProbe: Service {
    let relay: HostPort
    let tls: NIOSSLContext?
    let clock: any NodeClock
    let intervalMs: UInt64
    private let box = NIOLockedValueBox((reachable: false, detail: "not probed yet"))

    public init(relay: HostPort, tls: NIOSSLContext? = nil, clock: any NodeClock = SystemClock(), intervalMs: UInt64 = 1_000) {
        (self.relay, self.tls, self.clock, self.intervalMs) = (relay, tls, clock, intervalMs)
    }

    public var result: (reachable: Bool, detail: String) { box.withLockedValue { $0 } }

    public func run() async throws {
        // Cancelled by the graceful shutdown; ending then is this service's normal end.
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let outcome: (Bool, String)
                do {
                    try await FrameLink.probe(self.relay, tls: self.tls, timeoutMs: 500, clock: self.clock)
                    outcome = (true, "relay reachable at \(self.relay)")
                } catch {
                    outcome = (false, "relay unreachable at \(self.relay): \(error); check the route to it")
                }
                self.box.withLockedValue { $0 = outcome }
                try await self.clock.sleep(ms: self.intervalMs)
            }
        }
    }
}
