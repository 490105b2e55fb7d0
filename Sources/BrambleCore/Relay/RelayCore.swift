import Crypto

/// A connection as the relay's shell numbers them.
public typealias ConnectionID = UInt64

/// The relay's routing state as a pure state machine: events in, actions out, no I/O.
///
/// - One live server session per SRP ID; a registration with a higher (or equal, for a
///   reconnect) epoch displaces it, a lower one is refused, so a fenced old primary can
///   no longer reach any device. Both are told the epoch that fences them
///   (`Frame.epochRefused`), which the node's HA manager acts on.
/// - Server → device by PIN; device → server by the SRP ID the device named in its hello.
/// - Store-and-forward per PIN while the device is offline and per SRP ID while no
///   server is registered, bounded in count and age.
/// - Lockout of an SRP ID after too many authenticated connects in a window.
/// - A server connection silent for longer than the configured time is closed (`tick`).
public struct RelayCore: Sendable {
    public enum Action: Equatable, Sendable {
        case send(ConnectionID, Frame)
        /// Close after the frames already queued for it are written.
        case close(ConnectionID)
        case event(RelayEvent)
    }

    private enum Role: Sendable {
        case device(PIN, srpID: String)
        case serverAwaitingRegistration(nonce: [UInt8])
        case server(srpID: String, epoch: UInt64)
    }

    private struct Stored: Sendable {
        var frame: DataFrame
        var storedAtMs: UInt64
    }

    public let configuration: RelayConfiguration
    private let keys: [String: SymmetricKey]
    private var roles: [ConnectionID: Role] = [:]
    private var sessions: [String: (conn: ConnectionID, epoch: UInt64)] = [:]
    private var highestEpoch: [String: UInt64] = [:]
    private var devices: [PIN: ConnectionID] = [:]
    private var srpOfPIN: [PIN: String] = [:]
    private var connectTimes: [String: [UInt64]] = [:]
    /// When each SRP connection last sent a frame.
    private var serverHeardMs: [ConnectionID: UInt64] = [:]
    private var toDevice: [PIN: [Stored]] = [:]
    private var toServer: [String: [Stored]] = [:]

    /// `keys`: the SRP key of every SRP ID this relay serves.
    public init(configuration: RelayConfiguration = .init(), keys: [String: SymmetricKey]) {
        self.configuration = configuration
        self.keys = keys
    }

    // MARK: Queries (for health and metrics)

    public var connectedDevices: Int { devices.count }
    public var registeredSessions: [String: UInt64] { sessions.mapValues(\.epoch) }
    public var storedForDevices: Int { toDevice.values.reduce(0) { $0 + $1.count } }
    public var storedForServers: Int { toServer.values.reduce(0) { $0 + $1.count } }
    /// The SRP ID and epoch a connection registered, if it is a server session (the
    /// audit log records which epoch each item to a device came from).
    public func serverSession(_ conn: ConnectionID) -> (srpID: String, epoch: UInt64)? {
        if case .server(let srpID, let epoch)? = roles[conn] { return (srpID, epoch) }
        return nil
    }

    // MARK: Events

    /// A server opened an SRP connection; `nonce` is fresh randomness from the shell.
    public mutating func serverConnected(_ conn: ConnectionID, nonce: [UInt8], nowMs: UInt64) -> [Action] {
        roles[conn] = .serverAwaitingRegistration(nonce: nonce)
        serverHeardMs[conn] = nowMs
        return [.send(conn, .challenge(nonce: nonce))]
    }

    public mutating func frameReceived(_ frame: Frame, on conn: ConnectionID, nowMs: UInt64) -> [Action] {
        if let heard = serverHeardMs.index(forKey: conn) { serverHeardMs.values[heard] = nowMs }  // one lookup per frame
        switch (roles[conn], frame) {
        case (_, .ping(let n)):
            return [.send(conn, .pong(n))]
        case (_, .pong):
            return []
        case (nil, .deviceHello(let pin, let srpID)), (.device?, .deviceHello(let pin, let srpID)):
            return deviceHello(conn, pin: pin, srpID: srpID)
        case (.serverAwaitingRegistration(let nonce)?, .register(let srpID, let epoch, let proof)):
            return register(conn, srpID: srpID, epoch: epoch, proof: proof, nonce: nonce, nowMs: nowMs)
        case (.device(let pin, let srpID)?, .data(let data)):
            guard data.pin == pin, data.flags.contains(.fromDevice) else {
                return refuse(conn, .protocolViolation, "data frame for another PIN or direction")
            }
            return deliverToServer(srpID, data, nowMs: nowMs)
        case (.server(let srpID, _)?, .data(let data)):
            guard !data.flags.contains(.fromDevice) else {
                return refuse(conn, .protocolViolation, "device-direction frame from a server")
            }
            if let owner = srpOfPIN[data.pin], owner != srpID {
                return [.send(conn, .error(code: .protocolViolation, message: "PIN \(data.pin) belongs to another SRP ID")),
                        .event(.refusedData(srpID: srpID, pin: data.pin))]
            }
            return deliverToDevice(data, nowMs: nowMs)
        case (.server?, .error), (.device?, .error):
            return []
        case (nil, _), (.serverAwaitingRegistration?, _), (.server?, _), (.device?, _):
            return refuse(conn, .protocolViolation, "unexpected \(frame.type) frame")
        }
    }

