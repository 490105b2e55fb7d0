import Prometheus

/// A node's Prometheus metrics.
public final class NodeMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    let pushesAccepted: Counter
    let pushesRejected: Counter
    let itemsSent: Counter
    let itemsResent: Counter
    let itemsAcked: Counter
    let itemsExpired: Counter
    let framesRejected: Counter
    let queueDepth: Gauge
    let srpLinkUp: Gauge
    let srpConnects: Counter
    let epoch: Gauge
    let score: Gauge
    /// One gauge per role, 1 for the role this node is in (`bramble_role{role="primary"}`).
    let roles: [String: Gauge]
    let promotions: Counter
    let demotions: Counter
    let fencedWrites: Counter
    let leaseRenewal: DurationHistogram

    func setRole(_ role: String) {
        for (name, gauge) in roles { gauge.set(Int64(name == role ? 1 : 0)) }
    }

    public init() {
        pushesAccepted = registry.makeCounter(name: "bramble_pushes_accepted_total", help: "Pushes committed and answered 202")
        pushesRejected = registry.makeCounter(name: "bramble_pushes_rejected_total", help: "Pushes refused (bad request or unknown recipient)")
        itemsSent = registry.makeCounter(name: "bramble_items_sent_total", help: "Items sent to devices for the first time")
        itemsResent = registry.makeCounter(name: "bramble_items_resent_total", help: "Unacknowledged items sent again")
        itemsAcked = registry.makeCounter(name: "bramble_items_acked_total", help: "Items acknowledged by devices")
        itemsExpired = registry.makeCounter(name: "bramble_items_expired_total", help: "Items that expired undelivered")
        framesRejected = registry.makeCounter(name: "bramble_device_frames_rejected_total", help: "Device frames that failed authentication or parsing")
        queueDepth = registry.makeGauge(name: "bramble_queue_depth", help: "Items queued or in flight, not yet acknowledged")
        srpLinkUp = registry.makeGauge(name: "bramble_srp_link_up", help: "1 while the SRP link to the relay is registered")
        srpConnects = registry.makeCounter(name: "bramble_srp_connects_total", help: "SRP connection attempts")
        epoch = registry.makeGauge(name: "bramble_epoch", help: "Lease epoch this node serves at (0 while standby)")
        score = registry.makeGauge(name: "bramble_health_score", help: "Healthy parameters from the top of the BES list")
        var roles: [String: Gauge] = [:]
        for role in HAController.roleNames {
            roles[role] = registry.makeGauge(name: "bramble_role", labels: [("role", role)], help: "1 for the HA role this node is in")
        }
        self.roles = roles
        promotions = registry.makeCounter(name: "bramble_promotions_total", help: "Times this node became primary")
        demotions = registry.makeCounter(name: "bramble_demotions_total", help: "Times this node stopped serving as primary")
        fencedWrites = registry.makeCounter(name: "bramble_fenced_writes_total", help: "Writes refused because the lease had moved on")
        leaseRenewal = registry.makeDurationHistogram(
            name: "bramble_lease_renewal_seconds",
            buckets: [.milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
                      .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1)],
            help: "Time to renew the HA lease in the configuration database")
    }
}
