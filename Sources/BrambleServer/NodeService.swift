import BrambleCore
import BrambleNet
import Foundation
import Hummingbird
import Logging
import PostgresNIO
import ServiceLifecycle

/// One Bramble node: the configuration database clients, the Dispatcher with its group
/// committer and delivery recorder, the HA controller (which runs the Router's SRP link
/// while this node is primary), the pair's notification listener, and the HTTP API.
/// Every node starts as a standby; the HA controller promotes it when the rules say so.
public struct NodeService: Service {
    let configuration: NodeConfiguration
    let logger: Logger

    public init(configuration: NodeConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    public func run() async throws {
        let c = configuration
        let database = DatabaseHosts(hosts: c.database.hosts, logger: logger) { databaseConfiguration($0, maximumConnections: 8) }
        // The heartbeat and the notification listener get their own connections, so a
        // burst of pushes never delays a lease renewal. Their statements give up waiting
        // for a lock after the heartbeat's own deadline, so a timed-out renewal or take
        // does not keep holding a connection.
        let haDatabase = DatabaseHosts(hosts: c.database.hosts, logger: logger, following: database) {
            databaseConfiguration($0, maximumConnections: 3, extra: [("lock_timeout", "500"), ("statement_timeout", "\(max(2 * c.leaseMs, 2_000))")])
        }
        let store = ConfigStore(database: database, logger: logger)
        let haStore = ConfigStore(database: haDatabase, logger: logger)
        let metrics = NodeMetrics()
        let dispatcher = Dispatcher(configuration: c.dispatcher, metrics: metrics, logger: logger,
                                    keyLookup: { try await store.deviceKey($0) })
        let committer = PushCommitter(store: store, dispatcher: dispatcher, origin: c.node, logger: logger)
        let linkStatus = SRPRouter.Status()
        var routerConfiguration = SRPRouter.Configuration(relay: c.relay, srpID: c.srpID, key: c.srpKey)
        routerConfiguration.linkTimeoutMs = c.relayTimeoutMs
        let srpRouter = SRPRouter(configuration: routerConfiguration,
                                  dispatcher: dispatcher, status: linkStatus, metrics: metrics, logger: logger)
        var haConfiguration = HAController.Configuration(pair: c.pair, node: c.node, apiURL: c.apiURL)
        haConfiguration.leaseMs = c.leaseMs
        haConfiguration.heartbeatIntervalMs = c.heartbeatIntervalMs
        let ha = HAController(configuration: haConfiguration, store: haStore, dispatcher: dispatcher, router: srpRouter,
                              link: linkStatus, metrics: metrics, logger: logger)

        try await withThrowingDiscardingTaskGroup { tasks in
            // The database clients outlive the graceful shutdown: the demotion that follows
            // it still records the event, releases the lease and writes the last heartbeat.
            tasks.addTask { await ignoringGracefulShutdown { await database.run() } }
            tasks.addTask { await ignoringGracefulShutdown { await haDatabase.run() } }
            await Task.yield()  // let the pools start before the first query

            try await waitForDatabase(store)  // finds the primary for both sets of pools
            try await store.migrate()
            try await waitForOwnHeartbeatToGoStale(store)
            await dispatcher.warm(keys: try await store.deviceKeys())
            try await store.recordEvent(node: c.node, kind: "start", epoch: nil, detail: "node started as standby of pair \(c.pair)")

            let router = Router()
            router.add(middleware: BearerTokenMiddleware(token: c.adminToken))
            HealthAPI(node: c.node, pair: c.pair, srpID: c.srpID, relay: c.relay.description, store: store, ha: ha,
                      link: linkStatus, metrics: metrics).register(on: router)
            PushAPI(store: store, committer: committer, metrics: metrics).register(on: router)
            AdminAPI(store: store, srpID: c.srpID).register(on: router)
            PairAPI(pair: c.pair, store: store, ha: ha).register(on: router, node: c.node, relay: c.relay.description)
            let app = Application(
                router: router,
                configuration: .init(address: .hostname(c.httpListen.host, port: c.httpListen.port), serverName: "bramble-server"),
                logger: logger)

            tasks.addTask { await committer.run() }
            tasks.addTask { await recordTransitions(dispatcher: dispatcher, store: store, ha: ha, metrics: metrics) }
            tasks.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    await dispatcher.tick()
                }
            }
            tasks.addTask {
                await PairListener(database: haDatabase, store: store, dispatcher: dispatcher, ha: ha, node: c.node, logger: logger).run()
            }
            tasks.addTask { await ha.run() }
            tasks.addTask { try await app.runService() }
            logger.info("node started as standby", metadata: [
                "node": "\(c.node)", "pair": "\(c.pair)", "srp.id": "\(c.srpID)",
                "listen.http": "\(c.httpListen)", "relay": "\(c.relay)",
            ])

            try? await gracefulShutdown()
            logger.info("node stopping")
            await ha.shutdown()  // closes the SRP link and releases the lease first, as BES does
            committer.finish()
            dispatcher.transitions.finish()
            // Bounded: the pools may already be closing, and an unanswered write must not
            // hold the stop (once seen: 10 s until the script's SIGKILL).
            try? await withDeadline(ms: 1_000) { try await store.recordEvent(node: c.node, kind: "stop", epoch: nil, detail: "node shut down") }
            tasks.cancelAll()
        }
    }

    private func databaseConfiguration(_ host: HostPort, maximumConnections: Int, extra: [(String, String)] = []) -> PostgresClient.Configuration {
        ConfigStore.clientConfiguration(configuration.database, host: host, leaseMs: configuration.leaseMs,
                                        maximumConnections: maximumConnections, extra: extra)
    }

    /// Two processes with one node name would both pass the lease's `holder = node`
    /// checks, so a node does not start while its name's heartbeat is still fresh: it
    /// waits out a predecessor that just died, and refuses to run beside a live one.
    private func waitForOwnHeartbeatToGoStale(_ store: ConfigStore) async throws {
        let c = configuration
        let started = ContinuousClock.now
        var said = false
        while let age = try await store.heartbeatAgeMs(node: c.node), age < Int64(c.leaseMs + c.heartbeatIntervalMs) {
            if ContinuousClock.now - started > .milliseconds(4 * c.leaseMs + 2_000) {
                throw StartupError(description: "another process is running as node '\(c.node)' (its heartbeat is \(age) ms old); give each node its own --node name")
            }
            if !said {
                logger.notice("waiting for this node name's last heartbeat to go stale", metadata: ["node": "\(c.node)", "age.ms": "\(age)"])
                said = true
            }
            try await Task.sleep(for: .milliseconds(c.heartbeatIntervalMs))
        }
    }

    struct StartupError: Error, CustomStringConvertible { let description: String }

    /// Waits up to 30 s for the database, saying so every few seconds.
    private func waitForDatabase(_ store: ConfigStore) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        var attempt = 0
        while true {
            do {
                if configuration.database.hosts.count > 1 {
                    guard await store.database.findPrimary() else { throw StartupError(description: "no host is the writable primary yet") }
                }
                try await store.ping()
                return
            } catch {
                attempt += 1
                if ContinuousClock.now > deadline { throw error }
                if attempt % 5 == 1 {
                    logger.notice("waiting for the configuration database", metadata: [
                        "db.hosts": "\(configuration.database.hosts.map(\.description).joined(separator: ","))", "error": "\(error)",
                    ])
                }
                try await Task.sleep(for: .milliseconds(500))
            }
        }
    }

    /// Writes the Dispatcher's delivery transitions in batches, each fenced by the epoch
    /// it happened under. A failed batch is retried, so the queue's state catches up once
    /// the database answers; a fenced one is dropped (the new primary resends, devices drop
    /// repeats) and the HA controller hears that the lease has moved on.
    private func recordTransitions(dispatcher: Dispatcher, store: ConfigStore, ha: HAController, metrics: NodeMetrics) async {
        await dispatcher.transitions.run { batch in
            for (epoch, recorded) in Dictionary(grouping: batch, by: \.epoch) {
                await record(recorded.map(\.transition), epoch: epoch, store: store, ha: ha, metrics: metrics)
            }
        }
    }

    private func record(_ batch: [DeliveryTransition], epoch: UInt64, store: ConfigStore, ha: HAController, metrics: NodeMetrics) async {
        let c = configuration
        var attempt = 0
        while true {
            do {
                // Bounded: a call on a session the server ended (a node paused inside the
                // transaction) may never return; the next attempt takes a fresh connection.
                try await withDeadline(ms: 5_000) { try await store.recordDelivery(batch, pair: c.pair, node: c.node, epoch: epoch) }
                return
            } catch let fenced as ConfigStore.FencedError {
                metrics.fencedWrites.increment(by: Int64(batch.count))
                logger.warning("delivery state not recorded: fenced", metadata: ["error": "\(fenced)", "transitions": "\(batch.count)"])
                ha.reportFenced(epoch: epoch)
                return
            } catch {
                attempt += 1
                if attempt == 1 || attempt % 20 == 0 {
                    logger.warning("recording delivery state failed, retrying", metadata: ["error": "\(String(reflecting: error))"])
                }
                if Task.isCancelled && attempt > 3 { return }
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
    }
}

/// Runs `body` without the task-local graceful-shutdown signal (a detached task does not
/// inherit it); cancelling the caller still cancels it.
func ignoringGracefulShutdown(_ body: @escaping @Sendable () async -> Void) async {
    let task = Task.detached { await body() }
    await withTaskCancellationHandler { await task.value } onCancel: { task.cancel() }
}
