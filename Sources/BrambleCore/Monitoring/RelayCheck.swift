/// `bramble check relay`: the relay from its `/health` (on its `--http-listen`). CRITICAL
/// when it does not answer, says other than "ok", or has no node registered for an SRP
/// ID the operator names; WARNING when no node at all is registered (devices then get
/// nothing; the relay stores for them); the store's size against the operator's
/// thresholds. Pure.
public enum RelayCheck {
    /// What the relay's `/health` says.
    public struct Facts: Sendable, Equatable {
        public var status: String
        public var connectedDevices: Int
        public var connections: Int
        public var unauthenticatedConnections: Int
        public var registeredDeviceKeys: Int
        /// The registered session of each SRP ID, by its epoch.
        public var sessions: [String: UInt64]
        public var storedForDevices: Int
        public var storedForServers: Int
        public var storedBytes: Int
        public init(status: String, connectedDevices: Int, connections: Int, unauthenticatedConnections: Int, registeredDeviceKeys: Int,
                    sessions: [String: UInt64], storedForDevices: Int, storedForServers: Int, storedBytes: Int) {
            (self.status, self.connectedDevices, self.connections, self.unauthenticatedConnections) = (status, connectedDevices, connections, unauthenticatedConnections)
            (self.registeredDeviceKeys, self.sessions, self.storedForDevices) = (registeredDeviceKeys, sessions, storedForDevices)
            (self.storedForServers, self.storedBytes) = (storedForServers, storedBytes)
        }
    }

    public enum Observation: Sendable, Equatable {
        case answered(Facts)
        case unreachable(String)
        case unreadable(String)
    }

    public struct Limits: Sendable, Equatable {
        /// SRP IDs that must have a node registered (CRITICAL without).
        public var srpIDs: [String]
        /// WARNING (CRITICAL) when the relay stores more bytes than this.
        public var storedWarningBytes: Int?
        public var storedCriticalBytes: Int?
        public init(srpIDs: [String] = [], storedWarningBytes: Int? = nil, storedCriticalBytes: Int? = nil) {
            (self.srpIDs, self.storedWarningBytes, self.storedCriticalBytes) = (srpIDs, storedWarningBytes, storedCriticalBytes)
        }
    }

    public static func verdict(_ observation: Observation, at place: String, limits: Limits = .init()) -> NagiosResult {
        let f: Facts
        switch observation {
        case .unreachable(let reason): return NagiosResult(state: .critical, summary: "\(place) unreachable (\(reason))")
        case .unreadable(let reason): return .unknown("\(place): \(reason)")
        case .answered(let facts): f = facts
        }
        var statements: [(NagiosState, String)] = []
        if f.status != "ok" { statements.append((.critical, "the relay says \(f.status)")) }
        let missing = limits.srpIDs.filter { f.sessions[$0] == nil }
        if !missing.isEmpty {
            statements.append((.critical, "no node registered for SRP ID \(missing.joined(separator: ", "))"))
        } else if f.sessions.isEmpty {
            statements.append((.warning, "no node registered"))
        }
        let mib = Double(f.storedBytes) / 1_048_576
        if let critical = limits.storedCriticalBytes, f.storedBytes > critical {
            statements.append((.critical, "\(PerfDatum.number(mib)) MiB stored, above \(PerfDatum.number(Double(critical) / 1_048_576)) MiB"))
        } else if let warning = limits.storedWarningBytes, f.storedBytes > warning {
            statements.append((.warning, "\(PerfDatum.number(mib)) MiB stored, above \(PerfDatum.number(Double(warning) / 1_048_576)) MiB"))
        }
        let registered = f.sessions.sorted { $0.key < $1.key }.map { "\($0.key) registered at epoch \($0.value)" }
        let shown = registered.prefix(5).joined(separator: ", ") + (registered.count > 5 ? " and \(registered.count - 5) more" : "")
        let counts = "\(f.connectedDevices) devices connected, \(f.storedForDevices + f.storedForServers) items stored"
        let summary = (statements.map(\.1) + (shown.isEmpty ? [] : [shown]) + [counts]).joined(separator: "; ")
        let perfdata = [
            PerfDatum("connected_devices", f.connectedDevices, min: 0),
            PerfDatum("connections", f.connections, min: 0),
            PerfDatum("unauthenticated_connections", f.unauthenticatedConnections, min: 0),
            PerfDatum("registered_device_keys", f.registeredDeviceKeys, min: 0),
            PerfDatum("sessions", f.sessions.count, min: 0),
            PerfDatum("stored_for_devices", f.storedForDevices, min: 0),
            PerfDatum("stored_for_servers", f.storedForServers, min: 0),
            PerfDatum("stored", f.storedBytes, unit: .bytes, warning: limits.storedWarningBytes.map { .above(Double($0)) },
                      critical: limits.storedCriticalBytes.map { .above(Double($0)) }, min: 0),
        ]
        return NagiosResult(state: NagiosState.worst(statements.map(\.0)), summary: summary, perfdata: perfdata)
    }
}
