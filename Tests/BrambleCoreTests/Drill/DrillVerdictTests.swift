import BrambleCore
import Foundation
import Testing

@Suite struct DrillVerdictTests {
    /// A stream that passed: 400 accepted and shown, one new registration.
    func cleanStream(registrations: Int = 1) -> DrillVerdict.Stream {
        .init(accepted: 400, shown: 400, lost: 0, duplicates: 0, stale_deliveries: 0, max_serving_primaries: 1, outage_ms: 950,
              not_accepted: 0, registrations: registrations, shared_epochs: 0, passed: true)
    }

    func json(_ verdict: DrillVerdict) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(verdict.jsonLine.utf8)) as? [String: Any] ?? [:]
    }

    @Test func aCleanStreamWhoseFaultRegisteredANewPrimaryPasses() throws {
        let verdict = DrillVerdict(drill: .killPrimary, stream: cleanStream(), databaseLeaderBefore: "pg1", databaseLeaderAfter: "pg1")
        #expect(verdict.passed && verdict.faultLeftATrace && verdict.error == nil)
        let line = try json(verdict)
        #expect(line["drill"] as? String == "kill-primary" && line["passed"] as? Bool == true && line["outage_ms"] as? Int == 950)
        #expect(line["error"] == nil && line["phantoms"] == nil, "no error, and no phantoms field the stream did not count")
    }

    @Test func aKillPrimaryWithoutANewRegistrationLeftNoTraceAndFails() {
        let verdict = DrillVerdict(drill: .killPrimary, stream: cleanStream(registrations: 0), databaseLeaderBefore: "pg1", databaseLeaderAfter: "pg1")
        #expect(!verdict.passed && !verdict.faultLeftATrace)
        #expect(verdict.error == "the fault left no trace (registrations 0, database leader pg1 -> pg1)")
    }

    @Test func flapNeedsThreeRegistrations() {
        #expect(!DrillVerdict(drill: .flap, stream: cleanStream(registrations: 2), databaseLeaderBefore: "pg1", databaseLeaderAfter: "pg1").passed)
        #expect(DrillVerdict(drill: .flap, stream: cleanStream(registrations: 3), databaseLeaderBefore: "pg1", databaseLeaderAfter: "pg1").passed)
    }

    @Test func killDBPrimaryPassesOnlyWhenTheDatabaseLeaderMoved() {
        let stream = cleanStream(registrations: 0)
        #expect(DrillVerdict(drill: .killDBPrimary, stream: stream, databaseLeaderBefore: "pg1", databaseLeaderAfter: "pg2").passed)
        let stayed = DrillVerdict(drill: .killDBPrimary, stream: stream, databaseLeaderBefore: "pg1", databaseLeaderAfter: "pg1")
        #expect(!stayed.passed && stayed.error?.contains("database leader pg1 -> pg1") == true)
        #expect(DrillVerdict(drill: .killStandby, stream: stream, databaseLeaderBefore: "pg1", databaseLeaderAfter: "pg1").passed,
                "kill-standby causes no registration and moves no leader")
    }

    @Test func aPhantomFailsTheDrillAndIsPassedThrough() throws {
        var stream = cleanStream()
        stream.phantoms = 2
        let verdict = DrillVerdict(drill: .switchover, stream: stream, databaseLeaderBefore: "pg1", databaseLeaderAfter: "pg1")
        #expect(!verdict.passed)
        #expect(verdict.error == "2 phantoms: shown although the push was answered not accepted")
        #expect(try json(verdict)["phantoms"] as? Int == 2)
        stream.phantoms = 0
        let clean = DrillVerdict(drill: .switchover, stream: stream, databaseLeaderBefore: "pg1", databaseLeaderAfter: "pg1")
        let cleanLine = try json(clean)
        #expect(clean.passed && cleanLine["phantoms"] as? Int == 0)
    }

    @Test func aFailedStreamFailsTheDrillAndItsErrorComesFirst() {
        var stream = cleanStream(registrations: 0)
        stream.passed = false
        stream.lost = 3
        stream.error = "no node answered"
        let verdict = DrillVerdict(drill: .killPrimary, stream: stream, databaseLeaderBefore: "pg1", databaseLeaderAfter: "pg1")
        #expect(!verdict.passed)
        #expect(verdict.error == "no node answered; the fault left no trace (registrations 0, database leader pg1 -> pg1)")
    }

    @Test func aStreamThatAcceptedNothingProvesNothing() {
        var stream = cleanStream()
        stream.accepted = 0
        #expect(!DrillVerdict(drill: .killPrimary, stream: stream, databaseLeaderBefore: "", databaseLeaderAfter: "").passed)
    }

    @Test func theStreamsVerdictIsItsLastLine() {
        let output = Data("stream: 40/400 sent\n{\"accepted\": 7, \"passed\": true, \"phantoms\": 0, \"registrations\": 1, \"extra\": 5}\n\n".utf8)
        let stream = DrillVerdict.Stream.parse(output: output)
        #expect(stream.accepted == 7 && stream.passed == true && stream.phantoms == 0 && stream.registrations == 1 && stream.error == nil)
    }

    @Test func aStreamWithoutAVerdictFailsWithAnErrorAndNullCounts() throws {
        for output in ["", "stream: killed\n"] {
            let stream = DrillVerdict.Stream.parse(output: Data(output.utf8))
            #expect(stream.error?.hasPrefix("no verdict from the stream") == true)
            let verdict = DrillVerdict(drill: .killStandby, stream: stream, databaseLeaderBefore: "pg1", databaseLeaderAfter: "pg1")
            #expect(!verdict.passed)
            let line = try json(verdict)
            #expect(line["accepted"] as? Int == 0 && line["stale_deliveries"] is NSNull && line["outage_ms"] is NSNull,
                    "every field is present, null where the stream said nothing: \(line)")
            #expect((line["error"] as? String)?.hasPrefix("no verdict from the stream") == true)
        }
    }

    @Test func theVerdictLineHasEveryDocumentedFieldInOrder() throws {
        let text = DrillVerdict(drill: .killPrimary, stream: cleanStream(), databaseLeaderBefore: "pg1", databaseLeaderAfter: "pg1").jsonLine
        #expect(text.hasPrefix("{\"drill\":\"kill-primary\",\"accepted\":400,"), "\(text)")
        let fields = ["drill", "accepted", "shown", "lost", "duplicates", "stale_deliveries", "max_serving_primaries", "outage_ms",
                      "not_accepted", "registrations", "shared_epochs", "passed"]
        let positions = fields.map { text.range(of: "\"\($0)\":")?.lowerBound }
        #expect(positions.allSatisfy { $0 != nil }, "every field: \(text)")
        #expect(positions.compactMap { $0 } == positions.compactMap { $0 }.sorted(), "in chaos/README's order: \(text)")
    }
}

