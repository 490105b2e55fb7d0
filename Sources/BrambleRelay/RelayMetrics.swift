import BrambleCore
import Prometheus

/// The relay's Prometheus metrics.
final class RelayMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let registrations: Counter
    private let displacements: Counter
    private let refusals: Counter
    private let lockouts: Counter
    private let stored: Counter
    private let storeDropped: Counter
    let framesRouted: Counter
    let badFrames: Counter
    let slowPeersClosed: Counter
    let auditDropped: Counter

    init() {
        registrations = registry.makeCounter(name: "bramble_relay_registrations_total", help: "Accepted SRP registrations")
        displacements = registry.makeCounter(name: "bramble_relay_displacements_total", help: "SRP sessions displaced by a higher epoch")
        refusals = registry.makeCounter(name: "bramble_relay_refusals_total", help: "Refused SRP registrations (bad key, stale epoch, lockout, unknown ID)")
        lockouts = registry.makeCounter(name: "bramble_relay_lockouts_total", help: "Registrations refused by the connect-rate lockout")
        stored = registry.makeCounter(name: "bramble_relay_stored_total", help: "Items stored for an offline device or an unregistered SRP ID")
        storeDropped = registry.makeCounter(name: "bramble_relay_store_dropped_total", help: "Stored items dropped for count or age")
        framesRouted = registry.makeCounter(name: "bramble_relay_frames_total", help: "Frames received on device and SRP links")
        badFrames = registry.makeCounter(name: "bramble_relay_bad_frames_total", help: "Connections closed for a malformed frame")
        slowPeersClosed = registry.makeCounter(name: "bramble_relay_slow_peers_closed_total",
                                               help: "Connections closed because their peer stopped reading and their outbound buffer passed its bound")
        auditDropped = registry.makeCounter(name: "bramble_relay_audit_dropped_total", help: "Audit log records dropped because the writer's queue was full")
    }

    func record(_ event: RelayEvent) {
        switch event {
        case .registered: registrations.increment()
        case .displaced: displacements.increment()
        case .refused(_, _, let reason):
            refusals.increment()
            if reason == .lockedOut { lockouts.increment() }
        case .storedForDevice, .storedForServer: stored.increment()
        case .storeOverflow(let n), .storedExpired(let n): storeDropped.increment(by: Int64(n))
        case .unregistered, .refusedData, .serverSilent, .deviceOnline, .deviceOffline: break
        }
    }
}
