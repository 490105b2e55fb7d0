import Crypto

/// A connection as the relay's shell numbers them.
public typealias ConnectionID = UInt64

/// The relay's routing state as a pure state machine: events in, actions out, no I/O.
///
/// - Every connection is challenged. A server proves its SRP key (`SRPProof`); a device
///   proves its PIN with the relay key its BES registered for it (`DeviceProof`,
///   `Frame.deviceKeys`). A hello that arrives before its BES registered its keys (a
///   relay restart) is held until they arrive or the hello times out.
/// - One live server session per SRP ID; a registration with a higher (or equal, for a
///   reconnect) epoch displaces it, a lower one is refused, so a fenced old primary can
///   no longer reach any device. Both are told the epoch that fences them
///   (`Frame.epochRefused`), which the node's HA manager acts on.
/// - One PIN per device connection. Server → device by PIN (only a PIN its SRP ID
///   registered); device → server by the SRP ID the PIN is registered to.
/// - Store-and-forward per PIN while the device is offline and per SRP ID while no
///   server is registered, bounded in count, bytes and age.
/// - Bounded connections: in all, per source address, and unauthenticated; hellos time
///   out, silent servers and idle devices are closed (`tick`).
/// - Lockout of an SRP ID after too many authenticated connects in a window; a device's
///   coming online reaches its server at most once per `presenceMinIntervalMs`.
public struct RelayCore: Sendable {
    public enum Action: Equatable, Sendable {
        case send(ConnectionID, Frame)
        /// Close after the frames already queued for it are written.
        case close(ConnectionID)
        case event(RelayEvent)
    }

    public enum Listener: Sendable { case device, srp }

    private enum Role: Sendable {
        /// A device connection that was challenged and has not answered.
        case deviceChallenged(nonce: [UInt8])
        /// A device hello held until its SRP ID's keys arrive.
        case deviceHeld(PIN, srpID: String, nonce: [UInt8], proof: [UInt8])
        case device(PIN, srpID: String)
        /// A device activating over the air (`Frame.activation`): its request was handed
        /// to the mailer; `answeredBy` is the SRP ID whose server responded.
        case activating(PIN, answeredBy: String?)
        case serverAwaitingRegistration(nonce: [UInt8])
        case server(srpID: String, epoch: UInt64)

        var isAuthenticated: Bool {
            switch self {
            case .device, .server: true
            case .deviceChallenged, .deviceHeld, .activating, .serverAwaitingRegistration: false
            }
        }
    }

    private struct Peer: Sendable {
        var role: Role
        let source: String
        /// A connection to the SRP listener: counted against `maxServerConnections`, never
        /// against the device listener's caps, so devices (or a flood on their port)
        /// cannot keep the nodes from registering.
        let isServer: Bool
        let connectedMs: UInt64
        /// When the peer last sent a frame.
        var heardMs: UInt64
    }

    private struct Stored: Sendable {
        var frame: DataFrame
        var storedAtMs: UInt64
        var bytes: Int { frame.body.count + 32 }
    }

    private struct RelayKey: Sendable {
        let srpID: String
        let key: SymmetricKey
    }

    public let configuration: RelayConfiguration
    private let keys: [String: SymmetricKey]
    private var peers: [ConnectionID: Peer] = [:]
    private var perSource: [String: (all: Int, unauthenticated: Int)] = [:]
    private var unauthenticated = 0
    private var deviceConnections = 0
    private var serverConnections = 0
    private var sessions: [String: (conn: ConnectionID, epoch: UInt64)] = [:]
    private var highestEpoch: [String: UInt64] = [:]
    private var devices: [PIN: ConnectionID] = [:]
    private var connectTimes: [String: [UInt64]] = [:]
    /// The relay key of every registered PIN, with the SRP ID that registered it.
    private var relayKeys: [PIN: RelayKey] = [:]
    /// SRP IDs in the middle of a key sync: the PINs the sync named so far.
    private var syncing: [String: Set<PIN>] = [:]
    /// SRP IDs whose key set is complete: a hello for a PIN outside it is refused.
    private var synced: Set<String> = []
    private var held: [PIN: Set<ConnectionID>] = [:]
    /// The connection activating each PIN (one at a time: a new request displaces it).
    private var activating: [PIN: ConnectionID] = [:]
    /// When requests were mailed, by address and by source address (the last minute's).
    private var activationMails: [String: [UInt64]] = [:]
    private var activationSources: [String: [UInt64]] = [:]
    private var presenceSentMs: [PIN: UInt64] = [:]
    private var presenceDue: Set<PIN> = []
    private var toDevice: [PIN: [Stored]] = [:]
    private var toServer: [String: [Stored]] = [:]
    private var storedBytes = 0