    public mutating func disconnected(_ conn: ConnectionID) -> [Action] {
        serverHeardMs[conn] = nil
        guard let role = roles.removeValue(forKey: conn) else { return [] }
        switch role {
        case .device(let pin, let srpID):
            guard devices[pin] == conn else { return [] }
            devices[pin] = nil
            var actions: [Action] = [.event(.deviceOffline(pin))]
            if let session = sessions[srpID] {
                actions.append(.send(session.conn, .presence(pin: pin, online: false)))
            }
            return actions
        case .server(let srpID, let epoch):
            guard sessions[srpID]?.conn == conn else { return [] }
            sessions[srpID] = nil
            return [.event(.unregistered(srpID: srpID, epoch: epoch))]
        case .serverAwaitingRegistration:
            return []
        }
    }

    /// Closes SRP connections silent for longer than the configured time, and discards
    /// stored items older than the configured age.
    public mutating func tick(nowMs: UInt64) -> [Action] {
        var actions: [Action] = []
        for (conn, heard) in serverHeardMs where nowMs >= heard &+ configuration.serverSilenceMs {
            let srpID = serverSession(conn)?.srpID
            actions += [.close(conn), .event(.serverSilent(srpID: srpID, silentMs: nowMs - heard))] + disconnected(conn)
        }
        let maxAge = configuration.storeMaxAgeMs
        var dropped = 0
        func prune(_ items: inout [Stored]) {
            let before = items.count
            items.removeAll { nowMs >= $0.storedAtMs &+ maxAge }
            dropped += before - items.count
        }
        for key in toDevice.keys { prune(&toDevice[key]!); if toDevice[key]!.isEmpty { toDevice[key] = nil } }
        for key in toServer.keys { prune(&toServer[key]!); if toServer[key]!.isEmpty { toServer[key] = nil } }
        if dropped > 0 { actions.append(.event(.storedExpired(count: dropped))) }
        return actions
    }

    // MARK: Handlers

    private mutating func deviceHello(_ conn: ConnectionID, pin: PIN, srpID: String) -> [Action] {
        var actions: [Action] = []
        if let old = devices[pin], old != conn {
            roles[old] = nil
            actions += [.send(old, .error(code: .displaced, message: "another connection opened for this PIN")), .close(old)]
        }
        roles[conn] = .device(pin, srpID: srpID)
        devices[pin] = conn
        srpOfPIN[pin] = srpID
        actions += [.send(conn, .deviceWelcome), .event(.deviceOnline(pin))]
        for stored in toDevice.removeValue(forKey: pin) ?? [] {
            actions.append(.send(conn, .data(stored.frame)))
        }
        if let session = sessions[srpID] {
            actions.append(.send(session.conn, .presence(pin: pin, online: true)))
        }
        return actions
    }

