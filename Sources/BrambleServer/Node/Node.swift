import AsyncHTTPClient
import BrambleCore
import BrambleNet
import Hummingbird
import HummingbirdTLS
import Logging
import Metrics
import NIOConcurrencyHelpers
import PostgresNIO
import Prometheus
import ServiceLifecycle

/// One Bramble node: its components as services in one `ServiceGroup`, in dependency
/// order — each may use those before it, and a graceful shutdown stops them in reverse:
/// the HTTP API first, then the watchdog (STOPPING to systemd), the HA manager (which
/// demotes in BES's order while everything it needs still runs), … , the database pools
/// last, all within 10 s. The components that follow the
/// lease (`LeaseFollower`) are promoted in this order and demoted in the reverse.
public struct Node {
    public let services: [any Service]
    /// What `/metrics` emits.
    public let registry: PrometheusCollectorRegistry

    public init(configuration c: NodeConfiguration, logger: Logger, clock: any NodeClock = SystemClock(),
                registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), notifier: SystemdNotifier = .init()) throws {
        self.registry = registry
        let metrics = NodeMetrics(MetricsCatalog(registry: registry))
        let patroni = try c.database.tls.map { try HTTPClient.bramble(caFile: $0.ca) } ?? .shared
        let database = try DatabaseHosts(hosts: c.database.hosts, logger: logger, patroni: patroni) { try Self.pool(c, $0, connections: 8) }
        // The heartbeat and the notification listener get their own connections, so a burst
        // of pushes never delays a lease renewal. Their statements give up waiting for a
        // lock after the heartbeat's own deadline, so a timed-out renewal or take does not
        // keep holding a connection.
        let haDatabase = try DatabaseHosts(hosts: c.database.hosts, logger: logger, following: database, patroni: patroni) {
            try Self.pool(c, $0, connections: 3, extra: [("lock_timeout", "500"), ("statement_timeout", "\(max(2 * c.leaseMs, 2_000))")])
        }
        let vault = MasterKeyVault(kek: c.keyEncryptionKey, previous: c.previousKeyEncryptionKey)
        let store = ConfigStore(database: database, vault: vault, logger: logger)
        let inbox = HAInbox()
        let snapshot = HASnapshotBox()
        let link = LinkStatus(clock: clock)
        let outbound = SRPOutbound()
        let recorder = DeliveryRecorder(store: store, pair: c.pair, node: c.node, inbox: inbox, clock: clock, metrics: metrics, logger: logger)
        // The Dispatcher tells the Agent when it has recorded device requests (More).
        let agentWakes = AsyncStream.makeStream(of: MessagingAgent.Wake.self, bufferingPolicy: .bufferingNewest(8))
        let imWakes = AsyncStream.makeStream(of: CollaborationService.Wake.self, bufferingPolicy: .bufferingNewest(1))
        // Made after the Dispatcher, which wakes it for policy and command confirmations.
        let policyBox = NIOLockedValueBox<PolicyService?>(nil)
        let dispatcher = Dispatcher(configuration: c.dispatcher, store: store, outbound: outbound, recorder: recorder, clock: clock,
                                    metrics: metrics, logger: logger, onRequestsRecorded: {
                                        agentWakes.continuation.yield(.requests)
                                        imWakes.continuation.yield(.requests)
                                        policyBox.withLockedValue { $0 }?.requestsRecorded()
                                    })
        let agent = MessagingAgent(configuration: c.mail, store: store, dispatcher: dispatcher, wakes: agentWakes,
                                   pair: c.pair, node: c.node, clock: clock, metrics: metrics, logger: logger)
        var im = c.im
        im?.leaseMarginMs = UInt64(c.leaseMs) * 7 / 10
        let collaboration = CollaborationService(configuration: im, store: store, dispatcher: dispatcher, wakes: imWakes,
                                                 pair: c.pair, node: c.node, clock: clock, metrics: metrics, logger: logger, lease: snapshot)
        let activation = ActivationService(
            configuration: c.mail.map { ActivationService.Configuration(mail: $0, srpID: c.srpID, srpKey: c.srpKey) },
            store: store, dispatcher: dispatcher, outbound: outbound, pair: c.pair, node: c.node, clock: clock, metrics: metrics, logger: logger)
        var policyConfiguration = PolicyService.Configuration(srpID: c.srpID)
        policyConfiguration.imOffered = c.im != nil
        let policy = PolicyService(configuration: policyConfiguration, store: store, dispatcher: dispatcher, pair: c.pair, node: c.node,
                                   clock: clock, metrics: metrics, logger: logger)
        policyBox.withLockedValue { $0 = policy }
        let startup = NodeStartup(configuration: c, store: store, dispatcher: dispatcher, logger: logger)
        let uncertain = UncertainCommits()
        let committer = PushCommitter(store: store, dispatcher: dispatcher, origin: c.node, uncertain: uncertain, logger: logger)
        var routerConfiguration = SRPRouter.Configuration(relay: c.relay, srpID: c.srpID, key: c.srpKey)
        routerConfiguration.linkTimeoutMs = c.relayTimeoutMs
        routerConfiguration.tls = c.relayTLS
        let router = SRPRouter(configuration: routerConfiguration, delegate: dispatcher, outbound: outbound, status: link, inbox: inbox,
                               clock: clock, metrics: metrics, logger: logger, onActivation: { activation.received($0) })
        let probe = RelayProbe(relay: c.relay, tls: c.relayTLS, clock: clock)
        let listener = PairListener(database: haDatabase, store: store, dispatcher: dispatcher, inbox: inbox, uncertain: uncertain,
                                    node: c.node, logger: logger)
        let http = try Self.http(c, store: store, committer: committer, agent: agent, activation: activation, metrics: metrics, registry: registry, inbox: inbox, snapshot: snapshot,
                             link: link, probe: probe, clock: clock, startup: startup, notifier: notifier,
                             devicesChanged: { dispatcher.refreshKeys() }, policyChanged: { policy.changed() }, logger: logger)

        // The order of this list is the node's dependency order (see above).
        let components: [any Service] = [database, haDatabase, startup, recorder, committer, dispatcher, agent, collaboration, activation, policy, router, listener, probe]
        var ha = HAController.Configuration(pair: c.pair, node: c.node, apiURL: c.apiURL)
        ha.leaseMs = c.leaseMs
        ha.heartbeatIntervalMs = c.heartbeatIntervalMs
        let manager = HAController(
            configuration: ha, store: ConfigStore(database: haDatabase, vault: vault, logger: logger),
            followers: components.compactMap { $0 as? any LeaseFollower }, drained: { await recorder.drained(timeoutMs: 500) },
            health: HealthMonitor(link: link, relayProbe: probe, dispatcher: dispatcher, agent: agent, clock: clock), inbox: inbox, snapshot: snapshot,
            waitUntilStarted: { try await startup.waitUntilStarted() }, clock: clock, metrics: metrics, logger: logger)
        let watchdog = NodeWatchdog(notifier: notifier, snapshot: snapshot, dispatcher: dispatcher, clock: clock)
        services = components + [manager, watchdog, http]
    }

    /// Runs the node until SIGTERM or SIGINT, which stop it gracefully (a primary demotes
    /// first). Bootstraps swift-metrics with the node's Prometheus registry (once a process).
    public static func run(configuration: NodeConfiguration, logger: Logger) async throws {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let node = try Node(configuration: configuration, logger: logger, registry: registry)
        var configuration = ServiceGroupConfiguration(services: node.services.map { .init(service: $0) },
                                                      gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        // Below systemd's TimeoutStopSec (15 s): a stop that hangs (a query on a blackholed
        // connection) is cancelled rather than SIGKILLed.
        configuration.maximumGracefulShutdownDuration = .seconds(10)
        let group = ServiceGroup(configuration: configuration)
        try await group.run()
    }

    private static func pool(_ c: NodeConfiguration, _ host: HostPort, connections: Int, extra: [(String, String)] = []) throws -> PostgresClient.Configuration {
        try ConfigStore.clientConfiguration(c.database, host: host, leaseMs: c.leaseMs, maximumConnections: connections, extra: extra)
    }

    private static func http(_ c: NodeConfiguration, store: ConfigStore, committer: PushCommitter, agent: MessagingAgent,
                             activation: ActivationService, metrics: NodeMetrics,
                             registry: PrometheusCollectorRegistry, inbox: HAInbox, snapshot: HASnapshotBox, link: LinkStatus,
                             probe: RelayProbe, clock: any NodeClock, startup: NodeStartup, notifier: SystemdNotifier,
                             devicesChanged: @escaping @Sendable () -> Void, policyChanged: @escaping @Sendable () -> Void,
                             logger: Logger) throws -> some Service {
        let router = Router()
        router.add(middleware: BearerTokenMiddleware(adminToken: c.adminToken, mailNotifyToken: c.mail?.notifyToken,
                                                     pushApp: { [store] in try await store.pushApp(tokenSHA256: $0) }))
        HealthRoutes(node: c.node, pair: c.pair, srpID: c.srpID, relay: c.relay.description, snapshot: snapshot, link: link,
                     relayProbe: probe, registry: registry, clock: clock).register(on: router)
        PushRoutes(store: store, committer: committer, metrics: metrics).register(on: router)
        MailRoutes(agent: agent, activation: activation).register(on: router)
        AdminRoutes(store: store, srpID: c.srpID, mail: c.mail, devicesChanged: devicesChanged, policyChanged: policyChanged).register(on: router)
        PairRoutes(pair: c.pair, node: c.node, relay: c.relay.description, store: store, inbox: inbox, snapshot: snapshot).register(on: router)
        var app = Application(
            router: router,
            server: try c.apiTLS.map { try .tls(.bounded(onRefused: { metrics.httpConnectionRefused() }), tlsConfiguration: $0) }
                ?? .bounded(onRefused: { metrics.httpConnectionRefused() }),
            configuration: .init(address: .hostname(c.httpListen.host, port: c.httpListen.port), serverName: "bramble-server"),
            onServerRunning: { _ in notifier.notify(.ready, .status("node \(c.node) of pair \(c.pair) started")) },
            logger: logger)
        // The API opens once the node has started (the database migrated, the name free).
        app.beforeServerStarts { try await startup.waitUntilStarted() }
        return app
    }
}