    /// `keys`: the SRP key of every SRP ID this relay serves.
    public init(configuration: RelayConfiguration = .init(), keys: [String: SymmetricKey]) {
        self.configuration = configuration
        self.keys = keys
    }

    // MARK: Queries (for health and metrics)

    public var connectedDevices: Int { devices.count }
    public var activatingDevices: Int { activating.count }
    public var connections: Int { peers.count }
    /// Device connections not yet authenticated (the SRP listener has its own cap).
    public var unauthenticatedConnections: Int { unauthenticated }
    public var registeredDeviceKeys: Int { relayKeys.count }
    public var registeredSessions: [String: UInt64] { sessions.mapValues(\.epoch) }
    public var storedForDevices: Int { toDevice.values.reduce(0) { $0 + $1.count } }
    public var storedForServers: Int { toServer.values.reduce(0) { $0 + $1.count } }
    public var storedBytesTotal: Int { storedBytes }
    /// The SRP ID and epoch a connection registered, if it is a server session (the
    /// audit log records which epoch each item to a device came from).
    public func serverSession(_ conn: ConnectionID) -> (srpID: String, epoch: UInt64)? {
        if case .server(let srpID, let epoch)? = peers[conn]?.role { return (srpID, epoch) }
        return nil
    }

    // MARK: Events

    /// A server opened an SRP connection; `nonce` is fresh randomness from the shell.
    public mutating func serverConnected(_ conn: ConnectionID, source: String = "-", nonce: [UInt8], nowMs: UInt64) -> [Action] {
        connected(conn, listener: .srp, source: source, nonce: nonce, nowMs: nowMs)
    }

    /// A device opened a connection; `nonce` is fresh randomness from the shell.
    public mutating func deviceConnected(_ conn: ConnectionID, source: String = "-", nonce: [UInt8], nowMs: UInt64) -> [Action] {
        connected(conn, listener: .device, source: source, nonce: nonce, nowMs: nowMs)
    }

    public mutating func connected(_ conn: ConnectionID, listener: Listener, source: String, nonce: [UInt8], nowMs: UInt64) -> [Action] {
        let counts = perSource[source] ?? (0, 0)
        let refusal: RelayEvent.ConnectionLimit? =
            if listener == .srp { serverConnections >= configuration.maxServerConnections ? .servers : nil }
            else if deviceConnections >= configuration.maxConnections { .total }
            else if counts.all >= configuration.maxConnectionsPerSource { .perSource }
            else if unauthenticated >= configuration.maxUnauthenticated { .unauthenticated }
            else if counts.unauthenticated >= configuration.maxUnauthenticatedPerSource { .unauthenticatedPerSource }
            else { nil }
        if let refusal {
            return [.send(conn, .error(code: .overloaded, message: "the relay is at its connection limit; try again later")),
                    .close(conn), .event(.connectionRefused(refusal))]
        }
        if listener == .srp {
            peers[conn] = Peer(role: .serverAwaitingRegistration(nonce: nonce), source: source, isServer: true, connectedMs: nowMs, heardMs: nowMs)
            serverConnections += 1
        } else {
            peers[conn] = Peer(role: .deviceChallenged(nonce: nonce), source: source, isServer: false, connectedMs: nowMs, heardMs: nowMs)
            perSource[source] = (counts.all + 1, counts.unauthenticated + 1)
            unauthenticated += 1
            deviceConnections += 1
        }
        return [.send(conn, .challenge(nonce: nonce))]
    }

