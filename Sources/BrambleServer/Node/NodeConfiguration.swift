import BrambleNet
import NIOSSL
@preconcurrency import Crypto

/// Everything one node needs to run. Each field's default is the one the command line
/// shows; `bramble-server --help` documents them.
public struct NodeConfiguration: Sendable {
    public struct Database: Sendable {
        /// The database's hosts: one, or the members of a Patroni cluster (each with its
        /// Patroni REST URL, if known). Default 127.0.0.1:5432.
        public var hosts = [DatabaseHosts.Host(address: HostPort(host: "127.0.0.1", port: 5432))]
        /// The first host's port (tests and single-host setups set this).
        public var port: Int {
            get { hosts[0].address.port }
            set { hosts[0].address.port = newValue }
        }
        /// Role to connect as. Default "bramble".
        public var user = "bramble"
        /// Password, if the server asks for one (read from a file, never a flag).
        public var password: String? = nil
        /// Database name. Default "bramble".
        public var name = "bramble"
        /// The CA that PostgreSQL's and Patroni's REST certificates chain to: connections
        /// are TLS and verified (verify-full: the certificate must name the host dialled).
        /// nil: plaintext, only where an operator asked for it.
        public var tls: TLSFiles? = nil
        public init() {}
    }

    /// This node's name in logs, health checks and the event log. Default "node-a".
    public var node = "node-a"
    /// The SRP ID this node's pair registers with the relay. Default "bramble".
    public var srpID = "bramble"
    /// The HA pair this node belongs to (one lease, one SRP ID). Default: the SRP ID.
    public var pair = "bramble"
    /// The URL at which the other node and `bramble` reach this node's API; default
    /// http://HOST:PORT of `httpListen`.
    public var advertisedURL: String?
    public var apiURL: String { advertisedURL ?? "\(apiTLS == nil ? "http" : "https")://\(httpListen.host):\(httpListen.port)" }
    /// HTTPS for the API with this node's certificate (nil: plain HTTP, asked for by name).
    public var apiTLS: TLSConfiguration?
    /// The mail server the Messaging Agent watches; nil: none (the Agent stays idle).
    public var mail: MessagingAgent.Configuration?
    /// The IM server the Collaboration Service logs devices' users in to; nil: none.
    public var im: CollaborationService.Configuration?
    /// How long the lease lasts after each renewal (DESIGN default 1 s).
    public var leaseMs = 1_000
    /// How often the heartbeat runs: renew, observe, write the heartbeat (DESIGN: 200 ms).
    public var heartbeatIntervalMs = 200
    /// The SRP key for `srpID` (from the SRP key file).
    public var srpKey: SymmetricKey
    /// The relay's SRP listener. Default 127.0.0.1:3101.
    public var relay = HostPort(host: "127.0.0.1", port: 3101)
    /// TLS to the relay: its certificate verified against the private CA, this node's
    /// presented (nil: plain, which the operator asked for by name).
    public var relayTLS: NIOSSLContext?
    /// The SRP link counts as lost when the relay sends nothing for this long (the
    /// Router pings every third of it). Default 600 ms.
    public var relayTimeoutMs: UInt64 = 600
    /// Health, metrics, push and admin API. Default 127.0.0.1:8080 (BES's push port).
    public var httpListen = HostPort(host: "127.0.0.1", port: 8080)
    /// Bearer token the push and admin APIs require.
    public var adminToken: String
    public var database = Database()
    public var dispatcher = Dispatcher.Configuration()

    /// Seals the device master keys in the database (both nodes of a pair share it).
    public var keyEncryptionKey: SymmetricKey
    /// During a rotation, the KEK before it: what it sealed still opens, and is sealed
    /// again under `keyEncryptionKey` when the node starts.
    public var previousKeyEncryptionKey: SymmetricKey?

    public init(srpKey: SymmetricKey, adminToken: String, keyEncryptionKey: SymmetricKey) {
        self.srpKey = srpKey
        self.adminToken = adminToken
        self.keyEncryptionKey = keyEncryptionKey
    }
}
