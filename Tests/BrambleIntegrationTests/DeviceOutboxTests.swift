import BrambleCore
import BrambleDevice
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
        #expect(again.pending.map(\.messageID) == ["<a@x>", "<b@x>"])
    }

    @Test func aDeviceWithoutStateNumbersFromTheClock() throws {
        let first = try DeviceOutbox(statePath: nil).nextFrameNumber()
        Thread.sleep(forTimeInterval: 0.002)
        let restarted = try DeviceOutbox(statePath: nil).nextFrameNumber()
        #expect(restarted > first)
        #expect(first <= UInt64(Int64.max), "within the server's signed request numbers")
    }
}