    public mutating func frameReceived(_ frame: Frame, on conn: ConnectionID, nowMs: UInt64) -> [Action] {
        // A connection the core does not hold (refused, closed) says nothing more.
        guard let index = peers.index(forKey: conn) else { return [] }
        peers.values[index].heardMs = nowMs  // one lookup per frame
        switch (peers.values[index].role, frame) {
        case (_, .ping(let n)):
            return [.send(conn, .pong(n))]
        case (_, .pong):
            return []
        case (.deviceChallenged(let nonce), .deviceHello(let pin, let srpID, let proof)):
            return deviceHello(conn, pin: pin, srpID: srpID, proof: proof, nonce: nonce, nowMs: nowMs)
        case (.serverAwaitingRegistration(let nonce), .register(let srpID, let epoch, let proof)):
            return register(conn, srpID: srpID, epoch: epoch, proof: proof, nonce: nonce, nowMs: nowMs)
        case (.device(let pin, let srpID), .data(let data)):
            guard data.pin == pin, data.flags.contains(.fromDevice) else {
                return refuse(conn, .protocolViolation, "data frame for another PIN or direction")
            }
            return deliverToServer(srpID, data, nowMs: nowMs)
        case (.server(let srpID, _), .data(let data)):
            guard !data.flags.contains(.fromDevice) else {
                return refuse(conn, .protocolViolation, "device-direction frame from a server")
            }
            if let owner = relayKeys[data.pin]?.srpID {
                if owner != srpID { return refusedData(conn, srpID: srpID, pin: data.pin, "PIN \(data.pin) belongs to another SRP ID") }
            } else if synced.contains(srpID) {
                return refusedData(conn, srpID: srpID, pin: data.pin, "PIN \(data.pin) is not registered with the relay")
            }
            return deliverToDevice(data, nowMs: nowMs)
        case (.server(let srpID, _), .deviceKeys(let update)):
            return deviceKeys(update, from: srpID, nowMs: nowMs)
        case (.deviceChallenged, .activation(let a)) where a.phase == .request:
            return activationRequested(conn, a, nowMs: nowMs)
        case (.activating(let pin, let answeredBy?), .activation(let a)) where a.phase == .confirm:
            guard a.pin == pin, a.srpID == answeredBy else {
                return refuse(conn, .protocolViolation, "an activation confirmation for another PIN or server")
            }
            // No session now (a failover under way): the device sends it again.
            guard let session = sessions[answeredBy] else { return [.event(.activationUndeliverable(pin))] }
            return [.send(session.conn, frame)]
        case (.server(let srpID, _), .activation(let a)) where a.phase == .response || a.phase == .result:
            guard a.srpID == srpID else { return refuse(conn, .protocolViolation, "an activation answer in another SRP ID's name") }
            guard let device = activating[a.pin], case .activating(_, let answeredBy)? = peers[device]?.role,
                  answeredBy == nil || answeredBy == srpID else { return [.event(.activationUndeliverable(a.pin))] }
            peers[device]?.role = .activating(a.pin, answeredBy: srpID)
            return [.send(device, frame)]
        case (.server, .error), (.device, .error):
            return []
        default:
            return refuse(conn, .protocolViolation, "unexpected \(frame.type) frame")
        }
    }

    public mutating func disconnected(_ conn: ConnectionID) -> [Action] {
        guard let peer = peers.removeValue(forKey: conn) else { return [] }
        if peer.isServer {
            serverConnections -= 1
        } else {
            let counts = perSource[peer.source] ?? (1, 0)
            let unauth = peer.role.isAuthenticated ? 0 : 1
            perSource[peer.source] = counts.all > 1 ? (counts.all - 1, counts.unauthenticated - unauth) : nil
            unauthenticated -= unauth
            deviceConnections -= 1
        }
        switch peer.role {
        case .device(let pin, let srpID):
            guard devices[pin] == conn else { return [] }
            devices[pin] = nil
            presenceDue.remove(pin)
            var actions: [Action] = [.event(.deviceOffline(pin))]
            if let session = sessions[srpID] {
                actions.append(.send(session.conn, .presence(pin: pin, online: false)))
            }
            return actions
        case .deviceHeld(let pin, _, _, _):
            held[pin]?.remove(conn)
            if held[pin]?.isEmpty == true { held[pin] = nil }
            return []
        case .activating(let pin, _):
            if activating[pin] == conn { activating[pin] = nil }
            return []
        case .server(let srpID, let epoch):
            guard sessions[srpID]?.conn == conn else { return [] }
            sessions[srpID] = nil
            syncing[srpID] = nil
            return [.event(.unregistered(srpID: srpID, epoch: epoch))]
        case .serverAwaitingRegistration, .deviceChallenged:
            return []
        }
    }