@Suite struct MailDrillVerdictTests {
    func stream(mailAccepted: Int = 60, mailLost: Int = 0, mailDuplicates: Int = 0, mailOutageMs: Int = 300) -> DrillVerdict.Stream {
        var s = DrillVerdict.Stream(accepted: 400, shown: 400, lost: 0, duplicates: 0, stale_deliveries: 0, max_serving_primaries: 1,
                                    outage_ms: 100, not_accepted: 0, registrations: 0, shared_epochs: 0, passed: true)
        (s.mail_accepted, s.mail_shown, s.mail_lost, s.mail_duplicates, s.mail_outage_ms) =
            (mailAccepted, mailAccepted - mailLost, mailLost, mailDuplicates, mailOutageMs)
        return s
    }

    @Test func everyDrillKeepsTheMailStreamWholeAndTheLineCarriesIt() throws {
        let clean = DrillVerdict(drill: .killStandby, stream: stream(), databaseLeaderBefore: "pg1", databaseLeaderAfter: "pg1")
        #expect(clean.passed)
        let line = try JSONSerialization.jsonObject(with: Data(clean.jsonLine.utf8)) as? [String: Any] ?? [:]
        #expect(line["mail_accepted"] as? Int == 60 && line["mail_lost"] as? Int == 0 && line["mail_outage_ms"] as? Int == 300)
        #expect(!DrillVerdict(drill: .killStandby, stream: stream(mailLost: 1), databaseLeaderBefore: "pg1", databaseLeaderAfter: "pg1").passed)
        #expect(!DrillVerdict(drill: .killStandby, stream: stream(mailDuplicates: 1), databaseLeaderBefore: "pg1", databaseLeaderAfter: "pg1").passed)
    }

