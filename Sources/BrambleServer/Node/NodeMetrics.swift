import BrambleCore
import BrambleNet
import CoreMetrics

/// A node's metrics, named by what happened; `/metrics` emits them in Prometheus text.
public final class NodeMetrics: Sendable {
    private let pushesAcceptedTotal, pushesRejectedTotal, itemsSentTotal, itemsResentTotal, itemsAckedTotal: Counter
    private let itemsExpiredTotal, framesRejectedTotal, srpConnectsTotal, promotionsTotal, demotionsTotal: Counter
    private let httpConnectionsRefusedTotal: Counter
    private let fencedWritesTotal, transitionsDroppedTotal, idempotentReplaysTotal: Counter
    private let deviceRequestsTotal, deviceRequestsRepeatedTotal, mailsEnqueuedTotal, stateItemsTotal: Counter
    /// Mail sent for devices, by what became of each attempt; in-doubt sends, by how
    /// they were settled.
    private let submissions: [String: Counter], inDoubt: [String: Counter]
    private let imLogins: [String: Counter], imMessages: [String: Counter], imResumedTotal: Counter, imSessionsGauge: Meter
    private let activationRequests: [String: Counter], activationConfirmations: [String: Counter], policyAnswers: [String: Counter]
    private let queueDepthGauge, srpLinkUpGauge, epochGauge, scoreGauge: Meter
    /// One gauge per role, 1 for the role this node is in (`bramble_role{role="primary"}`).
    private let roles: [NodeRole: Meter]
    private let leaseRenewal: Timer
    /// What an alert compares with: the pair's thresholds, each health parameter, the lease.
    private let failoverThresholdGauge, promotionThresholdGauge, leaseDurationGauge, oldestUnackedGauge: Meter
    private let parameters: [HealthParameter: Meter]
    /// The mailboxes the Messaging Agent should watch, watches, and whose last check failed.
    private let mailboxes: [String: Meter]
    /// From an item's commit to the device's acknowledgement, by what it is.
    private let delivery: [DataFrame.Service: Timer]
    public let catalog: MetricsCatalog

