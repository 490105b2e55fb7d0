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
        epoch = registry.makeGauge(name: "bramble_epoch", help: "Epoch this node registers with")
    }
}
