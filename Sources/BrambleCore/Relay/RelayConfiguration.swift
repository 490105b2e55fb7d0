/// Behaviour of the relay (the BlackBerry Infrastructure stand-in); defaults as BES's.
public struct RelayConfiguration: Sendable {
    /// An SRP ID is locked out when it connects more than this many times …
    public var lockoutMaxConnects: Int = 5
    /// … within this window (milliseconds). It clears once old connects leave the window.
    public var lockoutWindowMs: UInt64 = 60_000
    /// Items kept per PIN while its device is offline, and per SRP ID while no server is
    /// registered; the oldest is dropped beyond this (end-to-end acks cover the loss).
    public var storeMaxItems: Int = 5
    /// Stored items older than this (milliseconds) are discarded. BES: 7 days.
    public var storeMaxAgeMs: UInt64 = 7 * 24 * 3_600_000

    /// An SRP connection the relay has heard nothing from in this long (milliseconds) is
    /// closed, and its registration with it: a node pings several times a second, so
    /// silence means the node or the path to it is gone, and the session is half-open.
    public var serverSilenceMs: UInt64 = 3_000

    /// Bytes of stored items in all, across every PIN and SRP ID; an item that would pass
    /// it is dropped (its sender resends: end-to-end acknowledgements cover it).
    public var storeMaxBytes: Int = 64 << 20

    /// A device connection must prove its PIN within this long (milliseconds) of
    /// connecting, or it is closed; so must a hello held until the device's BES registers
    /// its keys after a relay restart.
    public var helloTimeoutMs: UInt64 = 10_000
    /// A device connection the relay has heard nothing from in this long is closed;
    /// devices ping every minute.
    public var deviceIdleMs: UInt64 = 180_000
    /// Device connections in all, per source address, and of them not yet authenticated,
    /// in all and per source address; a connection past a cap is told `overloaded` and
    /// closed at once. Connections to the SRP listener have their own cap,
    /// `maxServerConnections`, so nothing on the device side can keep nodes out.
    public var maxConnections: Int = 20_000
    public var maxServerConnections: Int = 64
    public var maxConnectionsPerSource: Int = 2_000
    public var maxUnauthenticated: Int = 2_000
    public var maxUnauthenticatedPerSource: Int = 100
    /// A device's coming online is told to its server at most this often (milliseconds):
    /// each one makes the server resend what is in flight, so a device reconnecting in a
    /// loop cannot make it resend in a loop. A later one is told when the interval passes.
    public var presenceMinIntervalMs: UInt64 = 2_000
    /// The mail domains whose users may activate over the air through this relay (lower
    /// case): their requests are mailed to the address (BES: the BlackBerry
    /// Infrastructure). Empty: activation over the air is not offered.
    public var activationDomains: Set<String> = []
    /// How long an activating device's connection may stay open: the request's mail, the
    /// server's answer, the key confirmation.
    public var activationTimeoutMs: UInt64 = 120_000
    /// Activation requests mailed to one address, and taken from one source address, in a
    /// minute: the relay is no open mail cannon. A device's user retries by hand.
    public var activationMaxPerAddress = 10
    public var activationMaxPerSource = 30

    public init() {}
}
