import BrambleCore
@testable import BrambleDevice
import Foundation
import Testing

/// A device's frame numbers (requests and acknowledgements) never go back, across
/// restarts too: the server takes a number at or below one it has seen for a replay.
@Suite struct DeviceOutboxTests {
    @Test func numbersKeepGoingUpAcrossARestart() throws {
        let dir = NSTemporaryDirectory() + "bramble-outbox-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let state = dir + "/device.state"
        var seen: [UInt64] = []
        do {
            let outbox = try DeviceOutbox(statePath: state)
            seen.append(try outbox.add(.more(messageID: "<a@x>")))
            for _ in 0..<5 { seen.append(try outbox.nextFrameNumber()) }
        }
        // The process dies without saving its last acknowledgement numbers; the next one
        // starts past everything reserved.
        let again = try DeviceOutbox(statePath: state)
        seen.append(try again.nextFrameNumber())
        seen.append(try again.add(.more(messageID: "<b@x>")))
        #expect(seen == seen.sorted() && Set(seen).count == seen.count, "\(seen)")
        #expect(again.pending.map(\.request.messageID) == ["<a@x>", "<b@x>"])
    }

    @Test func aDeviceWithoutStateNumbersFromTheClock() throws {
        let first = try DeviceOutbox(statePath: nil).nextFrameNumber()
        Thread.sleep(forTimeInterval: 0.002)
        let restarted = try DeviceOutbox(statePath: nil).nextFrameNumber()
        #expect(restarted > first)
        #expect(first <= UInt64(Int64.max), "within the server's signed request numbers")
    }

    func withStateDirectory(_ body: (String) throws -> Void) throws {
        let dir = NSTemporaryDirectory() + "bramble-outbox-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try body(dir + "/device.state")
    }

