import BrambleCore
import BrambleNet
import Logging

/// The HA manager's bookkeeping between heartbeats: what it last read and wrote, and how
/// the database has been answering. Plain data and small rules; no I/O.
struct HeartbeatState {
    var heartbeats = 0
    var databaseFailures = 0
    var databaseError: String? = "not checked yet"
    /// The database clock at the last read, and the monotonic clock then.
    var lastDatabaseNow: (dbMs: UInt64, monoMs: UInt64) = (0, 0)
    /// Whether this node's last heartbeat write reached the database (see `Observation`).
    var lastWriteReached = true
    /// What the peer acts on in the last heartbeat written: whether we ask for the lease,
    /// and whether our score is below the failover threshold. A change is announced.
    var lastAnnounced: (Bool, Bool)?
    var promotionReason: HAStateMachine.PromotionReason?
    var requestingLease = false

    /// The database clock now, estimated from the last reading and the monotonic clock.
    func databaseNow(_ clock: any NodeClock) -> UInt64 {
        lastDatabaseNow.dbMs &+ clock.msSince(lastDatabaseNow.monoMs)
    }

    mutating func databaseReachable(_ view: PairView, clock: any NodeClock, logger: Logger) {
        heartbeats += 1
        lastDatabaseNow = (view.nowMs, clock.nowMs())
        databaseError = nil
        if databaseFailures > 0 {
            logger.notice("configuration database reachable again", metadata: ["failures": "\(databaseFailures)"])
            databaseFailures = 0
        }
    }

    mutating func databaseFailed(_ error: any Error, logger: Logger) {
        heartbeats += 1
        databaseError = describe(error)
        databaseFailures += 1
        if databaseFailures == 1 || databaseFailures % 25 == 0 {
            logger.warning("heartbeat cannot read the pair from the configuration database",
                           metadata: ["error": "\(databaseError!)", "failures": "\(databaseFailures)"])
        }
    }

    /// The machine's configuration with the pair's thresholds as the database has them.
    func thresholds(_ current: HAStateMachine.Configuration, _ view: PairView) -> HAStateMachine.Configuration {
        var c = current
        (c.failoverThreshold, c.promotionThreshold) = (view.thresholds.failover, view.thresholds.promotion)
        return c
    }

    func heartbeat(_ c: HAController.Configuration, role: NodeRole, epoch: UInt64?, score: Int, checks: [HealthCheck] = []) -> Heartbeat {
        Heartbeat(pair: c.pair, node: c.node, role: role, epoch: epoch, score: score, requestsLease: requestingLease && role != .stopped,
                  apiURL: c.apiURL, parameters: checks)
    }
}

/// An error as the heartbeat logs and `/health` show it.
func describe(_ error: any Error) -> String {
    if let deadline = error as? DeadlineExceeded { return deadline.description }
    return String(describing: error)
}
