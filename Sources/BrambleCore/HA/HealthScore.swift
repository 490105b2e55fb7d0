/// A node's health parameters, in BES's default order (DESIGN, "High availability"),
/// with the configuration database third: a node can neither promote nor record
/// anything without it. The score is how many parameters from the top are healthy; the
/// failover and promotion thresholds are positions in this list.
public enum HealthParameter: String, CaseIterable, Sendable, Codable {
    /// The SRP link (for a standby: the relay reachable).
    case wirelessNetwork = "wireless_network"
    case dispatcher
    case configurationDatabase = "configuration_database"
    case messagingAgent = "messaging_agent"
    /// At least 75% of user accounts started.
    case userAccountsStarted = "user_accounts_started"
    /// At least 75% of mailboxes' messaging server reachable.
    case messagingServerReachable = "messaging_server_reachable"
    case atLeastOneUser = "at_least_one_user"
    case collaboration
    case mds
    case attachment
    case policy
    case synchronization

    /// Position in the list, 1-based, as thresholds name it.
    public var position: Int { Self.allCases.firstIndex(of: self)! + 1 }
}

public struct HealthCheck: Sendable, Equatable, Codable {
    public var parameter: HealthParameter
    public var healthy: Bool
    public var detail: String

    /// `/health` and `bramble status` call the parameter its `name`.
    enum CodingKeys: String, CodingKey {
        case parameter = "name", healthy, detail
    }

    public init(_ parameter: HealthParameter, healthy: Bool, detail: String = "") {
        self.parameter = parameter
        self.healthy = healthy
        self.detail = detail
    }

    /// How many parameters from the top of BES's list are healthy; a parameter with no
    /// check counts as unhealthy.
    public static func score(_ checks: [HealthCheck]) -> Int {
        let healthy = Dictionary(checks.map { ($0.parameter, $0.healthy) }, uniquingKeysWith: { $0 && $1 })
        return HealthParameter.allCases.prefix { healthy[$0] == true }.count
    }
}