    /// Closes servers silent too long, devices idle too long and hellos unanswered too
    /// long; tells servers the presences whose interval has passed; discards stored items
    /// older than the configured age.
    public mutating func tick(nowMs: UInt64) -> [Action] {
        var actions: [Action] = []
        let c = configuration
        var expired: [(ConnectionID, RelayEvent)] = []
        for (conn, peer) in peers {
            switch peer.role {
            case .server(let srpID, _) where nowMs >= peer.heardMs &+ c.serverSilenceMs:
                expired.append((conn, .serverSilent(srpID: srpID, silentMs: nowMs - peer.heardMs)))
            case .serverAwaitingRegistration where nowMs >= peer.connectedMs &+ c.serverSilenceMs:
                // From the connect, not the last frame: pings do not keep an unregistered link open.
                expired.append((conn, .serverSilent(srpID: nil, silentMs: nowMs - peer.connectedMs)))
            case .deviceChallenged, .deviceHeld:
                if nowMs >= peer.connectedMs &+ c.helloTimeoutMs { expired.append((conn, .helloTimedOut)) }
            case .device(let pin, _) where nowMs >= peer.heardMs &+ c.deviceIdleMs:
                expired.append((conn, .deviceIdle(pin)))
            case .activating(let pin, _) where nowMs >= peer.connectedMs &+ c.activationTimeoutMs:
                expired.append((conn, .activationTimedOut(pin)))
            default:
                break
            }
        }
        for (conn, event) in expired { actions += [.close(conn), .event(event)] + disconnected(conn) }

        for pin in presenceDue where nowMs >= (presenceSentMs[pin] ?? 0) &+ c.presenceMinIntervalMs {
            presenceDue.remove(pin)
            if devices[pin] != nil, let srpID = relayKeys[pin]?.srpID { actions += announce(pin, srpID: srpID, nowMs: nowMs) }
        }
        presenceSentMs = presenceSentMs.filter { nowMs < $0.value &+ c.presenceMinIntervalMs }

        let maxAge = c.storeMaxAgeMs
        var dropped = 0
        var droppedBytes = 0
        func prune(_ items: inout [Stored]) {
            let before = items.count
            items.removeAll { old in
                guard nowMs >= old.storedAtMs &+ maxAge else { return false }
                droppedBytes += old.bytes
                return true
            }
            dropped += before - items.count
        }
        for key in toDevice.keys { prune(&toDevice[key]!); if toDevice[key]!.isEmpty { toDevice[key] = nil } }
        for key in toServer.keys { prune(&toServer[key]!); if toServer[key]!.isEmpty { toServer[key] = nil } }
        storedBytes -= droppedBytes
        if dropped > 0 { actions.append(.event(.storedExpired(count: dropped))) }
        return actions
    }

    // MARK: Devices

    private mutating func deviceHello(
        _ conn: ConnectionID, pin: PIN, srpID: String, proof: [UInt8], nonce: [UInt8], nowMs: UInt64
    ) -> [Action] {
        guard keys[srpID] != nil else {
            return refuse(conn, .unknownSRPID, "unknown SRP ID \(srpID)", event: .helloRefused(pin, reason: .unknownSRPID))
        }
        if let registered = relayKeys[pin] {
            return verify(conn, pin: pin, srpID: srpID, proof: proof, nonce: nonce, against: registered, nowMs: nowMs)
        }
        if synced.contains(srpID) {
            return refuse(conn, .unknownDevice, "PIN \(pin) is not registered with the relay", event: .helloRefused(pin, reason: .unknownDevice))
        }
        // The SRP ID's keys have not arrived since the relay started: hold the hello.
        peers[conn]?.role = .deviceHeld(pin, srpID: srpID, nonce: nonce, proof: proof)
        held[pin, default: []].insert(conn)
        return []
    }

    private mutating func verify(
        _ conn: ConnectionID, pin: PIN, srpID: String, proof: [UInt8], nonce: [UInt8], against registered: RelayKey, nowMs: UInt64
    ) -> [Action] {
        guard registered.srpID == srpID, DeviceProof.verify(proof, relayKey: registered.key, nonce: nonce, pin: pin, srpID: srpID) else {
            return refuse(conn, .authenticationFailed, "device authentication failed", event: .helloRefused(pin, reason: .authenticationFailed))
        }
        return admit(conn, pin: pin, srpID: srpID, nowMs: nowMs)
    }

