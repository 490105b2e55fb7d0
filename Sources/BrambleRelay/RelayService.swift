import BrambleAPI
import BrambleCore
import BrambleNet
import Crypto
import Foundation
import Hummingbird
import HummingbirdTLS
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Prometheus
import ServiceLifecycle

/// Where the relay listens and how it behaves.
public struct RelayServiceConfiguration: Sendable {
    /// Device listener (BES wireless network side). Default 127.0.0.1:4101.
    public var deviceListen = HostPort(host: "127.0.0.1", port: 4101)
    /// SRP listener for BES nodes. Default 127.0.0.1:3101.
    public var srpListen = HostPort(host: "127.0.0.1", port: 3101)
    /// `/health` and `/metrics`. Default 127.0.0.1:4180.
    public var httpListen = HostPort(host: "127.0.0.1", port: 4180)
    /// The SRP key of every SRP ID this relay serves.
    public var keys: [String: SymmetricKey] = [:]
    /// TLS on the frame listeners (nil: plain, which the operator asked for by name).
    public var tls: TLS?
    public struct TLS: Sendable {
        /// Devices verify the relay; they prove themselves inside the link (`DeviceProof`).
        public var devices: NIOSSLContext
        /// Mutual: a node must present a certificate of the private CA.
        public var srp: NIOSSLContext
        /// `/health` and `/metrics` over HTTPS with the relay's certificate.
        public var http: TLSConfiguration
        public init(devices: NIOSSLContext, srp: NIOSSLContext, http: TLSConfiguration) {
            (self.devices, self.srp, self.http) = (devices, srp, http)
        }
    }
    /// Routing, store-and-forward and lockout behaviour.
    public var relay = RelayConfiguration()
    /// Where activation requests are mailed (`relay.activationDomains` says for whom);
    /// nil: none are.
    public var activationSMTP: ActivationSMTP?
    public struct ActivationSMTP: Sendable {
        public var smtp: HostPort
        /// TLS from the first byte, verifying the mail server (nil: plaintext, by name).
        public var tls: NIOSSLContext?
        public var sender: String
        public init(smtp: HostPort, tls: NIOSSLContext?, sender: String) { (self.smtp, self.tls, self.sender) = (smtp, tls, sender) }
    }
    /// JSON-lines audit log of registrations and of each item's sending epoch (drills).
    public var auditLog: String?
    /// systemd's readiness and watchdog socket (`Type=notify`, `WatchdogSec=`), from the
    /// environment; does nothing outside systemd.
    public var systemd = SystemdNotifier()

    public init() {}
}

/// The relay process: two frame listeners, a store-expiry tick and an HTTP endpoint.
/// Under systemd it says READY once all three listen, pings the watchdog from the tick
/// (only while the tick runs and the frame listeners are open and answering), and says
/// STOPPING when a graceful shutdown begins.
public struct RelayService: Service {
    let configuration: RelayServiceConfiguration
    let logger: Logger
    /// What `/metrics` emits.
    let registry: PrometheusCollectorRegistry

    public init(configuration: RelayServiceConfiguration, logger: Logger, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.configuration = configuration
        self.logger = logger
        self.registry = registry
    }

    public func run() async throws {
        let metrics = RelayMetrics(registry: registry)
        let hub = RelayHub(core: RelayCore(configuration: configuration.relay, keys: configuration.keys),
                           metrics: metrics, logger: logger, audit: try configuration.auditLog.map { try RelayAuditLog(path: $0, metrics: metrics, logger: self.logger) },
                           mailer: configuration.activationSMTP.map {
                               ActivationMailer(configuration: .init(smtp: $0.smtp, tls: $0.tls, sender: $0.sender, keys: configuration.keys))
                           })
        defer { hub.finishAudit() }
        let group = MultiThreadedEventLoopGroup.singleton
        let logger = self.logger
        let tls = configuration.tls
        func listen(_ at: HostPort, _ listener: RelayConnectionHandler.Listener) async throws -> any Channel {
            try await ServerBootstrap(group: group)
                // Devices come back all at once after a relay restart; the kernel caps it at somaxconn.
                .serverChannelOption(.backlog, value: 4096)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tls {
                            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: listener == .srp ? tls.srp : tls.devices))
                        }
                        try channel.pipeline.syncOperations.addFrameCodec()
                        try channel.pipeline.syncOperations.addHandler(
                            RelayConnectionHandler(hub: hub, listener: listener, logger: logger))
                    }
                }
                .bind(host: at.host, port: at.port).get()
        }
        let devices = try await listen(configuration.deviceListen, .device)
        let srp = try await listen(configuration.srpListen, .srp)
        logger.info("relay listening", metadata: [
            "listen.device": "\(configuration.deviceListen)", "listen.srp": "\(configuration.srpListen)",
            "listen.http": "\(configuration.httpListen)", "srp.ids": "\(configuration.keys.keys.sorted())",
            "tls": "\(configuration.tls == nil ? "off" : "on (SRP: mutual)")",
        ])

        let systemd = configuration.systemd
        let ready = "devices \(configuration.deviceListen), SRP \(configuration.srpListen), HTTP \(configuration.httpListen)"
        let app = Application(
            router: Self.router(hub: hub, metrics: metrics),
            server: try configuration.tls.map { try .tls(.bounded(), tlsConfiguration: $0.http) } ?? .bounded(),
            configuration: .init(address: .hostname(configuration.httpListen.host, port: configuration.httpListen.port),
                                 serverName: "bramble-relay"),
            onServerRunning: { _ in systemd.notify(.ready, .status("relaying: " + ready)) },
            logger: logger)

        try await withThrowingDiscardingTaskGroup { tasks in
            tasks.addTask { try await app.run() }  // stops with this service's graceful shutdown
            tasks.addTask {
                var watchdog = WatchdogPinger(notifier: systemd)
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    hub.tick()
                    // Alive: the tick got through the hub's lock, both frame listeners are
                    // open, and their event loop answers.
                    let loopAnswers = (try? await srp.eventLoop.submit { true }.get()) == true
                    let listening = loopAnswers && devices.isActive && srp.isActive
                    watchdog.pingIfDue { listening }
                }
            }
            try? await gracefulShutdown()
            systemd.notify(.stopping)
            try? await devices.close()
            try? await srp.close()
            tasks.cancelAll()
        }
    }

    static func router(hub: RelayHub, metrics: RelayMetrics) -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/health") { _, _ in
            let s = hub.snapshot
            return RelayHealth(connected_devices: s.connectedDevices, connections: s.connections,
                          unauthenticated_connections: s.unauthenticated, registered_device_keys: s.deviceKeys,
                          sessions: s.sessions, stored_for_devices: s.storedForDevices,
                          stored_for_servers: s.storedForServers, stored_bytes: s.storedBytes)
        }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(bytes: metrics.registry.emitToBuffer())))
        }
        return router
    }
}

extension RelayHealth: ResponseEncodable {}
