import BrambleCore
import BrambleNet
import Foundation
import Hummingbird
import Logging
import PostgresNIO
import ServiceLifecycle

/// One Bramble node: the configuration database client, the Dispatcher with its group
/// committer and delivery recorder, the Router's SRP link, and the HTTP API.
public struct NodeService: Service {
    let configuration: NodeConfiguration
    let logger: Logger

    public init(configuration: NodeConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    public func run() async throws {
        let c = configuration
        var pg = PostgresClient.Configuration(host: c.database.host, port: c.database.port, username: c.database.user,
                                              password: c.database.password, database: c.database.name, tls: .disable)
        pg.options.maximumConnections = 8
        pg.options.connectTimeout = .seconds(2)
        let client = PostgresClient(configuration: pg, backgroundLogger: logger)
        let store = ConfigStore(client: client, logger: logger)
        let metrics = NodeMetrics()
        let dispatcher = Dispatcher(configuration: c.dispatcher, metrics: metrics, logger: logger,
                                    keyLookup: { try await store.deviceKey($0) })
        let committer = PushCommitter(store: store, dispatcher: dispatcher, logger: logger)
        let linkStatus = SRPRouter.Status()

        try await withThrowingDiscardingTaskGroup { tasks in
            tasks.addTask { await client.run() }
            await Task.yield()  // let the pool start before the first query

            try await waitForDatabase(store)
            try await store.migrate()
            let epoch = try await store.nextEpoch(srpID: c.srpID)
            try await store.recordEvent(node: c.node, kind: "start", epoch: epoch, detail: "node started, serving")
            let open = try await store.openItems()
            await dispatcher.load(items: open.items, keys: open.keys)

            let router = Router()
            router.add(middleware: BearerTokenMiddleware(token: c.adminToken))
            HealthAPI(node: c.node, srpID: c.srpID, relay: c.relay.description, store: store, link: linkStatus, metrics: metrics)
                .register(on: router)
            PushAPI(store: store, committer: committer, metrics: metrics).register(on: router)
            AdminAPI(store: store, srpID: c.srpID).register(on: router)
            let app = Application(
                router: router,
                configuration: .init(address: .hostname(c.httpListen.host, port: c.httpListen.port), serverName: "bramble-server"),
                logger: logger)
            let srpRouter = SRPRouter(
                configuration: .init(relay: c.relay, srpID: c.srpID, key: c.srpKey),
                epoch: { epoch }, dispatcher: dispatcher, status: linkStatus, metrics: metrics, logger: logger)

            tasks.addTask { await committer.run() }
            tasks.addTask { await recordTransitions(dispatcher: dispatcher, store: store) }
            tasks.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    await dispatcher.tick()
                }
            }
            tasks.addTask { try await srpRouter.run() }
            tasks.addTask { try await app.runService() }
            logger.info("node serving", metadata: [
                "node": "\(c.node)", "srp.id": "\(c.srpID)", "srp.epoch": "\(epoch)",
                "listen.http": "\(c.httpListen)", "relay": "\(c.relay)",
            ])

            try? await gracefulShutdown()
            logger.info("node stopping")
            committer.finish()
            dispatcher.transitions.finish()
            try? await store.recordEvent(node: c.node, kind: "stop", epoch: epoch, detail: "node shut down")
            tasks.cancelAll()
        }
    }

    /// Waits up to 30 s for the database, saying so every few seconds.
    private func waitForDatabase(_ store: ConfigStore) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        var attempt = 0
        while true {
            do {
                try await store.ping()
                return
            } catch {
                attempt += 1
                if ContinuousClock.now > deadline { throw error }
                if attempt % 5 == 1 {
                    logger.notice("waiting for the configuration database", metadata: [
                        "db.host": "\(configuration.database.host)", "db.port": "\(configuration.database.port)", "error": "\(error)",
                    ])
                }
                try await Task.sleep(for: .milliseconds(500))
            }
        }
    }

    /// Writes the Dispatcher's delivery transitions in batches; a failed batch is retried,
    /// never dropped, so the queue's state catches up once the database answers.
    private func recordTransitions(dispatcher: Dispatcher, store: ConfigStore) async {
        await dispatcher.transitions.run { [logger] batch in
            var attempt = 0
            while true {
                do {
                    try await store.recordDelivery(batch)
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
}
