import Testing

@testable import BrambleCore

@Suite struct HealthScoreTests {
    @Test func theScoreCountsHealthyParametersFromTheTopAndStopsAtTheFirstFailure() {
        let all = HealthParameter.allCases.map { HealthCheck($0, healthy: true) }
        #expect(HealthCheck.score(all) == 12)
        var checks = all
        checks[3].healthy = false  // the Messaging Agent
        #expect(HealthCheck.score(checks) == 3, "parameters below a failed one do not count")
        checks[0].healthy = false  // the SRP link
        #expect(HealthCheck.score(checks) == 0)
    }

    @Test func aMissingParameterCountsAsUnhealthy() {
        #expect(HealthCheck.score([HealthCheck(.wirelessNetwork, healthy: true), HealthCheck(.messagingAgent, healthy: true)]) == 1)
    }

    @Test func positionsFollowBESsOrder() {
        #expect(HealthParameter.wirelessNetwork.position == 1)
        #expect(HealthParameter.dispatcher.position == 2)
        #expect(HealthParameter.configurationDatabase.position == 3)
        #expect(HealthParameter.messagingAgent.position == 4)
        #expect(HealthParameter.synchronization.position == 12)
    }
}