    private mutating func register(
        _ conn: ConnectionID, srpID: String, epoch: UInt64, proof: [UInt8], nonce: [UInt8], nowMs: UInt64
    ) -> [Action] {
        guard let key = keys[srpID] else {
            return refuse(conn, .unknownSRPID, "unknown SRP ID \(srpID)", event: .refused(srpID: srpID, epoch: epoch, reason: .unknownSRPID))
        }
        guard SRPProof.verify(proof, key: key, nonce: nonce, srpID: srpID, epoch: epoch) else {
            return refuse(conn, .authenticationFailed, "SRP authentication failed", event: .refused(srpID: srpID, epoch: epoch, reason: .authenticationFailed))
        }
        // A stale epoch is refused before it counts as a connect: a fenced node's attempts
        // must never lock the current primary out.
        if let highest = highestEpoch[srpID], epoch < highest {
            return refuse(conn, .epochRefused(reason: .stale, heldEpoch: highest),
                          event: .refused(srpID: srpID, epoch: epoch, reason: .staleEpoch))
        }
        let window = configuration.lockoutWindowMs
        var times = connectTimes[srpID, default: []].filter { nowMs < $0 &+ window }
        if times.count >= configuration.lockoutMaxConnects {
            connectTimes[srpID] = times
            let retryInMs = times[0] &+ window - nowMs
            return refuse(conn, .lockedOut, "SRP ID \(srpID) is locked out for \((retryInMs + 999) / 1000) s after too many connects",
                          event: .refused(srpID: srpID, epoch: epoch, reason: .lockedOut))
        }
        times.append(nowMs)
        connectTimes[srpID] = times
        var actions: [Action] = []
        // The old session leaves and the new one takes its place in this one step: the
        // registration names the epoch it displaced, so an audit never sees both live.
        var displacedEpoch: UInt64?
        if let current = sessions[srpID], current.conn != conn {
            displacedEpoch = current.epoch
            roles[current.conn] = nil
            serverHeardMs[current.conn] = nil
            actions += [.send(current.conn, .epochRefused(reason: .displaced, heldEpoch: epoch)),
                        .close(current.conn),
                        .event(.displaced(srpID: srpID, oldEpoch: current.epoch, newEpoch: epoch))]
        }
        roles[conn] = .server(srpID: srpID, epoch: epoch)
        sessions[srpID] = (conn, epoch)
        highestEpoch[srpID] = epoch
        actions += [.send(conn, .registered(srpID: srpID, epoch: epoch)),
                    .event(.registered(srpID: srpID, epoch: epoch, displacedEpoch: displacedEpoch))]
        for stored in toServer.removeValue(forKey: srpID) ?? [] {
            actions.append(.send(conn, .data(stored.frame)))
        }
        for (pin, deviceConn) in devices where srpOfPIN[pin] == srpID && roles[deviceConn] != nil {
            actions.append(.send(conn, .presence(pin: pin, online: true)))
        }
        return actions
    }

    private mutating func deliverToServer(_ srpID: String, _ data: DataFrame, nowMs: UInt64) -> [Action] {
        if let session = sessions[srpID] { return [.send(session.conn, .data(data))] }
        return store(&toServer[srpID, default: []], data, nowMs: nowMs, event: .storedForServer(srpID: srpID))
    }

    private mutating func deliverToDevice(_ data: DataFrame, nowMs: UInt64) -> [Action] {
        if let conn = devices[data.pin] { return [.send(conn, .data(data))] }
        return store(&toDevice[data.pin, default: []], data, nowMs: nowMs, event: .storedForDevice(data.pin))
    }

    private func store(_ queue: inout [Stored], _ data: DataFrame, nowMs: UInt64, event: RelayEvent) -> [Action] {
        queue.append(Stored(frame: data, storedAtMs: nowMs))
        var actions: [Action] = [.event(event)]
        if queue.count > configuration.storeMaxItems {
            let overflow = queue.count - configuration.storeMaxItems
            queue.removeFirst(overflow)
            actions.append(.event(.storeOverflow(dropped: overflow)))
        }
        return actions
    }

    private mutating func refuse(
        _ conn: ConnectionID, _ code: Frame.ErrorCode, _ message: String, event: RelayEvent? = nil
    ) -> [Action] {
        refuse(conn, .error(code: code, message: message), event: event)
    }

    /// Sends `answer`, closes, and forgets the connection.
    private mutating func refuse(_ conn: ConnectionID, _ answer: Frame, event: RelayEvent? = nil) -> [Action] {
        _ = disconnected(conn)
        roles[conn] = nil
        var actions: [Action] = [.send(conn, answer), .close(conn)]
        if let event { actions.append(.event(event)) }
        return actions
    }
}

/// What happened in the relay, for its log and metrics.
public enum RelayEvent: Equatable, Sendable {
    public enum RefusalReason: String, Sendable { case unknownSRPID, authenticationFailed, lockedOut, staleEpoch }
    /// `displacedEpoch`: the session this registration took over in the same step, if any.
    case registered(srpID: String, epoch: UInt64, displacedEpoch: UInt64?)
    case unregistered(srpID: String, epoch: UInt64)
    case displaced(srpID: String, oldEpoch: UInt64, newEpoch: UInt64)
    case refused(srpID: String, epoch: UInt64, reason: RefusalReason)
    case refusedData(srpID: String, pin: PIN)
    /// An SRP connection (registered for `srpID`, if it was) closed for silence.
    case serverSilent(srpID: String?, silentMs: UInt64)
    case deviceOnline(PIN)
    case deviceOffline(PIN)
    case storedForDevice(PIN)
    case storedForServer(srpID: String)
    case storeOverflow(dropped: Int)
    case storedExpired(count: Int)
}