    public init(_ catalog: MetricsCatalog) {
        self.catalog = catalog
        let c = catalog
        pushesAcceptedTotal = c.counter("bramble_pushes_accepted_total", help: "Pushes committed and answered 202")
        pushesRejectedTotal = c.counter("bramble_pushes_rejected_total", help: "Pushes refused (bad request, unknown recipient, not accepted)")
        idempotentReplaysTotal = c.counter("bramble_pushes_replayed_total", help: "Pushes answered from an earlier request with the same Idempotency-Key")
        itemsSentTotal = c.counter("bramble_items_sent_total", help: "Items sent to devices for the first time")
        itemsResentTotal = c.counter("bramble_items_resent_total", help: "Unacknowledged items sent again")
        itemsAckedTotal = c.counter("bramble_items_acked_total", help: "Items acknowledged by devices")
        itemsExpiredTotal = c.counter("bramble_items_expired_total", help: "Items that expired undelivered")
        framesRejectedTotal = c.counter("bramble_device_frames_rejected_total", help: "Device frames that failed authentication or parsing")
        httpConnectionsRefusedTotal = c.counter("bramble_http_connections_refused_total",
                                                help: "HTTP connections closed on accept: the API held its maximum of connections")
        srpConnectsTotal = c.counter("bramble_srp_connects_total", help: "SRP connection attempts")
        promotionsTotal = c.counter("bramble_promotions_total", help: "Times this node became primary")
        demotionsTotal = c.counter("bramble_demotions_total", help: "Times this node stopped serving as primary")
        fencedWritesTotal = c.counter("bramble_fenced_writes_total", help: "Writes refused because the lease had moved on")
        transitionsDroppedTotal = c.counter("bramble_delivery_states_dropped_total",
                                            help: "Delivery states not recorded (database away too long, or stopping); each costs a resend")
        deviceRequestsTotal = c.counter("bramble_device_requests_total", help: "Device requests recorded (More, …)")
        deviceRequestsRepeatedTotal = c.counter("bramble_device_requests_repeated_total",
                                                help: "Device requests that arrived again (a retry or a replay): acknowledged, not acted on")
        mailsEnqueuedTotal = c.counter("bramble_mail_items_enqueued_total", help: "Mail items enqueued for devices by the Messaging Agent")
        stateItemsTotal = c.counter("bramble_mail_state_items_total", help: "Mail state items (read, deleted, folder) enqueued for devices by reconciliation")
        submissions = Dictionary(uniqueKeysWithValues: ["accepted", "refused", "retried", "unknown"].map { outcome in
            (outcome, c.counter("bramble_mail_submissions_total", help: "Device mail submitted to the mail server, by outcome (accepted, refused, retried later, unknown: no answer after the message was sent)",
                                labels: [("outcome", outcome)]))
        })
        inDoubt = Dictionary(uniqueKeysWithValues: ["witness", "resent"].map { resolution in
            (resolution, c.counter("bramble_mail_in_doubt_total", help: "Device mail whose submission had no answer, by how it was settled (witness: its copy found in Sent; resent: none after the attempt could no longer complete)",
                                   labels: [("resolution", resolution)]))
        })
        imLogins = Dictionary(uniqueKeysWithValues: ["logged-in", "server-busy", "failed"].map { outcome in
            (outcome, c.counter("bramble_im_logins_total", help: "Device IM logins, by outcome (logged-in, server-busy: the pair's maximum of sessions, failed)",
                                labels: [("outcome", outcome)]))
        })
        imMessages = Dictionary(uniqueKeysWithValues: ["received", "sent", "refused"].map { direction in
            (direction, c.counter("bramble_im_messages_total", help: "Instant messages relayed (received: to a device; sent: from a device; refused: a device's the IM server bounced)",
                                  labels: [("direction", direction)]))
        })
        activationRequests = Dictionary(uniqueKeysWithValues: ActivationMetrics.requestOutcomes.map { outcome in
            (outcome, c.counter("bramble_activation_requests_total", help: "Activation request mails handled by this node, by outcome (answered, refused: replay, locked, expired or unreadable; unsealed: not through the relay; stale: too old to answer)",
                                labels: [("outcome", outcome)]))
        })
        activationConfirmations = Dictionary(uniqueKeysWithValues: ["accepted", "refused"].map { outcome in
            (outcome, c.counter("bramble_activation_confirmations_total", help: "Devices' activation key confirmations checked by this node, by outcome",
                                labels: [("outcome", outcome)]))
        })
        policyAnswers = Dictionary(uniqueKeysWithValues: ActivationMetrics.policyAnswers.map { answer in
            (answer, c.counter("bramble_policy_answers_total", help: "Devices' answers to IT policies and IT commands recorded by this node (policy-applied, policy-refused, command-done, command-refused)",
                               labels: [("answer", answer)]))
        })
        imResumedTotal = c.counter("bramble_im_sessions_resumed_total", help: "Cached IM sessions logged back in by this node (after a promotion or a lost connection)")
        imSessionsGauge = c.gauge("bramble_im_sessions", help: "IM sessions this node holds for devices")
        queueDepthGauge = c.gauge("bramble_queue_depth", help: "Items queued or in flight, not yet acknowledged")
        srpLinkUpGauge = c.gauge("bramble_srp_link_up", help: "1 while the SRP link to the relay is registered")
        epochGauge = c.gauge("bramble_epoch", help: "Lease epoch this node serves at (0 while standby)")
        scoreGauge = c.gauge("bramble_health_score", help: "Healthy parameters from the top of the BES list")
        var roles: [NodeRole: Meter] = [:]
        for role in NodeRole.allCases {
            roles[role] = c.gauge("bramble_role", help: "1 for the HA role this node is in", labels: [("role", role.rawValue)])
        }
        self.roles = roles
        leaseRenewal = c.timer("bramble_lease_renewal_seconds", help: "Time to renew the HA lease in the configuration database",
                               buckets: [.milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
                                         .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
                                         .milliseconds(2_500), .seconds(5), .seconds(10), .seconds(30)])
        failoverThresholdGauge = c.gauge("bramble_failover_threshold", help: "A primary scoring below this many healthy parameters fails over (the pair's setting)")
        promotionThresholdGauge = c.gauge("bramble_promotion_threshold", help: "A standby must score at least this many healthy parameters to take over (the pair's setting)")
        leaseDurationGauge = c.gauge("bramble_lease_duration_seconds", help: "How long a renewed HA lease lasts")
        oldestUnackedGauge = c.gauge("bramble_oldest_unacked_seconds",
                                     help: "Age of the oldest item this primary holds for a device and the device has not acknowledged (0: none)")
        parameters = Dictionary(uniqueKeysWithValues: HealthParameter.allCases.map { parameter in
            (parameter, c.gauge("bramble_health_parameter", help: "1 while the health parameter is healthy, 0 while not (its detail: /health)",
                                labels: [("parameter", parameter.rawValue)]))
        })
        mailboxes = Dictionary(uniqueKeysWithValues: ["total", "watched", "failing"].map { state in
            (state, c.gauge("bramble_mailboxes", help: "Mailboxes of active devices (total), those the Messaging Agent watches (watched: reached and last check worked), and those whose last check failed (failing); 0 on a standby",
                            labels: [("state", state)]))
        })
        let latencyBuckets: [Duration] = [.milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
                                          .milliseconds(500), .seconds(1), .milliseconds(2_500), .seconds(5), .seconds(10), .seconds(30),
                                          .seconds(60), .seconds(300)]
        delivery = Dictionary(uniqueKeysWithValues: [(DataFrame.Service.push, "push"), (.mail, "mail"), (.im, "im")].map { service, name in
            (service, c.timer("bramble_delivery_seconds", help: "From an item's commit (a push accepted, a mail or instant message taken from its server) to the device's acknowledgement",
                              labels: [("service", name)], buckets: latencyBuckets))
        })
        c.startTime()
        role(.standby, epoch: nil)
    }

