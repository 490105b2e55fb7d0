import BrambleCore
import BrambleDevice
import BrambleNet
import Foundation
import NIOConcurrencyHelpers
import NIOSSL

/// The drills' instant messages: the demo devices log in to IM (an `im login` in their
/// control spools, the password from the status file), then an XMPP client of its own on
/// the client host, as `im-sender`, sends them messages on an absolute schedule. A message
/// counts as sent once the IM server routed it (a ping after it answered: a session's
/// stanzas are handled in order); the sender logs in again when its session drops, and
/// what it could not hand over is not counted. Afterwards the devices' logs are read, by
/// message id, outside the nodes.
final class IMStream: Sendable {
    struct Device: Sendable {
        var pin: PIN
        var jid: String
        var password: String
        var statePath: String
        var log: String
    }

    let devices: [Device]
    let rate: Double
    let run: String
    let xmpp: HostPort
    let tls: NIOSSLContext?
    let sender: (jid: String, password: String)
    private let box = NIOLockedValueBox((accepted: [String: String](), notAccepted: 0))

    init?(devices: [Device], rate: Double, run: String, xmpp: HostPort, tls: NIOSSLContext?, sender: (jid: String, password: String)) {
        guard !devices.isEmpty, rate > 0 else { return nil }
        (self.devices, self.rate, self.run, self.xmpp, self.tls, self.sender) = (devices, rate, run, xmpp, tls, sender)
    }

    /// Logs every device in (once it is, a login again answers "already logged in") and
    /// waits, at most `seconds`, for each to say logged-in after this call.
    func logIn(seconds: Double = 20) async -> [PIN] {
        let since = Date()
        for d in devices {
            let request = DeviceControlRequest(verb: "im-login", jid: d.jid, password: d.password)
            do { _ = try request.submit(statePath: d.statePath) } catch {
                FileHandle.standardError.write(Data("stream: device \(d.pin) could not spool an IM login: \(error)\n".utf8))
            }
        }
        let deadline = Date().addingTimeInterval(seconds)
        var missing = Set(devices.map(\.pin))
        while !missing.isEmpty, Date() < deadline {
            for d in devices where missing.contains(d.pin) {
                if Self.items(d.log).contains(where: { $0.service == "im-session" && $0.state == "logged-in" && $0.receivedAt >= since }) {
                    missing.remove(d.pin)
                }
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
        return Array(missing)
    }

    /// Sends `count` messages, one every 1/rate s, to the devices' users in turn.
    func send(count: Int) async {
        let start = ContinuousClock.now
        let interval = Duration.seconds(1 / rate)
        var client: XMPPChatClient?
        for n in 0..<count {
            let due = start + interval * n
            if due > .now { try? await Task.sleep(until: due) }
            let to = devices[n % devices.count]
            let id = "drill-\(run)-\(n)"
            if client?.isConnected != true {
                client = try? await XMPPChatClient.connect(to: xmpp, tls: tls, jid: sender.jid, password: sender.password, timeoutMs: 2_000)
            }
            if let client, (try? await client.send(to: to.jid, body: "drill message \(n) of run \(run)", id: id)) != nil {
                box.withLockedValue { $0.accepted[id] = to.log }
            } else {
                box.withLockedValue { $0.notAccepted += 1 }
            }
        }
        await client?.close()
    }

    struct Audit {
        var sent = 0
        var shown = 0
        var lost = 0
        var duplicates = 0
        var notAccepted = 0
        var missing: [String] = []
        var passed: Bool { sent > 0 && lost == 0 && duplicates == 0 }
    }

    /// Waits until every accepted message is shown (or `deadline`), then counts.
    func audit(until deadline: ContinuousClock.Instant) async -> Audit {
        let (accepted, notAccepted) = box.withLockedValue { ($0.accepted, $0.notAccepted) }
        var audit = Audit()
        repeat {
            var counts: [String: Int] = [:]
            for log in Set(devices.map(\.log)) {
                for item in Self.items(log) where item.service == "im" {
                    if let id = item.id, id.hasPrefix("drill-\(run)-") { counts[id, default: 0] += 1 }
                }
            }
            let shown = Set(counts.keys).intersection(accepted.keys)
            audit = Audit(sent: accepted.count, shown: shown.count, lost: accepted.count - shown.count,
                          duplicates: counts.values.filter { $0 > 1 }.count, notAccepted: notAccepted,
                          missing: accepted.keys.filter { counts[$0] == nil }.sorted())
            if audit.lost == 0 { break }
            try? await Task.sleep(for: .milliseconds(200))
        } while ContinuousClock.now < deadline
        return audit
    }

    static func items(_ log: String) -> [ShownItem] {
        guard let data = FileManager.default.contents(atPath: log) else { return [] }
        return data.split(separator: UInt8(ascii: "\n")).compactMap { try? ShownItem.decoder.decode(ShownItem.self, from: $0) }
    }
}
