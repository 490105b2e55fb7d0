/// A node's health parameters measured from what its components report (DESIGN, "High
/// availability"), as a pure function: the shell gathers the facts, this decides what
/// each parameter says. A component this build does not have counts as healthy.
public struct HealthFacts: Sendable, Equatable {
    /// The SRP link as the Router holds it (only a primary holds one).
    public struct Link: Sendable, Equatable {
        public var up = false
        /// Monotonic ms when the link last went up or down.
        public var sinceMs: UInt64 = 0
        public var cause = LinkDownCause.relayAnswered
        public var lastError: String?
        public init(up: Bool = false, sinceMs: UInt64 = 0, cause: LinkDownCause = .relayAnswered, lastError: String? = nil) {
            self.up = up
            self.sinceMs = sinceMs
            self.cause = cause
            self.lastError = lastError
        }
    }

    /// What the Dispatcher reports without being asked (a stuck one shows as unhealthy).
    public struct Dispatcher: Sendable, Equatable {
        public var lastTickMs: UInt64 = 0
        public var servingEpoch: UInt64?
        public var deviceKeys = 0
        public var queueDepth = 0
        public init(lastTickMs: UInt64 = 0, servingEpoch: UInt64? = nil, deviceKeys: Int = 0, queueDepth: Int = 0) {
            self.lastTickMs = lastTickMs
            self.servingEpoch = servingEpoch
            self.deviceKeys = deviceKeys
            self.queueDepth = queueDepth
        }
    }

    /// What the Messaging Agent reports: the mailboxes it watches, and whether the mail
    /// server answers.
    public struct MessagingAgent: Sendable, Equatable {
        /// False when the node has no mail server configured.
        public var configured = false
        public var servingEpoch: UInt64?
        /// Mailboxes a check reached since this node began serving, and whose last check
        /// worked, of `total`.
        public var watched = 0
        public var total = 0
        /// Mailboxes whose last check failed, and of those, how many because the mail
        /// server could not be reached.
        public var failingCount = 0
        public var unreachableCount = 0
        /// A standby's probe of the mail server: nil when it answered.
        public var mailServerError: String? = "not probed yet"
        public init() {}
    }

    public struct Accounts: Sendable, Equatable {
        public var users: Int
        public var activeDevices: Int
        public init(users: Int, activeDevices: Int) {
            self.users = users
            self.activeDevices = activeDevices
        }
    }

    /// Monotonic ms now.
    public var nowMs: UInt64
    /// The epoch this node serves at, while primary; and since when.
    public var servingEpoch: UInt64?
    public var servingSinceMs: UInt64 = 0
    public var link = Link()
    /// A standby's probe of the relay's SRP listener.
    public var relayReachable = false
    public var relayDetail = "not probed yet"
    public var dispatcher = Dispatcher()
    public var messagingAgent = MessagingAgent()
    /// Why the last read of the pair failed, or nil if it worked.
    public var databaseError: String?
    /// nil until first counted.
    public var accounts: Accounts?

    public init(nowMs: UInt64) { self.nowMs = nowMs }
}

/// Why the SRP link is down, which decides how the health check counts it.
public enum LinkDownCause: Sendable, Equatable {
    /// The relay's end said so (closed the link, refused the connection, answered with
    /// an error), as a restarting relay does: a grace period applies.
    case relayAnswered
    /// The relay went silent or could not be reached at all: this node is cut off, and
    /// its standby may not be.
    case relaySilent
    /// The relay locked the SRP ID out for too many connects in its window: it would
    /// refuse the standby just the same, so a failover cannot help.
    case lockedOut
}

public enum HealthEvaluation {
    public struct Limits: Sendable, Equatable {
        /// How long a link the relay closed or refused may stay down before it counts.
        public var linkGraceMs: UInt64 = 1_500
        /// A Dispatcher that has not ticked for this long counts as stuck.
        public var dispatcherStallMs: UInt64 = 3_000
        public init() {}
    }

