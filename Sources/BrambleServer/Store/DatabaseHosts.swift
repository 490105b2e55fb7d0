import AsyncHTTPClient
import BrambleCore
import BrambleNet
import Logging
import NIOConcurrencyHelpers
import PostgresNIO
import ServiceLifecycle

/// The configuration database's hosts — one, or the members of a Patroni cluster — with a
/// client pool for each. Statements go to the host found writable; when a statement
/// fails in a way that may mean the primary moved (a dropped connection, SQLSTATE 25006,
/// a time-out), `suspect` looks again, without a restart. A host counts as the primary
/// when PostgreSQL says it is not in recovery and, where a Patroni REST URL is given,
/// Patroni's `/primary` answers 200 (a PostgreSQL whose Patroni died still accepts
/// connections, but its commits hang once the standby was promoted away).
public final class DatabaseHosts: Service {
    public struct Host: Sendable, CustomStringConvertible {
        public var address: HostPort
        public var patroniURL: String?
        public init(address: HostPort, patroniURL: String? = nil) {
            self.address = address
            self.patroniURL = patroniURL
        }
        public var description: String { address.description }
    }

    /// Which host is the primary, and whether a search for it is under way;
    /// shared by every set that follows this one. The set that leads runs the search.
    private struct Primary {
        var index = 0
        var searching = false
    }

    public let hosts: [Host]
    let clients: [PostgresClient]
    private let primary: NIOLockedValueBox<Primary>
    /// Wakes the search (in the leading set's `run`).
    private let searches: (stream: AsyncStream<Void>, continuation: AsyncStream<Void>.Continuation)
    private let leads: Bool
    private let logger: Logger
    /// Asks Patroni's REST API (HTTPS trusting the database's CA, where it has one).
    private let patroni: HTTPClient

    /// `following` shares another set's view of which host is the primary (the same
    /// hosts, other pools): a switch found through either applies to both at once.
    public init(hosts: [Host], logger: Logger, following other: DatabaseHosts? = nil, patroni: HTTPClient = .shared,
                configuration: (HostPort) throws -> PostgresClient.Configuration) rethrows {
        precondition(!hosts.isEmpty)
        precondition(other.map { $0.hosts.map(\.description) == hosts.map(\.description) } ?? true)
        self.hosts = hosts
        self.clients = try hosts.map { PostgresClient(configuration: try configuration($0.address), backgroundLogger: logger) }
        self.logger = logger
        self.patroni = patroni
        // NIOLockedValueBox copies share their storage.
        primary = other?.primary ?? NIOLockedValueBox(Primary())
        searches = other?.searches ?? AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        leads = other == nil
    }

    /// One host and its client (tests, single-host deployments).
    public init(client: PostgresClient, logger: Logger) {
        hosts = [Host(address: HostPort(host: "?", port: 0))]
        clients = [client]
        self.logger = logger
        patroni = .shared
        primary = NIOLockedValueBox(Primary())
        searches = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        leads = true
    }

    private var currentIndex: Int { primary.withLockedValue { $0.index } }

    /// The pool of the host statements go to now.
    public var client: PostgresClient { clients[currentIndex] }
    public var current: Host { hosts[currentIndex] }

    /// The primary changed while a statement waited for a connection to the old one;
    /// nothing was sent, so the caller may retry on the new primary.
    public struct PrimaryMoved: Error, CustomStringConvertible {
        public var description: String { "the configuration database's primary moved while waiting for a connection" }
    }

    private enum Gate { case waiting, started, abandoned }

    /// Returns once the search has switched away from host `index`.
    private func primaryMoved(from index: Int) async throws {
        while currentIndex == index { try await Task.sleep(for: .milliseconds(20)) }
    }

