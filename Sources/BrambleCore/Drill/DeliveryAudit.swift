/// The invariants of a push stream, judged only from evidence outside the nodes: the
/// ids the push API accepted (its responses), the pushes it answered as certainly not
/// accepted, and the items the devices logged as shown.
public struct DeliveryAudit: Equatable, Sendable {
    public struct Shown: Equatable, Sendable {
        public var pushID: String
        public var pin: String
        /// When the device showed it, in milliseconds on any clock shared by all logs.
        public var atMs: Double
        /// The item's subject (a stream gives each push its own).
        public var subject: String
        public init(pushID: String, pin: String, atMs: Double, subject: String = "") {
            self.pushID = pushID
            self.pin = pin
            self.atMs = atMs
            self.subject = subject
        }
    }

    /// Pushes the API accepted (answered 202 with their id).
    public var accepted: Int
    /// Accepted pushes shown at least once.
    public var shown: Int
    /// Accepted pushes never shown.
    public var lost: Int
    /// Extra showings: an item shown n times on a device counts n − 1.
    public var duplicates: Int
    /// The largest gap between consecutive shown items of the stream, less the push
    /// interval (0 when items arrived as often as they were sent).
    public var outageMs: Double
    /// Pushes answered as certainly not accepted that a device showed anyway: a refusal
    /// that was not true (the client would send the push again and see it twice).
    public var phantoms: Int

    /// `shown` may hold items from before the stream (earlier pushes to the same
    /// devices); only accepted ids count, and for phantoms only the subjects of pushes
    /// answered as not accepted (`notAccepted`).
    public init(accepted: Set<String>, shown items: [Shown], intervalMs: Double, notAccepted: Set<String> = []) {
        var counts: [String: Int] = [:]
        var times: [Double] = []
        for item in items where accepted.contains(item.pushID) {
            counts[item.pushID + "/" + item.pin, default: 0] += 1
            times.append(item.atMs)
        }
        let shownIDs = Set(items.lazy.filter { accepted.contains($0.pushID) }.map(\.pushID))
        self.accepted = accepted.count
        self.shown = shownIDs.count
        self.lost = accepted.count - shownIDs.count
        self.duplicates = counts.values.reduce(0) { $0 + $1 - 1 }
        times.sort()
        let gap = zip(times, times.dropFirst()).map { $1 - $0 }.max() ?? 0
        self.outageMs = max(0, gap - intervalMs)
        self.phantoms = notAccepted.isEmpty ? 0 : Set(items.lazy.map(\.subject).filter(notAccepted.contains)).count
    }

    public var passed: Bool { accepted > 0 && lost == 0 && duplicates == 0 && phantoms == 0 }
}