    @Test func everyDrillKeepsTheInstantMessagesWholeAndTheLineAndTableCarryThem() throws {
        let clean = DrillVerdict.Stream(accepted: 400, shown: 400, lost: 0, duplicates: 0, stale_deliveries: 0, max_serving_primaries: 1,
                                        outage_ms: 950, not_accepted: 0, registrations: 1, shared_epochs: 0, passed: true)
        func json(_ v: DrillVerdict) throws -> [String: Any] { try JSONSerialization.jsonObject(with: Data(v.jsonLine.utf8)) as? [String: Any] ?? [:] }
        func verdict(sent: Int, lost: Int = 0, duplicates: Int = 0) -> DrillVerdict {
            var s = clean
            (s.im_sent, s.im_shown, s.im_lost, s.im_duplicates) = (sent, sent - lost, lost, duplicates)
            return DrillVerdict(drill: .killPrimary, stream: s, databaseLeaderBefore: "pg1", databaseLeaderAfter: "pg1")
        }
        #expect(verdict(sent: 24).passed)
        let line = try json(verdict(sent: 24))
        #expect(line["im_sent"] as? Int == 24 && line["im_shown"] as? Int == 24 && line["im_lost"] as? Int == 0 && line["im_duplicates"] as? Int == 0)
        #expect(!verdict(sent: 24, lost: 1).passed)
        #expect(!verdict(sent: 24, duplicates: 1).passed)
        let none = verdict(sent: 0)
        #expect(!none.passed && none.error?.contains("accepted no message") == true, "a stream that sent nothing proves nothing")
        #expect(try json(DrillVerdict(drill: .killPrimary, stream: clean, databaseLeaderBefore: "pg1", databaseLeaderAfter: "pg1"))["im_sent"] == nil,
                "no IM fields from a stream without an IM host")
        let table = DrillTable(jsonLines: Data(verdict(sent: 24, lost: 1).jsonLine.utf8)).text
        #expect(table.contains("i_lost") && table.contains("    24       1"), "\(table)")
    }

    @Test func restartMailNeedsNewDaemonsAndPartitionPrimaryMailNeedsMailHeldBack() {
        #expect(DrillVerdict(drill: .restartMail, stream: stream(), databaseLeaderBefore: "pg1", databaseLeaderAfter: "pg1",
                             mailPIDBefore: "100", mailPIDAfter: "200").passed)
        let same = DrillVerdict(drill: .restartMail, stream: stream(), databaseLeaderBefore: "pg1", databaseLeaderAfter: "pg1",
                                mailPIDBefore: "100", mailPIDAfter: "100")
        #expect(!same.passed && same.error?.contains("mail daemon 100 -> 100") == true)
        #expect(DrillVerdict(drill: .partitionPrimaryMail, stream: stream(mailOutageMs: 4_800), databaseLeaderBefore: "pg1",
                             databaseLeaderAfter: "pg1").passed)
        #expect(!DrillVerdict(drill: .partitionPrimaryMail, stream: stream(mailOutageMs: 200), databaseLeaderBefore: "pg1",
                              databaseLeaderAfter: "pg1").passed)
        let noMail = DrillVerdict(drill: .partitionPrimaryMail, stream: stream(mailAccepted: 0, mailOutageMs: 0), databaseLeaderBefore: "pg1",
                                  databaseLeaderAfter: "pg1")
        #expect(!noMail.passed && noMail.error?.contains("no mail was accepted") == true)
    }

    @Test func theTableShowsTheMailColumnsWhenTheDrillsCarriedMail() {
        let lines = """
            {"drill":"kill-primary","accepted":480,"lost":0,"duplicates":0,"outage_ms":948,"mail_accepted":60,"mail_lost":0,"mail_duplicates":0,"mail_outage_ms":1200,"passed":true}
            {"drill":"restart-mail","accepted":480,"lost":0,"duplicates":0,"outage_ms":100,"mail_accepted":52,"mail_lost":0,"mail_duplicates":0,"mail_outage_ms":2100,"passed":true}
            """
        let text = DrillTable(jsonLines: Data(lines.utf8)).text.split(separator: "\n").map(String.init)
        #expect(text[0].hasSuffix("mails  m_lost  m_dup  m_outage  passed"), "\(text[0])")
        #expect(text[2].hasPrefix("restart-mail ") && text[2].hasSuffix("52       0      0      2100  True"), "\(text[2])")
    }
}