    private mutating func admit(_ conn: ConnectionID, pin: PIN, srpID: String, nowMs: UInt64) -> [Action] {
        var actions: [Action] = []
        if let old = devices[pin], old != conn {
            _ = disconnected(old)
            actions += [.send(old, .error(code: .displaced, message: "another connection proved this PIN")), .close(old)]
        }
        setAuthenticated(conn, .device(pin, srpID: srpID))
        devices[pin] = conn
        actions += [.send(conn, .deviceWelcome), .event(.deviceOnline(pin))]
        for stored in toDevice.removeValue(forKey: pin) ?? [] {
            storedBytes -= stored.bytes
            actions.append(.send(conn, .data(stored.frame)))
        }
        return actions + announce(pin, srpID: srpID, nowMs: nowMs)
    }

    /// Tells the SRP ID's server that the device came online, unless it was told within
    /// the interval: then it is told when the interval has passed (`tick`).
    private mutating func announce(_ pin: PIN, srpID: String, nowMs: UInt64) -> [Action] {
        guard let session = sessions[srpID] else { return [] }
        if let sent = presenceSentMs[pin], nowMs < sent &+ configuration.presenceMinIntervalMs {
            presenceDue.insert(pin)
            return [.event(.presenceDeferred(pin))]
        }
        presenceSentMs[pin] = nowMs
        return [.send(session.conn, .presence(pin: pin, online: true))]
    }

    private mutating func deviceKeys(_ update: DeviceKeyUpdate, from srpID: String, nowMs: UInt64) -> [Action] {
        var actions: [Action] = []
        var foreign = 0
        if update.phase != .update, syncing[srpID] == nil { syncing[srpID] = [] }
        for entry in update.entries {
            if let owner = relayKeys[entry.pin]?.srpID, owner != srpID {
                foreign += 1
                continue
            }
            if entry.key.count != DeviceKeyUpdate.keyLength {
                syncing[srpID]?.remove(entry.pin)
                actions += removeDevice(entry.pin, message: "the device was removed")
                continue
            }
            let key = SymmetricKey(data: entry.key)
            if let old = relayKeys[entry.pin], old.key != key {
                // The device was provisioned again: its connection proved the old key.
                actions += removeDevice(entry.pin, message: "the device's key changed")
            }
            relayKeys[entry.pin] = RelayKey(srpID: srpID, key: key)
            syncing[srpID]?.insert(entry.pin)
            for conn in held.removeValue(forKey: entry.pin) ?? [] {
                guard case .deviceHeld(let pin, let helloSRPID, let nonce, let proof)? = peers[conn]?.role else { continue }
                actions += verify(conn, pin: pin, srpID: helloSRPID, proof: proof, nonce: nonce,
                                  against: relayKeys[entry.pin]!, nowMs: nowMs)
            }
        }
        if update.phase == .syncEnd, let named = syncing.removeValue(forKey: srpID) {
            for (pin, registered) in relayKeys where registered.srpID == srpID && !named.contains(pin) {
                actions += removeDevice(pin, message: "the device was removed")
            }
            synced.insert(srpID)
            // Hellos still held name PINs this SRP ID does not have.
            for (_, conns) in held {
                for conn in conns {
                    guard case .deviceHeld(let pin, let helloSRPID, _, _)? = peers[conn]?.role, helloSRPID == srpID else { continue }
                    actions += refuse(conn, .unknownDevice, "PIN \(pin) is not registered with the relay",
                                      event: .helloRefused(pin, reason: .unknownDevice))
                }
            }
            actions.append(.event(.deviceKeysSynced(srpID: srpID, count: named.count)))
        }
        if foreign > 0 { actions.append(.event(.deviceKeysRefused(srpID: srpID, count: foreign))) }
        return actions
    }

