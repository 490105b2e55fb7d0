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

    public init() {}
}