    func pushAccepted() { pushesAcceptedTotal.increment() }
    func pushRejected() { pushesRejectedTotal.increment() }
    func pushReplayed() { idempotentReplaysTotal.increment() }
    func itemsSent(first: Int, resent: Int) {
        if first > 0 { itemsSentTotal.increment(by: first) }
        if resent > 0 { itemsResentTotal.increment(by: resent) }
    }
    func itemsAcked(_ n: Int) { if n > 0 { itemsAckedTotal.increment(by: n) } }
    func itemsExpired(_ n: Int) { if n > 0 { itemsExpiredTotal.increment(by: n) } }
    func deviceRequests(new: Int, repeated: Int) {
        if new > 0 { deviceRequestsTotal.increment(by: new) }
        if repeated > 0 { deviceRequestsRepeatedTotal.increment(by: repeated) }
    }
    func mailsEnqueued(_ n: Int) { if n > 0 { mailsEnqueuedTotal.increment(by: n) } }
    func mailSubmitted(_ outcome: String) { submissions[outcome]?.increment() }
    func mailInDoubtSettled(_ resolution: String) { inDoubt[resolution]?.increment() }
    func imLogin(_ outcome: String) { imLogins[outcome]?.increment() }
    func imMessage(direction: String, failed: Bool) { imMessages[failed ? "refused" : direction]?.increment() }
    func imResumed(_ n: Int) { imResumedTotal.increment(by: n) }
    func activationRequest(_ outcome: String) { activationRequests[outcome]?.increment() }
    func activationConfirmation(accepted: Bool) { activationConfirmations[accepted ? "accepted" : "refused"]?.increment() }
    func policyAnswer(_ answer: String) { policyAnswers[answer]?.increment() }
    func imSessions(_ n: Int) { imSessionsGauge.set(n) }
    func stateItems(_ n: Int) { stateItemsTotal.increment(by: Int64(n)) }
    func frameRejected() { framesRejectedTotal.increment() }
    func httpConnectionRefused() { httpConnectionsRefusedTotal.increment() }
    func queueDepth(_ n: Int) { queueDepthGauge.set(n) }
    func srpConnect() { srpConnectsTotal.increment() }
    func srpLink(up: Bool) { srpLinkUpGauge.set(up ? 1 : 0) }
    func fencedWrites(_ n: Int) { fencedWritesTotal.increment(by: n) }
    func transitionsDropped(_ n: Int) { transitionsDroppedTotal.increment(by: n) }
    func promoted() { promotionsTotal.increment() }
    func demoted() { demotionsTotal.increment() }
    func score(_ n: Int) { scoreGauge.set(n) }
    /// What one heartbeat measured: each parameter, and the thresholds it is judged by.
    func health(_ checks: [HealthCheck], failoverThreshold: Int, promotionThreshold: Int) {
        for check in checks { parameters[check.parameter]?.set(check.healthy ? 1 : 0) }
        failoverThresholdGauge.set(failoverThreshold)
        promotionThresholdGauge.set(promotionThreshold)
    }
    func leaseDuration(ms: Int) { leaseDurationGauge.set(Double(ms) / 1000) }
    func mailboxes(total: Int, watched: Int, failing: Int) {
        mailboxes["total"]?.set(total)
        mailboxes["watched"]?.set(watched)
        mailboxes["failing"]?.set(failing)
    }
    func oldestUnacked(seconds: Double) { oldestUnackedGauge.set(max(0, seconds)) }
    func delivered(_ service: DataFrame.Service, after seconds: Double) {
        delivery[service]?.recordNanoseconds(Int64(max(0, seconds) * 1e9))
    }
    func leaseRenewed(_ d: Duration) { leaseRenewal.recordNanoseconds(d.nanoseconds) }
    func role(_ role: NodeRole, epoch: UInt64?) {
        for (name, gauge) in roles { gauge.set(name == role ? 1 : 0) }
        epochGauge.set(Int(epoch ?? 0))
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (s, atto) = components
        return s * 1_000_000_000 + atto / 1_000_000_000
    }
}

/// The labels of the activation and Policy Service counters.
enum ActivationMetrics {
    static let requestOutcomes = ["answered", "refused", "unsealed", "stale"]
    static let policyAnswers = ["policy-applied", "policy-refused", "command-done", "command-refused"]

    static func answer(_ request: DeviceRequest) -> String? {
        switch request {
        case .policyApplied: "policy-applied"
        case .policyRefused: "policy-refused"
        case .commandDone: "command-done"
        case .commandRefused: "command-refused"
        default: nil
        }
    }
}