@Suite struct DrillVerdictTableTests {
    @Test func theTableHasARowPerVerdictWithItsGoalMarked() {
        let lines = """
            {"drill":"kill-primary","accepted":480,"shown":480,"lost":0,"duplicates":0,"stale_deliveries":0,"max_serving_primaries":1,"outage_ms":948,"not_accepted":0,"registrations":1,"shared_epochs":0,"passed":true}
            {"drill":"switchover","accepted":480,"lost":0,"duplicates":0,"stale_deliveries":0,"max_serving_primaries":1,"outage_ms":420,"shared_epochs":0,"phantoms":0,"passed":true}

            bramble: error: no cluster is up
            {"drill":"kill-db-primary","accepted":408,"lost":0,"duplicates":0,"stale_deliveries":null,"max_serving_primaries":1,"outage_ms":2557,"shared_epochs":0,"passed":false}
            """
        let table = DrillTable(jsonLines: Data(lines.utf8))
        #expect(table.rows.map(\.drill) == ["kill-primary", "switchover", "kill-db-primary"])
        #expect(table.skippedLines == 1, "the line that is not a verdict")
        let text = table.text.split(separator: "\n").map(String.init)
        #expect(text.count == 4)
        #expect(text[0].hasPrefix("drill") && text[0].hasSuffix("goal  passed"))
        #expect(text[1].hasPrefix("kill-primary ") && text[1].contains(" 948") && text[1].hasSuffix("≤1500  True met"))
        #expect(text[2].hasSuffix("≤300  True MISSED"), "420 ms is above the switchover's 300 ms goal")
        #expect(text[3].hasSuffix("-  False"), "no goal for kill-db-primary: \(text[3])")
        // drill 26, then right-aligned columns of 9, 6, 5, 7, 6, 8, 9, 11 and 8: passed starts at 95.
        #expect(text.allSatisfy { $0.dropFirst(95).hasPrefix("  ") && !$0.dropFirst(95).hasPrefix("   ") }, "the columns line up")
    }

    @Test func goalsAreIssue5s() {
        #expect(Drill.killPrimary.outageGoalMs == 1500 && Drill.switchover.outageGoalMs == 300 && Drill.killStandby.outageGoalMs == 100)
        #expect(Drill.restartRelay.outageGoalMs == nil)
        #expect(DrillTable.goalMet(.init(drill: "kill-standby", outage_ms: 100, passed: true)) == true)
        #expect(DrillTable.goalMet(.init(drill: "kill-standby", outage_ms: 101, passed: true)) == false)
        #expect(DrillTable.goalMet(.init(drill: "kill-standby", outage_ms: nil, passed: false)) == nil)
    }
}

@Suite struct DrillVerdictRelayWindowTests {
    typealias R = RelayAuditSummary.Record

    @Test func registrationsOfTheLastMinuteCountAgainstTheLockout() {
        let now: Int64 = 1_000_000
        let records: [R] = [
            .init(atMs: now - 120_000, event: .registered(srpID: "s", epoch: 1)),  // long ago
            .init(atMs: now - 50_000, event: .registered(srpID: "s", epoch: 2)),
            .init(atMs: now - 40_000, event: .displaced(srpID: "s", epoch: 1)),
            .init(atMs: now - 30_000, event: .registered(srpID: "s", epoch: 3)),
            .init(atMs: now - 20_000, event: .other),  // a refusal costs nothing at the relay
        ]
        let window = RelayLockoutWindow(records: records, nowMs: now)
        #expect(window.recentRegistrations == 2)
        #expect(window.hasRoom(for: 1) && window.hasRoom(for: 2))
        #expect(!window.hasRoom(for: 3), "2 + 3 + 1 spare is over 5")
    }

    @Test func aRelayRestartClearsTheWindow() {
        let now: Int64 = 1_000_000
        let records: [R] = (1...5).map { .init(atMs: now - 10_000 + Int64($0), event: .registered(srpID: "s", epoch: UInt64($0))) }
            + [.init(atMs: now - 5_000, event: .start)]
        #expect(RelayLockoutWindow(records: records, nowMs: now).recentRegistrations == 0)
        #expect(!RelayLockoutWindow(records: Array(records.dropLast()), nowMs: now).hasRoom(for: 0))
    }
}

