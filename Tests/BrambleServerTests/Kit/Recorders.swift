import BrambleCore
@testable import BrambleServer
import Logging
import MetricsTestKit
import BrambleNet
import NIOConcurrencyHelpers

/// What happened, in order, across followers, the recorder and the store.
final class CallLog: Sendable {
    private let box = NIOLockedValueBox<[String]>([])
    func append(_ entry: String) { box.withLockedValue { $0.append(entry) } }
    var entries: [String] { box.withLockedValue { $0 } }
}

/// A follower that only says when it was told to serve and to stop.
struct RecordingFollower: LeaseFollower {
    let followerName: String
    let log: CallLog
    func serve(epoch: UInt64) async { log.append("\(followerName).serve(\(epoch))") }
    func stopServing(epoch: UInt64) async { log.append("\(followerName).stop(\(epoch))") }
}

/// A node's health as the test sets it: the first `score` parameters healthy.
final class SettableHealth: HealthSource {
    private let box: NIOLockedValueBox<Int>
    init(score: Int = HealthParameter.allCases.count) { box = NIOLockedValueBox(score) }
    var score: Int {
        get { box.withLockedValue { $0 } }
        set { box.withLockedValue { $0 = newValue } }
    }
    func accountsCounted(_ accounts: HealthFacts.Accounts) {}
    func servingSince(_ ms: UInt64) {}
    func evaluate(role: HAStateMachine.Role, databaseError: String?) -> [HealthCheck] {
        let healthy = score
        return HealthParameter.allCases.enumerated().map { HealthCheck($1, healthy: $0 < healthy, detail: $0 < healthy ? "ok" : "set unhealthy by the test") }
    }
}

let quietLogger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

func testMetrics() -> (NodeMetrics, TestMetrics) {
    let factory = TestMetrics()
    return (NodeMetrics(MetricsCatalog(factory: factory)), factory)
}
