/// The relay locks an SRP ID out after more than `maxConnects` registrations within a
/// window (BES: 5 a minute), by design. Failover drills run back to back would trip it and
/// measure the lockout, not the failover: before a drill, wait until the relay's recent
/// registrations leave room for the drill's own and one to spare.
///
/// Counted from the relay's audit log as the relay counts: accepted registrations only (a
/// refused one costs nothing there), and none from before its last start (a restarted
/// relay remembers no connects).
public struct RelayLockoutWindow: Equatable, Sendable {
    /// Registrations in the window before `nowMs`.
    public var recentRegistrations: Int
    /// The relay's limit (`--lockout-max-connects`, 5).
    public var maxConnects: Int

    /// `windowMs` is the relay's window with a margin for clock steps between the relay's
    /// stamps and this reader (61 s for the relay's 60 s).
    public init(records: [RelayAuditSummary.Record], nowMs: Int64, windowMs: Int64 = 61_000, maxConnects: Int = 5) {
        var recent = 0
        for record in records {
            switch record.event {
            case .start: recent = 0
            case .registered: if nowMs - record.atMs < windowMs { recent += 1 }
            case .unregistered, .displaced, .data, .auditDropped, .other: continue
            }
        }
        recentRegistrations = recent
        self.maxConnects = maxConnects
    }

    /// Room for `need` registrations and one to spare.
    public func hasRoom(for need: Int) -> Bool { recentRegistrations + need + 1 <= maxConnects }
}