    /// An outbox saved before sends existed (`{ref, message_id}` entries) loads as More
    /// requests; a send, reply and forward are kept whole across a restart.
    @Test func anOldOutboxLoadsAsMoreAndEveryKindSurvivesARestart() throws {
        try withStateDirectory { state in
            try Data(#"{"next_ref":10,"pending":[{"ref":7,"message_id":"<old@x>"}]}"#.utf8).write(to: URL(fileURLWithPath: state + ".outbox"))
            let outbox = try DeviceOutbox(statePath: state)
            #expect(outbox.pending == [.init(ref: 7, request: .more(messageID: "<old@x>"))])
            let kinds: [DeviceRequest] = [
                .send(to: ["demo2@example.test"], cc: ["demo3@example.test"], subject: "Grüße", body: "line 1\r\nline 2"),
                .reply(messageID: "<m@x>", body: "yes", all: true),
                .forward(messageID: "<m@x>", to: ["demo4@example.test"], cc: [], body: "fyi"),
            ]
            for k in kinds { try outbox.add(k) }
            let again = try DeviceOutbox(statePath: state)
            #expect(again.pending.map(\.request) == [.more(messageID: "<old@x>")] + kinds)
            let dropped = try again.acknowledge(again.pending.map(\.ref))
            #expect(dropped.count == 4)
            #expect(try again.acknowledge(dropped.map(\.ref)).isEmpty, "an acknowledgement repeated drops nothing")
        }
    }

    /// The spool takes a 100 KB send (a 64 KB text, escaped) and sets aside what the node
    /// would refuse: a bad verb, a send without recipients, an address with a line break,
    /// a reply with --to, a body over 64 KB.
    @Test func theSpoolTakesLargeSendsAndSetsAsideWhatTheNodeWouldRefuse() throws {
        try withStateDirectory { state in
            let outbox = try DeviceOutbox(statePath: state)
            let body = String(repeating: "\u{1}é\"\n", count: 12 * 1024)  // 60 KB of UTF-8, 147 KB of JSON
            let good = DeviceControlRequest(verb: "send", to: ["demo2@example.test"], subject: "big", body: body)
            let file = try good.submit(statePath: state)
            #expect((try FileManager.default.attributesOfItem(atPath: file)[.size] as? Int ?? 0) > 100_000)
            let bad: [DeviceControlRequest] = [
                .init(verb: "shred", messageID: "<m@x>"),
                .init(verb: "send", subject: "nobody", body: "x"),
                .init(verb: "send", to: ["demo2@example.test\r\nRCPT TO:<x@y>"], body: "x"),
                .init(verb: "reply", messageID: "<m@x>", to: ["a@b"], body: "x"),
                .init(verb: "send", to: ["a@b"], body: String(repeating: "x", count: DeviceRequest.maxBodyLength + 1)),
            ]
            for r in bad {
                #expect(throws: DeviceControlRequest.Invalid.self, "\(r.verb)") { try r.request() }
                _ = try r.submit(statePath: state)
            }
            let refs = try outbox.takeSpooled()
            #expect(refs.count == 1)
            let taken = outbox.pending.map(\.request) == [.send(to: ["demo2@example.test"], cc: [], subject: "big", body: body)]
            #expect(taken, "the 60 KB send is in the outbox, whole")
            let left = try FileManager.default.contentsOfDirectory(atPath: DeviceOutbox.spoolDirectory(statePath: state))
            #expect(left.filter { $0.hasSuffix(".rejected") }.count == bad.count)
        }
    }

    /// The shown set rebuilt from the log takes a "sent" line's `seq` (its `ref` is the
    /// request's number) and skips "request" lines, so no request number passes for a
    /// delivered item and no delivered item is shown twice.
    @Test func theShownSetRebuildsFromSeqAndSkipsRequestLines() throws {
        try withStateDirectory { state in
            let log = state + ".log"
            do {
                let store = try ShownStore(statePath: nil, logPath: log, printToStdout: false)
                let now = Date()
                try store.show(.mail(MailItem(messageID: "<m@x>", from: "a@b", to: [], cc: [], subject: "s", date: "", body: "",
                                              moreAvailable: false, attachments: []), pin: "2A00F00D", ref: 1, at: now))
                try store.show(.request(.send(to: ["a@b"], cc: [], subject: "", body: ""), pin: "2A00F00D", ref: 1_800_000_000_000, at: now))
                try store.show(.sent(SentOutcome(requestRef: 1_800_000_000_000, messageID: "<bramble.2A00F00D.1800000000000@b>", state: .sent),
                                     pin: "2A00F00D", seq: 2, at: now))
                #expect(store.shown.contains(1) && store.shown.contains(2) && !store.shown.contains(1_800_000_000_000))
            }
            let rebuilt = try ShownStore(statePath: nil, logPath: log, printToStdout: false)
            #expect(rebuilt.contains(1) && rebuilt.contains(2))
            #expect(!rebuilt.contains(1_800_000_000_000), "a request line shows no delivered item")
            let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
            #expect(lines[1].contains(#""service":"request""#) && lines[1].contains(#""verb":"send""#))
            #expect(lines[2].contains(#""ref":1800000000000"#) && lines[2].contains(#""seq":2"#) && lines[2].contains(#""state":"sent""#))
        }
    }

    /// The reconciliation verbs go into the spool as the node's requests; a file without a
    /// folder, or a read without its mail, is refused on the device.
    @Test func theReconciliationVerbsSpoolAndBadOnesAreRefused() throws {
        try withStateDirectory { state in
            let outbox = try DeviceOutbox(statePath: state)
            let good: [DeviceControlRequest] = [.init(verb: "read", messageID: "<m@x>"), .init(verb: "unread", messageID: "<m@x>"),
                                                .init(verb: "delete", messageID: "<m@x>"), .init(verb: "file", messageID: "<m@x>", folder: "Archiv"),
                                                .init(verb: "folders")]
            for r in good { _ = try r.submit(statePath: state) }
            for r in [DeviceControlRequest(verb: "file", messageID: "<m@x>"), .init(verb: "read"),
                      .init(verb: "file", messageID: "<m@x>", folder: "a\nb")] {
                #expect(throws: DeviceControlRequest.Invalid.self, "\(r.verb)") { try r.request() }
            }
            #expect(try outbox.takeSpooled().count == good.count)
            #expect(Set(outbox.pending.map(\.request.verb)) == ["read", "unread", "delete", "file", "folders"])
            #expect(outbox.pending.contains { $0.request == .file(messageID: "<m@x>", folder: "Archiv") })
        }
    }

    /// A log line reads back as what was written (the drills' stream reads the devices' logs so).
    @Test func aLogLineReadsBackWithItsFields() throws {
        let at = Date(timeIntervalSince1970: 1_796_550_000.123)
        let item = ShownItem.sent(SentOutcome(requestRef: 42, messageID: "<bramble.2A00F00D.42@x>", state: .failed, reason: "unknown recipient <a@b>"),
                                  pin: "2A00F00D", seq: 7, at: at)
        var read = try ShownItem.decoder.decode(ShownItem.self, from: ShownItem.encoder.encode(item))
        #expect(abs(read.receivedAt.timeIntervalSince(at)) < 0.001)
        read.receivedAt = at
        #expect(read == item)
    }
}
