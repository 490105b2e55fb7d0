import BrambleCore
import BrambleNet
import CoreMetrics
import Prometheus

/// The relay's metrics (swift-metrics instruments on the registry `/metrics` emits).
final class RelayMetrics: Sendable {
    let registry: PrometheusCollectorRegistry
    private let registrations: CoreMetrics.Counter
    private let displacements: CoreMetrics.Counter
    private let refusals: CoreMetrics.Counter
    private let lockouts: CoreMetrics.Counter
    private let stored: CoreMetrics.Counter
    private let storeDropped: CoreMetrics.Counter
    let framesRouted: CoreMetrics.Counter
    let badFrames: CoreMetrics.Counter
    let slowPeersClosed: CoreMetrics.Counter
    let auditDropped: CoreMetrics.Counter
    private let connectionsRefused: CoreMetrics.Counter
    private let hellosRefused: CoreMetrics.Counter
    private let hellosTimedOut: CoreMetrics.Counter
    private let devicesIdleClosed: CoreMetrics.Counter
    private let presencesDeferred: CoreMetrics.Counter
    private let activationRequests: CoreMetrics.Counter
    let activationMails: CoreMetrics.Counter
    let activationMailFailures: CoreMetrics.Counter
    private let activationRefusals: CoreMetrics.Counter

    init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        let c = MetricsCatalog(registry: registry)
        registrations = c.counter("bramble_relay_registrations_total", help: "Accepted SRP registrations")
        displacements = c.counter("bramble_relay_displacements_total", help: "SRP sessions displaced by a higher epoch")
        refusals = c.counter("bramble_relay_refusals_total", help: "Refused SRP registrations (bad key, stale epoch, lockout, unknown ID)")
        lockouts = c.counter("bramble_relay_lockouts_total", help: "Registrations refused by the connect-rate lockout")
        stored = c.counter("bramble_relay_stored_total", help: "Items stored for an offline device or an unregistered SRP ID")
        storeDropped = c.counter("bramble_relay_store_dropped_total", help: "Stored items dropped for count or age")
        framesRouted = c.counter("bramble_relay_frames_total", help: "Frames received on device and SRP links")
        badFrames = c.counter("bramble_relay_bad_frames_total", help: "Connections closed for a malformed frame")
        slowPeersClosed = c.counter("bramble_relay_slow_peers_closed_total",
                                    help: "Connections closed because their peer stopped reading and their outbound buffer passed its bound")
        auditDropped = c.counter("bramble_relay_audit_dropped_total", help: "Audit log records dropped because the writer's queue was full")
        connectionsRefused = c.counter("bramble_relay_connections_refused_total",
                                       help: "Connections refused at a cap (in all, per source address, unauthenticated)")
        hellosRefused = c.counter("bramble_relay_device_hellos_refused_total",
                                  help: "Device hellos refused (bad proof, unknown PIN, unknown SRP ID)")
        hellosTimedOut = c.counter("bramble_relay_device_hellos_timed_out_total", help: "Device connections closed for not proving a PIN in time")
        devicesIdleClosed = c.counter("bramble_relay_devices_idle_closed_total", help: "Device connections closed after the idle timeout")
        presencesDeferred = c.counter("bramble_relay_presence_deferred_total",
                                      help: "Device presences held back by the per-PIN presence interval")
        activationRequests = c.counter("bramble_relay_activation_requests_total", help: "Over-the-air activation requests taken from devices")
        activationMails = c.counter("bramble_relay_activation_mails_total", help: "Activation requests mailed to the user's mailbox (etp.dat)")
        activationMailFailures = c.counter("bramble_relay_activation_mail_failures_total",
                                           help: "Activation requests the relay could not mail (the device was told)")
        activationRefusals = c.counter("bramble_relay_activation_refused_total",
                                       help: "Activation requests refused: an address in a domain the relay does not mail to")
        c.startTime()
    }

    func record(_ event: RelayEvent) {
        switch event {
        case .registered: registrations.increment()
        case .displaced: displacements.increment()
        case .refused(_, _, let reason):
            refusals.increment()
            if reason == .lockedOut { lockouts.increment() }
        case .storedForDevice, .storedForServer: stored.increment()
        case .storeOverflow(let n), .storedExpired(let n): storeDropped.increment(by: n)
        case .connectionRefused: connectionsRefused.increment()
        case .helloRefused: hellosRefused.increment()
        case .helloTimedOut: hellosTimedOut.increment()
        case .deviceIdle: devicesIdleClosed.increment()
        case .presenceDeferred: presencesDeferred.increment()
        case .activationRequested: activationRequests.increment()
        case .activationRefused: activationRefusals.increment()
        case .unregistered, .refusedData, .serverSilent, .deviceOnline, .deviceOffline, .deviceKeysSynced, .deviceKeysRefused,
             .activationUndeliverable, .activationTimedOut: break
        }
    }
}