    /// Forgets a PIN's key, what is stored for it, and closes its connection.
    private mutating func removeDevice(_ pin: PIN, message: String) -> [Action] {
        relayKeys[pin] = nil
        for stored in toDevice.removeValue(forKey: pin) ?? [] { storedBytes -= stored.bytes }
        var actions: [Action] = []
        if let conn = devices[pin] { actions += refuse(conn, .unknownDevice, message) }
        for conn in held[pin] ?? [] { actions += refuse(conn, .unknownDevice, message) }
        return actions
    }

    // MARK: Activation

    /// A device asks to be activated: the shell mails its request (`activationRequested`
    /// event) if the address's domain is one the relay mails to.
    private mutating func activationRequested(_ conn: ConnectionID, _ a: ActivationFrame, nowMs: UInt64) -> [Action] {
        guard !configuration.activationDomains.isEmpty else {
            return refuse(conn, .activationRefused, "this relay does not offer activation over the air", event: .activationRefused(a.pin))
        }
        guard let domain = Activation.domain(of: a.email) else {
            return refuse(conn, .activationRefused, "not an e-mail address the relay mails to", event: .activationRefused(a.pin))
        }
        guard configuration.activationDomains.contains(domain) else {
            return refuse(conn, .activationRefused, "this relay does not carry activation requests for \(domain)", event: .activationRefused(a.pin))
        }
        // Bounded mail: so many requests an address, and a source address, may cause a minute.
        let window: UInt64 = 60_000
        let address = a.email.lowercased(), source = peers[conn]?.source ?? "-"
        let byAddress = (activationMails[address] ?? []).filter { nowMs < $0 &+ window }
        let bySource = (activationSources[source] ?? []).filter { nowMs < $0 &+ window }
        guard byAddress.count < configuration.activationMaxPerAddress, bySource.count < configuration.activationMaxPerSource else {
            return refuse(conn, .activationRefused, "too many activation requests; try again in a minute", event: .activationRefused(a.pin))
        }
        activationMails[address] = byAddress + [nowMs]
        activationSources[source] = bySource + [nowMs]
        if activationMails.count > 10_000 { activationMails = activationMails.filter { $0.value.contains { nowMs < $0 &+ window } } }
        if activationSources.count > 10_000 { activationSources = activationSources.filter { $0.value.contains { nowMs < $0 &+ window } } }
        var actions: [Action] = []
        if let old = activating[a.pin], old != conn {
            actions += refuse(old, .displaced, "another activation request for this PIN")
        }
        peers[conn]?.role = .activating(a.pin, answeredBy: nil)
        activating[a.pin] = conn
        return actions + [.event(.activationRequested(conn, a))]
    }

    /// The shell could not mail the request of `conn`: the device hears why and is closed.
    public mutating func activationMailFailed(_ conn: ConnectionID, reason: String) -> [Action] {
        guard case .activating? = peers[conn]?.role else { return [] }
        return refuse(conn, .activationRefused, "the activation request could not be mailed: \(reason)")
    }

