import BrambleCore
import BrambleNet
import ServiceLifecycle

/// systemd's watchdog for the node (BES's Controller restarted a component that stopped
/// responding): pings every half `WatchdogSec` while the loops that must not hang — the
/// HA heartbeat and the Dispatcher's tick — have come round recently, so systemd restarts
/// a hung node as it restarts a dead one. Says STOPPING when the node begins to stop.
final class NodeWatchdog: Service {
    /// A loop counts as hung after this long without coming round (a heartbeat bounded by
    /// a few 500 ms statements while the database is away takes up to about 2 s).
    static let hungAfterMs: UInt64 = 10_000

    let notifier: SystemdNotifier
    let snapshot: HASnapshotBox
    let dispatcher: Dispatcher
    let clock: any NodeClock

    init(notifier: SystemdNotifier, snapshot: HASnapshotBox, dispatcher: Dispatcher, clock: any NodeClock) {
        (self.notifier, self.snapshot, self.dispatcher, self.clock) = (notifier, snapshot, dispatcher, clock)
    }

    /// Both loops came round within `hungAfterMs` (a node still starting counts as alive).
    var loopsAlive: Bool {
        let heartbeat = snapshot.value.lastHeartbeatMs, tick = dispatcher.health.lastTickMs
        return (heartbeat == 0 || clock.msSince(heartbeat) < Self.hungAfterMs) && clock.msSince(tick) < Self.hungAfterMs
    }

    func run() async throws {
        let intervalMs = notifier.watchdogInterval.map { UInt64(max($0.components.seconds * 1000 + $0.components.attoseconds / 1_000_000_000_000_000, 1)) }
        await withGracefulShutdownHandler {
            _ = try? await cancelWhenGracefulShutdown { [self] in
                while true {
                    try await clock.sleep(ms: intervalMs ?? 3_600_000)
                    if intervalMs != nil { notifier.watchdog { loopsAlive } }
                }
            }
        } onGracefulShutdown: { [notifier] in notifier.notify(.stopping) }
    }
}
