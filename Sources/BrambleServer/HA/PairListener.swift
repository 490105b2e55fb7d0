import BrambleNet
import BrambleCore
import Logging
import PostgresNIO
import ServiceLifecycle

/// LISTENs on the pair's notification channel: a lease changing hands, or a heartbeat
/// the peer must act on, wakes the HA manager (a planned switchover or a standby's
/// request then takes one round trip, not a heartbeat interval), and pushes a peer
/// committed go straight to this node's Dispatcher when it serves. Whenever the listening
/// connection is (re)established, a serving node rescans the open items, since
/// notifications sent while it was gone are lost. The session follows the database
/// primary: commits NOTIFY on the primary only, and an old primary whose Patroni died
/// still accepts a LISTEN that will never hear another commit.
final class PairListener: Service {
    let database: DatabaseHosts
    let store: ConfigStore
    let dispatcher: Dispatcher
    let inbox: HAInbox
    let uncertain: UncertainCommits
    let node: String
    let logger: Logger

    init(database: DatabaseHosts, store: ConfigStore, dispatcher: Dispatcher, inbox: HAInbox, uncertain: UncertainCommits, node: String,
         logger: Logger) {
        (self.database, self.store, self.dispatcher, self.inbox) = (database, store, dispatcher, inbox)
        (self.uncertain, self.node, self.logger) = (uncertain, node, logger)
    }

    func run() async throws {
        await cancelWhenGracefulShutdown { await self.listen() }
    }

    private func listen() async {
        var failures = 0
        while !Task.isCancelled {
            do {
                let moved = try await database.whilePrimary { [self] client in
                    try await client.withConnection { connection in
                        try await connection.listen(on: ConfigStore.notificationChannel) { notifications in
                            self.inbox.wake()
                            try await self.rescan()
                            for try await notification in notifications { try await self.handle(notification.payload) }
                        }
                    }
                } == nil
                failures = 0
                if moved {
                    logger.notice("listening for pair notifications on the new database primary", metadata: ["db.current": "\(database.current)"])
                    continue
                }
            } catch is CancellationError {
                return
            } catch {
                failures += 1
                database.suspect(error)
                if failures == 1 || failures % 20 == 0 {
                    logger.warning("listening for pair notifications failed; retrying", metadata: ["error": "\(String(reflecting: error))"])
                }
            }
            try? await Task.sleep(for: .milliseconds(250))
        }
    }

    /// A failure to load what a notification names ends the listening session, so the
    /// next one starts with a rescan: nothing notified is ever skipped.
    private func handle(_ payload: String) async throws {
        if payload.hasPrefix("lease|") || payload.hasPrefix("heartbeat|") {
            inbox.wake()
            return
        }
        let notification: OutboundNotification
        do {
            notification = try OutboundNotification(payload: payload)
        } catch {
            logger.warning("ignoring malformed pair notification", metadata: ["error": "\(error)"])
            return
        }
        // Our own commits reach our Dispatcher directly, except those whose outcome we could
        // not learn; a standby delivers nothing.
        guard notification.origin != node || uncertain.claim(payload), dispatcher.health.servingEpoch != nil else { return }
        if let ranges = notification.ranges {
            let found = try await withDeadline(ms: 5_000) { [store] in try await store.outboundItems(ranges) }
            await dispatcher.committed(found.items, keys: found.keys)
        } else {
            try await rescan()
        }
    }

    private func rescan() async throws {
        guard let epoch = dispatcher.health.servingEpoch else { return }
        let open = try await withDeadline(ms: 10_000) { [store] in try await store.openItems() }
        await dispatcher.load(items: open.items, keys: open.keys, epoch: epoch)
    }
}