@Suite struct DeviceMailDrillVerdictTests {
    /// A clean stream with the mail stream and, unless nil, the devices' mail.
    func stream(acked: Int? = 12, lost: Int = 0, duplicates: Int = 0) -> DrillVerdict.Stream {
        var s = DrillVerdict.Stream(accepted: 400, shown: 400, lost: 0, duplicates: 0, stale_deliveries: 0, max_serving_primaries: 1,
                                    outage_ms: 100, not_accepted: 0, registrations: 1, shared_epochs: 0, passed: true)
        (s.mail_accepted, s.mail_shown, s.mail_lost, s.mail_duplicates, s.mail_outage_ms) = (48, 48, 0, 0, 300)
        if let acked { (s.sent_acked, s.sent_delivered, s.sent_lost, s.sent_duplicates) = (acked, acked - lost, lost, duplicates) }
        return s
    }

    func verdict(_ stream: DrillVerdict.Stream) -> DrillVerdict {
        DrillVerdict(drill: .killPrimary, stream: stream, databaseLeaderBefore: "pg1", databaseLeaderAfter: "pg1")
    }

    @Test func everyAcknowledgedDeviceMailInBothFoldersOncePassesAndTheLineCarriesTheCounts() throws {
        let clean = verdict(stream())
        #expect(clean.passed && clean.error == nil)
        let text = clean.jsonLine
        let line = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] ?? [:]
        #expect(line["sent_acked"] as? Int == 12 && line["sent_delivered"] as? Int == 12 && line["sent_lost"] as? Int == 0
                && line["sent_duplicates"] as? Int == 0)
        let order = ["mail_outage_ms", "sent_acked", "sent_delivered", "sent_lost", "sent_duplicates", "passed"]
            .map { text.range(of: "\"\($0)\":")?.lowerBound }
        #expect(order.allSatisfy { $0 != nil } && order.compactMap { $0 } == order.compactMap { $0 }.sorted(), "in chaos/README's order: \(text)")
    }

    @Test func aLostOrDuplicatedDeviceMailFailsTheDrill() {
        #expect(!verdict(stream(lost: 1)).passed)
        #expect(!verdict(stream(duplicates: 1)).passed)
    }

    @Test func noDeviceMailAcknowledgedWithAMailHostFails() {
        let none = verdict(stream(acked: 0))
        #expect(!none.passed && none.error?.contains("no device's send was acknowledged") == true)
    }

    @Test func aStreamWithoutTheFieldsIsJudgedAsBefore() throws {
        let before = verdict(stream(acked: nil))
        #expect(before.passed)
        let line = try JSONSerialization.jsonObject(with: Data(before.jsonLine.utf8)) as? [String: Any] ?? [:]
        #expect(line["sent_acked"] == nil && line["sent_lost"] == nil, "no sent_* fields the stream did not count: \(line)")
    }

    @Test func theTableShowsTheDeviceMailColumnsWhenTheDrillsCarriedThem() {
        let lines = """
            {"drill":"kill-primary","accepted":480,"lost":0,"duplicates":0,"outage_ms":948,"mail_accepted":60,"mail_lost":0,"mail_duplicates":0,"mail_outage_ms":1200,"sent_acked":12,"sent_delivered":12,"sent_lost":0,"sent_duplicates":0,"passed":true}
            {"drill":"kill-standby","accepted":480,"lost":0,"duplicates":0,"outage_ms":30,"mail_accepted":60,"mail_lost":0,"mail_duplicates":0,"mail_outage_ms":40,"passed":true}
            """
        let text = DrillTable(jsonLines: Data(lines.utf8)).text.split(separator: "\n").map(String.init)
        #expect(text[0].hasSuffix("m_outage  sent  s_deliv  s_lost  s_dup  passed"), "\(text[0])")
        #expect(text[1].hasSuffix("1200    12       12       0      0  True met"), "\(text[1])")
        #expect(text[2].hasSuffix("40     -        -       -      -  True met"), "\(text[2])")
    }
}
