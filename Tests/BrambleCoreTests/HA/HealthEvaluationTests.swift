import Testing

@testable import BrambleCore

@Suite struct HealthEvaluationTests {
    func facts(serving: UInt64? = 1, link: HealthFacts.Link = .init(up: true), nowMs: UInt64 = 10_000) -> HealthFacts {
        var f = HealthFacts(nowMs: nowMs)
        f.servingEpoch = serving
        f.servingSinceMs = 1_000
        f.link = link
        f.dispatcher = .init(lastTickMs: nowMs - 500, servingEpoch: serving, deviceKeys: 4, queueDepth: 2)
        f.accounts = .init(users: 3, activeDevices: 4)
        return f
    }

    @Test func aHealthyPrimaryScoresEveryParameterInBESOrder() {
        let checks = HealthEvaluation.evaluate(facts())
        #expect(checks.map(\.parameter) == HealthParameter.allCases)
        #expect(HealthCheck.score(checks) == 12)
        #expect(checks[0].detail == "SRP link registered at epoch 1")
    }

    @Test func theMessagingParametersCountMailboxesReachedAndTellAFailingServerFromARefusingOne() {
        func check(_ a: HealthFacts.MessagingAgent, serving: UInt64? = 1) -> (agent: HealthCheck, server: HealthCheck) {
            var f = facts(serving: serving)
            f.messagingAgent = a
            let checks = HealthEvaluation.evaluate(f)
            return (checks.first { $0.parameter == .messagingAgent }!, checks.first { $0.parameter == .messagingServerReachable }!)
        }
        var a = HealthFacts.MessagingAgent()
        #expect(check(a).agent.healthy && check(a).agent.detail.hasPrefix("no mail server configured"), "no mail server: healthy")
        a.configured = true
        a.servingEpoch = 1
        (a.total, a.watched, a.failingCount, a.unreachableCount) = (4, 3, 1, 0)
        #expect(check(a).agent.healthy && check(a).agent.detail == "watching 3 of 4 mailboxes at epoch 1; 1 failing (see `bramble user list`)")
        #expect(check(a).server.healthy, "a mailbox the server refused is no sign the server is away")
        (a.watched, a.failingCount, a.unreachableCount) = (1, 3, 3)
        #expect(!check(a).agent.healthy && !check(a).server.healthy)
        #expect(check(a).server.detail == "mail server unreachable for 3 of 4 mailboxes; check the route to it")
        // A standby: its own probe of the mail server.
        var standby = HealthFacts.MessagingAgent()
        standby.configured = true
        standby.mailServerError = "connection refused"
        #expect(check(standby, serving: nil).agent.healthy && !check(standby, serving: nil).server.healthy)
        standby.mailServerError = nil
        #expect(check(standby, serving: nil).server.healthy)
    }

    @Test func aLinkTheRelayClosedGetsItsGraceButASilentRelayCountsAtOnce() {
        let closed = HealthFacts.Link(up: false, sinceMs: 9_000, cause: .relayAnswered, lastError: "relay closed the link")
        #expect(HealthEvaluation.evaluate(facts(link: closed))[0].healthy, "1 s of a 1.5 s grace")
        #expect(!HealthEvaluation.evaluate(facts(link: closed, nowMs: 11_000))[0].healthy, "2 s: past the grace")
        let silent = HealthFacts.Link(up: false, sinceMs: 9_900, cause: .relaySilent, lastError: "relay silent for 600 ms")
        let check = HealthEvaluation.evaluate(facts(link: silent))[0]
        #expect(!check.healthy && check.detail.contains("relay silent"))
    }

    @Test func aLockoutCountsAsHealthyButSaysWhatIsWrong() {
        let locked = HealthFacts.Link(up: false, sinceMs: 1_000, cause: .lockedOut, lastError: "locked out for 30 s")
        let check = HealthEvaluation.evaluate(facts(link: locked))[0]
        #expect(check.healthy && check.detail.contains("locked the SRP ID out"))
    }

    @Test func aStandbyIsMeasuredByItsRelayProbe() {
        var f = facts(serving: nil, link: .init())
        f.relayReachable = false
        f.relayDetail = "relay unreachable at 10.0.0.20:3101"
        #expect(HealthCheck.score(HealthEvaluation.evaluate(f)) == 0)
        f.relayReachable = true
        #expect(HealthCheck.score(HealthEvaluation.evaluate(f)) == 12)
    }

    @Test func aStuckDispatcherTheDatabaseAndTheAccountsEachCount() {
        var f = facts()
        f.dispatcher.lastTickMs = 5_000
        #expect(HealthCheck.score(HealthEvaluation.evaluate(f)) == 1, "no tick for 5 s")
        f = facts()
        f.databaseError = "no answer within 500 ms"
        let checks = HealthEvaluation.evaluate(f)
        #expect(HealthCheck.score(checks) == 2 && checks[2].detail.contains("no answer within 500 ms"))
        f = facts()
        f.accounts = .init(users: 4, activeDevices: 8)
        #expect(HealthCheck.score(HealthEvaluation.evaluate(f)) == 4, "4 of 8 device accounts started is below 75%")
        f.accounts = nil
        #expect(HealthCheck.score(HealthEvaluation.evaluate(f)) == 4, "not counted yet")
    }

    /// Issue 17's health truth: an unhealthy parameter's detail says what is wrong and
    /// what to do about it.
    @Test func everyUnhealthyDetailSaysWhatToDo() {
        var f = facts()
        f.dispatcher.lastTickMs = 1_000
        f.databaseError = "no answer within 500 ms"
        f.accounts = .init(users: 0, activeDevices: 8)
        f.link = .init(up: false, sinceMs: 1_000, cause: .relayAnswered, lastError: "connection refused")
        (f.messagingAgent.configured, f.messagingAgent.servingEpoch) = (true, 1)
        (f.messagingAgent.total, f.messagingAgent.watched, f.messagingAgent.unreachableCount) = (4, 1, 3)
        var unhealthy = HealthEvaluation.evaluate(f).filter { !$0.healthy }
        f.accounts = nil
        unhealthy += HealthEvaluation.evaluate(f).filter { !$0.healthy && $0.parameter == .userAccountsStarted }
        #expect(Set(unhealthy.map(\.parameter)) == [.wirelessNetwork, .dispatcher, .configurationDatabase, .messagingAgent,
                                                    .userAccountsStarted, .messagingServerReachable, .atLeastOneUser], "\(unhealthy)")
        for check in unhealthy {
            let remedy = ["check ", "see ", "restart ", "add "].contains { check.detail.contains($0) }
            #expect(remedy, "\(check.parameter.rawValue): \(check.detail)")
        }
    }
}