    // MARK: Servers

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
            _ = disconnected(current.conn)
            actions += [.send(current.conn, .epochRefused(reason: .displaced, heldEpoch: epoch)),
                        .close(current.conn),
                        .event(.displaced(srpID: srpID, oldEpoch: current.epoch, newEpoch: epoch))]
        }
        setAuthenticated(conn, .server(srpID: srpID, epoch: epoch))
        sessions[srpID] = (conn, epoch)
        syncing[srpID] = nil  // the new session sends its own set
        highestEpoch[srpID] = epoch
        actions += [.send(conn, .registered(srpID: srpID, epoch: epoch)),
                    .event(.registered(srpID: srpID, epoch: epoch, displacedEpoch: displacedEpoch))]
        for stored in toServer.removeValue(forKey: srpID) ?? [] {
            storedBytes -= stored.bytes
            actions.append(.send(conn, .data(stored.frame)))
        }
        // A new session resends what is in flight to every device online now.
        for (pin, _) in devices where relayKeys[pin]?.srpID == srpID {
            presenceSentMs[pin] = nowMs
            presenceDue.remove(pin)
            actions.append(.send(conn, .presence(pin: pin, online: true)))
        }
        return actions
    }

    // MARK: Routing and storing

    private mutating func deliverToServer(_ srpID: String, _ data: DataFrame, nowMs: UInt64) -> [Action] {
        if let session = sessions[srpID] { return [.send(session.conn, .data(data))] }
        var queue = toServer.removeValue(forKey: srpID) ?? []
        defer { if !queue.isEmpty { toServer[srpID] = queue } }
        return store(&queue, data, nowMs: nowMs, event: .storedForServer(srpID: srpID))
    }

    private mutating func deliverToDevice(_ data: DataFrame, nowMs: UInt64) -> [Action] {
        if let conn = devices[data.pin] { return [.send(conn, .data(data))] }
        var queue = toDevice.removeValue(forKey: data.pin) ?? []
        defer { if !queue.isEmpty { toDevice[data.pin] = queue } }
        return store(&queue, data, nowMs: nowMs, event: .storedForDevice(data.pin))
    }

    private mutating func store(_ queue: inout [Stored], _ data: DataFrame, nowMs: UInt64, event: RelayEvent) -> [Action] {
        let item = Stored(frame: data, storedAtMs: nowMs)
        guard storedBytes + item.bytes <= configuration.storeMaxBytes else {
            return [.event(.storeOverflow(dropped: 1))]
        }
        queue.append(item)
        storedBytes += item.bytes
        var actions: [Action] = [.event(event)]
        if queue.count > configuration.storeMaxItems {
            let overflow = queue.count - configuration.storeMaxItems
            storedBytes -= queue.prefix(overflow).reduce(0) { $0 + $1.bytes }
            queue.removeFirst(overflow)
            actions.append(.event(.storeOverflow(dropped: overflow)))
        }
        return actions
    }

    // MARK: Bookkeeping

    private mutating func setAuthenticated(_ conn: ConnectionID, _ role: Role) {
        guard let peer = peers[conn] else { return }
        if !peer.role.isAuthenticated, !peer.isServer {
            unauthenticated -= 1
            perSource[peer.source]?.unauthenticated -= 1
        }
        peers[conn]?.role = role
    }

    private mutating func refusedData(_ conn: ConnectionID, srpID: String, pin: PIN, _ message: String) -> [Action] {
        [.send(conn, .error(code: .protocolViolation, message: message)), .event(.refusedData(srpID: srpID, pin: pin))]
    }

    private mutating func refuse(
        _ conn: ConnectionID, _ code: Frame.ErrorCode, _ message: String, event: RelayEvent? = nil
    ) -> [Action] {
        refuse(conn, .error(code: code, message: message), event: event)
    }

    /// Sends `answer`, closes, and forgets the connection.
    private mutating func refuse(_ conn: ConnectionID, _ answer: Frame, event: RelayEvent? = nil) -> [Action] {
        var actions = disconnected(conn)
        actions += [.send(conn, answer), .close(conn)]
        if let event { actions.append(.event(event)) }
        return actions
    }
}

/// What happened in the relay, for its log and metrics.
public enum RelayEvent: Equatable, Sendable {
    public enum RefusalReason: String, Sendable { case unknownSRPID, authenticationFailed, lockedOut, staleEpoch }
    public enum HelloRefusal: String, Sendable { case unknownSRPID, authenticationFailed, unknownDevice }
    /// Which cap a refused connection met.
    public enum ConnectionLimit: String, Sendable { case total, perSource, unauthenticated, unauthenticatedPerSource, servers }
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
    case connectionRefused(ConnectionLimit)
    case helloRefused(PIN, reason: HelloRefusal)
    /// A device connection that did not prove a PIN in time was closed.
    case helloTimedOut
    /// A device connection silent for longer than `deviceIdleMs` was closed.
    case deviceIdle(PIN)
    /// A device's coming online waits for the presence interval.
    case presenceDeferred(PIN)
    /// A key sync ended; `count` PINs are registered for the SRP ID.
    case deviceKeysSynced(srpID: String, count: Int)
    /// Keys for PINs another SRP ID holds were ignored.
    case deviceKeysRefused(srpID: String, count: Int)
    /// A device asked to be activated: the shell mails `frame.body` (etp.dat) to
    /// `frame.email` and reports a failure with `activationMailFailed(connection, …)`.
    case activationRequested(ConnectionID, ActivationFrame)
    /// An activation request for an address the relay does not mail to.
    case activationRefused(PIN)
    /// An activation answer or confirmation with nowhere to go (the device left, no
    /// server registered); the device's retry or timeout deals with it.
    case activationUndeliverable(PIN)
    case activationTimedOut(PIN)
}
