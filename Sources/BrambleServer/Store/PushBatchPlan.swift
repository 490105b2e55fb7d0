import BrambleCore
import Foundation

/// What one group commit does with each of its requests: which devices get an item, which
/// request repeats an Idempotency-Key (of this batch or of an earlier commit) and so gets
/// that push's outcome instead of new items. Plain data; `ConfigStore.commitPushes` runs
/// the statements.
struct PushBatchPlan {
    /// A key this batch claims, with the outcome it records for retries.
    struct Keyed {
        var key: String
        var fingerprint: String
        var pushID: UUID
        var devices: [String]
    }

    private let requests: [PushRequest]
    private var targets: [[PIN]]
    private var pushIDs: [UUID]
    /// Whether request i commits new items.
    private var fresh: [Bool]
    private(set) var outcomes: [PushOutcome]

    init(requests: [PushRequest], devicesOf: (PushRequest) -> [PIN]) {
        self.requests = requests
        targets = requests.map(devicesOf)
        pushIDs = requests.map { _ in UUID() }
        fresh = targets.map { !$0.isEmpty }
        outcomes = zip(targets, pushIDs).map { devices, id in
            devices.isEmpty ? .unknownRecipient : .accepted(pushID: id, devices: devices.map(\.description), replayed: false)
        }
        // A key repeated within the batch: the later requests follow the first.
        var first: [String: Int] = [:]
        for (i, r) in requests.enumerated() where fresh[i] {
            guard let key = r.idempotencyKey else { continue }
            if let j = first[key] {
                fresh[i] = false
                outcomes[i] = r.fingerprint == requests[j].fingerprint ? Self.replayed(outcomes[j]) : .keyReused
            } else {
                first[key] = i
            }
        }
    }

    /// Every key of the batch (to lock, and to look up commits made before).
    var keys: [String] { Array(Set(requests.compactMap(\.idempotencyKey))).sorted() }

    /// The keys of the requests that would commit new items.
    var keyed: [Keyed] {
        requests.indices.compactMap { i in
            guard fresh[i], let key = requests[i].idempotencyKey else { return nil }
            return Keyed(key: key, fingerprint: requests[i].fingerprint, pushID: pushIDs[i], devices: targets[i].map(\.description))
        }
    }

    /// Another transaction holds `key`: its requests wait for that one's outcome.
    mutating func inProgress(key: String) {
        for i in requests.indices where requests[i].idempotencyKey == key {
            fresh[i] = false
            outcomes[i] = .keyInProgress
        }
    }

    /// `key` was committed before: its requests get that commit's outcome (even one whose
    /// recipient has no active device now).
    mutating func replay(key: String, fingerprint: String, pushID: UUID, devices: [String]) {
        for i in requests.indices where requests[i].idempotencyKey == key {
            fresh[i] = false
            outcomes[i] = requests[i].fingerprint == fingerprint ? .accepted(pushID: pushID, devices: devices, replayed: true) : .keyReused
        }
    }

    /// New items per device.
    var itemCounts: [PIN: Int] {
        var counts: [PIN: Int] = [:]
        for i in requests.indices where fresh[i] { for pin in targets[i] { counts[pin, default: 0] += 1 } }
        return counts
    }

    /// The new items, numbered from each device's `first` sequence number on.
    func items(startingAt first: [PIN: UInt64], now: Date) -> [(item: OutboundItem, expiresIn: Int)] {
        var next = first
        var items: [(item: OutboundItem, expiresIn: Int)] = []
        for i in requests.indices where fresh[i] {
            let r = requests[i]
            for pin in targets[i] {
                let seq = next[pin]!
                next[pin] = seq + 1
                items.append((OutboundItem(pin: pin, seq: seq, pushID: pushIDs[i], subject: r.subject, body: r.body,
                                           expiresAt: now.addingTimeInterval(TimeInterval(r.expiresIn))), r.expiresIn))
            }
        }
        return items
    }

    private static func replayed(_ outcome: PushOutcome) -> PushOutcome {
        if case .accepted(let id, let devices, _) = outcome { return .accepted(pushID: id, devices: devices, replayed: true) }
        return outcome
    }
}
