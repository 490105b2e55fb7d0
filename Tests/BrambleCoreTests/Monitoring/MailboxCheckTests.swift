import Foundation
import Testing

@testable import BrambleCore

@Suite struct MailboxCheckTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)
    static let email = "demo1@example.test"

    func verdict(_ o: MailboxCheck.Observation, _ limits: MailboxCheck.Limits = .init()) -> NagiosResult {
        MailboxCheck.verdict(email: Self.email, o, now: Self.now, limits: limits)
    }
    func watch(checked: Double? = 12, mail: Double? = nil, error: String? = nil, errorAgo: Double? = nil) -> MailboxCheck.Watch {
        .init(checkedAt: checked.map { Self.now.addingTimeInterval(-$0) }, lastMailAt: mail.map { Self.now.addingTimeInterval(-$0) },
              lastError: error, errorAt: errorAgo.map { Self.now.addingTimeInterval(-$0) })
    }

    @Test func aMailboxCheckedRecentlyIsOK() {
        let result = verdict(.user(devices: 1, watch: watch(mail: 300)))
        #expect(result.state == .ok)
        #expect(result.summary == "demo1@example.test watched: last good check 12 s ago")
        #expect(result.details == ["last mail 5 min ago"])
        #expect(result.perfdata.map(\.rendered) == ["last_check_age=12s;120;300;0"])
    }

    @Test func aMailboxNotCheckedForLongIsAWarningThenCritical() {
        #expect(verdict(.user(devices: 1, watch: watch(checked: 120))).state == .ok, "at the threshold, not above it")
        let stale = verdict(.user(devices: 1, watch: watch(checked: 200)))
        #expect(stale.state == .warning)
        #expect(stale.summary == "demo1@example.test watched: last good check 3 min ago")
        #expect(verdict(.user(devices: 1, watch: watch(checked: 301))).state == .critical)
        #expect(verdict(.user(devices: 1, watch: watch(checked: 50)), .init(ageWarning: 30, ageCritical: 40)).state == .critical)
        // A node whose clock runs ahead of the database's does not make a negative age.
        #expect(verdict(.user(devices: 1, watch: watch(checked: -5))).perfdata.first?.rendered == "last_check_age=0s;120;300;0")
    }

    @Test func aFailingMailboxIsCriticalAndSaysWhy() {
        let result = verdict(.user(devices: 1, watch: watch(checked: 40, error: "IMAP LOGIN answered NO: [AUTHENTICATIONFAILED]", errorAgo: 10)))
        #expect(result.state == .critical)
        #expect(result.summary == "demo1@example.test failing: IMAP LOGIN answered NO: [AUTHENTICATIONFAILED]; last good check 40 s ago")
        #expect(result.details == ["last failed check 10 s ago"])
        let never = verdict(.user(devices: 1, watch: watch(checked: nil, error: "mail server unreachable: connection refused", errorAgo: 3)))
        #expect(never.state == .critical)
        #expect(never.summary == "demo1@example.test failing: mail server unreachable: connection refused; never checked successfully")
        #expect(never.perfdata.isEmpty)
    }

    @Test func aUserWithoutADeviceOrNotYetCheckedIsAWarning() {
        let noDevice = verdict(.user(devices: 0, watch: nil))
        #expect(noDevice.state == .warning)
        #expect(noDevice.summary.hasPrefix("demo1@example.test not watched: the user has no device"))
        let fresh = verdict(.user(devices: 1, watch: nil))
        #expect(fresh.state == .warning)
        #expect(fresh.summary.hasPrefix("demo1@example.test not checked yet"))
        // Its last device removed: the old watch stays but goes stale.
        let dropped = verdict(.user(devices: 0, watch: watch(checked: 20)))
        #expect(dropped.state == .warning)
        #expect(dropped.summary == "demo1@example.test no longer watched: the user has no device; last good check 20 s ago")
    }

    @Test func noSuchUserIsCriticalAndNoAnswerUnknown() {
        #expect(verdict(.noSuchUser).state == .critical)
        #expect(verdict(.noSuchUser).summary == "no user demo1@example.test")
        let unavailable = verdict(.unavailable("the admin token was refused (HTTP 401)"))
        #expect(unavailable.state == .unknown)
        #expect(unavailable.summary == "cannot read demo1@example.test from the admin API: the admin token was refused (HTTP 401)")
    }

    @Test func agesReadAsAPersonWouldSayThem() {
        #expect(MailboxCheck.ago(0) == "0 s ago")
        #expect(MailboxCheck.ago(119) == "119 s ago")
        #expect(MailboxCheck.ago(120) == "2 min ago")
        #expect(MailboxCheck.ago(7_200) == "2 h ago")
        #expect(MailboxCheck.ago(200_000) == "2 d ago")
        #expect(MailboxCheck.ago(-3) == "0 s ago")
    }
}