    /// Each parameter in BES's order (the order of `HealthParameter`).
    public static func evaluate(_ f: HealthFacts, limits: Limits = .init()) -> [HealthCheck] {
        var measured: [HealthParameter: (healthy: Bool, detail: String)] = [:]
        measured[.wirelessNetwork] = wireless(f, limits: limits)
        let d = f.dispatcher
        let sinceTick = f.nowMs > d.lastTickMs ? f.nowMs - d.lastTickMs : 0
        if sinceTick > limits.dispatcherStallMs {
            measured[.dispatcher] = (false, "no delivery tick for \(sinceTick) ms: the Dispatcher is stuck; restart the node if it persists")
        } else if let epoch = d.servingEpoch {
            measured[.dispatcher] = (true, "delivering at epoch \(epoch); \(d.queueDepth) items queued or in flight")
        } else {
            measured[.dispatcher] = (true, "warm; \(d.deviceKeys) device keys loaded")
        }
        measured[.configurationDatabase] = f.databaseError.map {
            (false, "unreachable: \($0); check the database's primary (`patronictl list`, `make status`) and the route to it")
        } ?? (true, "reachable")
        if let accounts = f.accounts {
            let started = min(d.deviceKeys, accounts.activeDevices)
            let enough = accounts.activeDevices == 0 || started * 4 >= accounts.activeDevices * 3
            measured[.userAccountsStarted] = (enough, "\(started) of \(accounts.activeDevices) device accounts started"
                + (enough ? "" : "; their keys are loading: if it stays, see the node's log for keys that do not open (a key-encryption key this node lacks)"))
            measured[.atLeastOneUser] = (accounts.users > 0,
                                         accounts.users > 0 ? "\(accounts.users) user accounts" : "no user accounts: add one with `bramble user add`")
        } else {
            measured[.userAccountsStarted] = (false, "not counted yet: the node counts accounts every 10 heartbeats; if it stays, check the database")
            measured[.atLeastOneUser] = (false, "not counted yet: the node counts accounts every 10 heartbeats; if it stays, check the database")
        }
        (measured[.messagingAgent], measured[.messagingServerReachable]) = messaging(f.messagingAgent)
        measured[.mds] = (true, "push API only; no browsing proxy")
        return HealthParameter.allCases.map { parameter in
            let m = measured[parameter] ?? (true, "not part of this build; counts as healthy")
            return HealthCheck(parameter, healthy: m.healthy, detail: m.detail)
        }
    }

    /// The Messaging Agent (a primary: at least 75% of mailboxes watched) and the mail
    /// server (a primary: at least 75% of mailboxes reachable; a standby: its probe).
    static func messaging(_ a: HealthFacts.MessagingAgent) -> ((Bool, String), (Bool, String)) {
        guard a.configured else {
            let none = (true, "no mail server configured (set imap and the service account); counts as healthy")
            return (none, none)
        }
        guard let epoch = a.servingEpoch else {
            let server = a.mailServerError.map { (false, "mail server unreachable: \($0); check the route to it") } ?? (true, "mail server answers")
            return ((true, "warm; starts watching mailboxes on promotion"), server)
        }
        let share = a.total == 0 || a.watched * 4 >= a.total * 3
        let failing = a.failingCount == 0 ? "" : "; \(a.failingCount) failing (see `bramble user list`)"
        let agent = (share, "watching \(a.watched) of \(a.total) mailboxes at epoch \(epoch)\(failing)"
                     + (share ? "" : "; mail for the others does not reach their devices: check the mail server and the service account"))
        let reached = a.total - a.unreachableCount
        let reachable = a.total == 0 || reached * 4 >= a.total * 3
        let server = (reachable, reachable ? "mail server reachable for \(reached) of \(a.total) mailboxes"
                                           : "mail server unreachable for \(a.unreachableCount) of \(a.total) mailboxes; check the route to it")
        return (agent, server)
    }

    /// The SRP link for a primary, the relay probe for a standby.
    static func wireless(_ f: HealthFacts, limits: Limits) -> (Bool, String) {
        guard let epoch = f.servingEpoch else { return (f.relayReachable, f.relayDetail) }
        let l = f.link
        if l.up { return (true, "SRP link registered at epoch \(epoch)") }
        let since = max(l.sinceMs, f.servingSinceMs)
        let downFor = f.nowMs > since ? f.nowMs - since : 0
        let down = "SRP link down for \(downFor) ms"
        return switch l.cause {
        case .relayAnswered: (downFor < limits.linkGraceMs, "\(down): \(l.lastError ?? "connecting")"
                              + (downFor < limits.linkGraceMs ? "" : "; the relay closed or refused it: check that the relay runs (`bramble check relay`) and has this pair's SRP key"))
        case .relaySilent: (false, "\(down) (relay silent or unreachable; check the route to the relay): \(l.lastError ?? "connecting")")
        // Counted as healthy so the pair does not hand the lease to and fro while both
        // would be refused; the detail says what is wrong.
        case .lockedOut: (true, "\(down): the relay has locked the SRP ID out; the standby would be refused too; it registers when the window clears: \(l.lastError ?? "")")
        }
    }
}
