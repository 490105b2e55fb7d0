import Testing

@testable import BrambleCore

@Suite struct RelayCheckTests {
    func facts(status: String = "ok", sessions: [String: UInt64] = ["bramble": 3], storedBytes: Int = 2_048) -> RelayCheck.Facts {
        .init(status: status, connectedDevices: 2, connections: 3, unauthenticatedConnections: 0, registeredDeviceKeys: 2,
              sessions: sessions, storedForDevices: 1, storedForServers: 0, storedBytes: storedBytes)
    }
    func verdict(_ f: RelayCheck.Facts, _ limits: RelayCheck.Limits = .init()) -> NagiosResult {
        RelayCheck.verdict(.answered(f), at: "10.0.0.10:4180", limits: limits)
    }

    @Test func aRelayWithARegisteredNodeIsOKAndReportsItsCounts() {
        let result = verdict(facts(), .init(srpIDs: ["bramble"]))
        #expect(result.state == .ok)
        #expect(result.summary == "bramble registered at epoch 3; 2 devices connected, 1 items stored")
        #expect(result.perfdata.map(\.rendered) == ["connected_devices=2;;;0", "connections=3;;;0", "unauthenticated_connections=0;;;0",
                                                    "registered_device_keys=2;;;0", "sessions=1;;;0", "stored_for_devices=1;;;0",
                                                    "stored_for_servers=0;;;0", "stored=2048B;;;0"])
    }

    @Test func noNodeRegisteredIsAWarningAndANamedSRPIDWithoutOneCritical() {
        let none = verdict(facts(sessions: [:]))
        #expect(none.state == .warning)
        #expect(none.summary == "no node registered; 2 devices connected, 1 items stored")
        let missing = verdict(facts(), .init(srpIDs: ["bramble", "other"]))
        #expect(missing.state == .critical)
        #expect(missing.summary.hasPrefix("no node registered for SRP ID other; bramble registered at epoch 3"))
        #expect(verdict(facts(sessions: [:]), .init(srpIDs: ["bramble"])).state == .critical)
    }

    @Test func aRelayThatSaysOtherThanOKIsCritical() {
        let result = verdict(facts(status: "degraded"))
        #expect(result.state == .critical)
        #expect(result.summary.hasPrefix("the relay says degraded; "))
    }

    @Test func theStoreIsJudgedAgainstTheOperatorsThresholds() {
        let limits = RelayCheck.Limits(storedWarningBytes: 1 << 20, storedCriticalBytes: 32 << 20)
        #expect(verdict(facts(storedBytes: 1 << 20), limits).state == .ok)
        let warning = verdict(facts(storedBytes: 3 << 19), limits)
        #expect(warning.state == .warning)
        #expect(warning.summary.hasPrefix("1.5 MiB stored, above 1 MiB; "))
        #expect(warning.perfdata.last?.rendered == "stored=1572864B;1048576;33554432;0")
        #expect(verdict(facts(storedBytes: 40 << 20), limits).state == .critical)
    }

    @Test func manySessionsAreCountedNotAllListed() {
        let sessions = Dictionary(uniqueKeysWithValues: (1...8).map { ("id\($0)", UInt64($0)) })
        #expect(verdict(facts(sessions: sessions)).summary.hasPrefix(
            "id1 registered at epoch 1, id2 registered at epoch 2, id3 registered at epoch 3, id4 registered at epoch 4, id5 registered at epoch 5 and 3 more; "))
    }

    @Test func aRelayThatDoesNotAnswerIsCriticalAndAnUnreadableAnswerUnknown() {
        let down = RelayCheck.verdict(.unreachable("connection refused"), at: "10.0.0.10:4180")
        #expect(down.state == .critical)
        #expect(down.summary == "10.0.0.10:4180 unreachable (connection refused)")
        #expect(RelayCheck.verdict(.unreadable("an answer larger than 1 MiB"), at: "10.0.0.10:4180").state == .unknown)
    }
}
