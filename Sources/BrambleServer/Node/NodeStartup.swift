import BrambleCore
import BrambleNet
import Logging
import ServiceLifecycle

/// The node's first steps, as a service that stays in the group so it can record the
/// node's stop last: wait for the configuration database, apply the migrations, refuse to
/// run beside a live process of the same node name, warm the Dispatcher's keys, record
/// the start — then open the gate the HA manager and the HTTP API wait behind.
final class NodeStartup: Service {
    let configuration: NodeConfiguration
    let store: ConfigStore
    let dispatcher: Dispatcher
    /// nil while starting; then whether it started (false: it stopped or failed first).
    let started = Watched<Bool?>(nil)
    let logger: Logger

    init(configuration: NodeConfiguration, store: ConfigStore, dispatcher: Dispatcher, logger: Logger) {
        (self.configuration, self.store, self.dispatcher, self.logger) = (configuration, store, dispatcher, logger)
    }

    /// Returns once the node has started. If it never will (startup failed or the node
    /// is stopping), waits for the caller's own turn to stop and then throws: a service
    /// returning early would make the group report it, not startup's own error.
    /// A caller whose own stop comes first (a SIGTERM while the database is still away)
    /// stops waiting then.
    func waitUntilStarted() async throws {
        let outcome = await cancelWhenGracefulShutdown { [started] in await started.wait(until: { $0 != nil }) }
        switch outcome {
        case true: return
        case false: try await gracefulShutdown()
        case nil: break
        }
        throw CancellationError()
    }

    func run() async throws {
        let c = configuration
        do {
            try await cancelWhenGracefulShutdown { [self] in
                try await waitForDatabase()
                try await store.migrate()
                try await store.adoptKeyEncryptionKey()
                try await waitForOwnHeartbeatToGoStale()
                await dispatcher.warm(keys: try await store.deviceKeys())
                try await store.recordEvent(.init(node: c.node, kind: .start, detail: "node started as standby of pair \(c.pair)"))
            }
        } catch is CancellationError where Task.isShuttingDownGracefully {
            started.update { $0 = false }
            return  // stopped before it had started
        } catch {
            started.update { $0 = false }
            throw error
        }
        started.update { $0 = true }
        logger.info("node started as standby", metadata: [
            "node": "\(c.node)", "pair": "\(c.pair)", "srp.id": "\(c.srpID)", "listen.http": "\(c.httpListen)", "relay": "\(c.relay)",
        ])
        try? await gracefulShutdown()
        // Everything after us in the group has stopped; the database pools still run.
        try? await withDeadline(ms: 1_000) { [store] in try await store.recordEvent(.init(node: c.node, kind: .stop, detail: "node shut down")) }
    }

    struct StartupError: Error, CustomStringConvertible { let description: String }

    /// Two processes with one node name would both pass the lease's `holder = node`
    /// checks, so a node does not start while its name's heartbeat is still fresh: it
    /// waits out a predecessor that just died, and refuses to run beside a live one.
    private func waitForOwnHeartbeatToGoStale() async throws {
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

    /// Waits up to 30 s for the database, saying so every few seconds.
    private func waitForDatabase() async throws {
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
}