    /// Runs `body` on a connection from the current primary's pool. A pool whose host is
    /// gone keeps its callers waiting for a connection; if the search switches hosts
    /// meanwhile, the wait is abandoned with `PrimaryMoved`. Once `body` has started it
    /// is never interrupted here (it may be committing).
    public func withPrimaryConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let index = currentIndex
        guard hosts.count > 1 else { return try await clients[index].withConnection(body) }
        let gate = NIOLockedValueBox(Gate.waiting)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await self.clients[index].withConnection { connection in
                    let go = gate.withLockedValue { g in
                        guard g == .waiting else { return false }
                        g = .started
                        return true
                    }
                    guard go else { throw PrimaryMoved() }
                    return try await body(connection)
                }
            }
            group.addTask {
                try await self.primaryMoved(from: index)
                let abandon = gate.withLockedValue { g in
                    guard g == .waiting else { return false }
                    g = .abandoned
                    return true
                }
                if abandon { throw PrimaryMoved() }
                return nil  // body has started: let it finish
            }
            while let result = try await group.next() {
                if let value = result {
                    group.cancelAll()
                    return value
                }
            }
            throw PrimaryMoved()  // unreachable: the body's task always yields a value or throws
        }
    }

    /// A transaction on a connection from the current primary (see `withPrimaryConnection`),
    /// committed only if `gate` still allows it. A failure says how far it got
    /// (`TransactionFailure`), so the caller knows whether it may have committed.
    func withPrimaryTransaction<T: Sendable>(gate: CommitGate, logger: Logger,
                                             _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await withPrimaryConnection { connection in
            try await connection.transaction(logger: logger, mayCommit: gate.beginCommit) { try await body($0) }
        }
    }

    /// Runs `body` with the current primary's pool until it returns, or until the search
    /// finds another primary: then `body` is cancelled and this returns nil. For
    /// long-lived sessions (LISTEN) that must follow the primary even though the old
    /// host still answers (a PostgreSQL whose Patroni died).
    public func whilePrimary<T: Sendable>(_ body: @escaping @Sendable (PostgresClient) async throws -> T) async throws -> T? {
        let index = currentIndex
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body(self.clients[index]) }
            if hosts.count > 1 {
                group.addTask {
                    try await self.primaryMoved(from: index)
                    return nil
                }
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    /// Runs every host's pool until graceful shutdown reaches this service (postgres-nio's
    /// clients end then), and, in the leading set, the search for the primary.
    public func run() async throws {
        await withDiscardingTaskGroup { group in
            for client in clients { group.addTask { await client.run() } }
            guard leads, hosts.count > 1 else { return }
            await cancelWhenGracefulShutdown { [self] in
                for await _ in searches.stream { await search() }
            }
        }
    }

    /// A statement failed: with more than one host, look for the primary again (one search
    /// at a time; statements keep going to the current host meanwhile).
    public func suspect(_ error: any Error) {
        guard hosts.count > 1 else { return }
        let start = primary.withLockedValue { p in defer { p.searching = true }; return !p.searching }
        guard start else { return }
        logger.notice("looking for the configuration database's primary", metadata: [
            "db.current": "\(current)", "error": "\(String(describing: error).prefix(200))"])
        searches.continuation.yield()
    }

    /// Asks every host every 100 ms for up to 60 s until one is the primary.
    private func search() async {
        defer { primary.withLockedValue { $0.searching = false } }
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline, !Task.isCancelled {
            if await findPrimary() { return }
            try? await Task.sleep(for: .milliseconds(100))
        }
        logger.warning("no writable configuration database found for 60 s; staying on \(current)")
    }

    /// Asks every host at once; switches to the first that is the primary. True if one is.
    @discardableResult
    public func findPrimary() async -> Bool {
        let answers = await withTaskGroup(of: (Int, Bool).self) { group in
            for index in hosts.indices {
                group.addTask { (index, (try? await withDeadline(ms: 500) { try await self.isPrimary(index) }) ?? false) }
            }
            var found: [Int: Bool] = [:]
            for await (index, primary) in group { found[index] = primary }
            return found
        }
        guard let index = hosts.indices.first(where: { answers[$0] == true }) else { return false }
        let previous = primary.withLockedValue { p in defer { p.index = index }; return p.index }
        if previous != index {
            logger.notice("configuration database primary is now \(hosts[index])", metadata: ["db.previous": "\(hosts[previous])"])
        }
        return true
    }

    private func isPrimary(_ index: Int) async throws -> Bool {
        if let url = hosts[index].patroniURL {
            var request = HTTPClientRequest(url: url + "/primary")
            request.method = .GET
            let response = try await patroni.execute(request, timeout: .milliseconds(400))
            _ = try? await response.body.collect(upTo: 64 << 10)
            guard response.status.code == 200 else { return false }
        }
        for try await inRecovery in try await clients[index].query("SELECT pg_is_in_recovery()", logger: logger).decode(Bool.self) {
            return !inRecovery
        }
        return false
    }
}
