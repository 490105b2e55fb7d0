import AsyncHTTPClient
import BrambleCore
import BrambleNet
@preconcurrency import Crypto
import Foundation
import NIOCore
import NIOPosix

/// A relay alone on loopback (this checkout's debug build as a separate process), for
/// tests that play both the node and the devices themselves.
final class TestRelay: @unchecked Sendable {
    let dir: String
    let devicePort: Int
    let srpPort: Int
    let httpPort: Int
    let key = SymmetricKey(size: .bits256)
    /// The CA of a relay with TLS (nil: plain); the relay's certificate is `relay`'s, the
    /// node's client certificate for the SRP link `node`'s.
    private(set) var ca: TestCA?
    private(set) var process: ChildProcess!

    var devices: HostPort { HostPort(host: "127.0.0.1", port: devicePort) }
    var srp: HostPort { HostPort(host: "127.0.0.1", port: srpPort) }
    var auditPath: String { dir + "/relay-audit.jsonl" }

    private init() throws {
        dir = NSTemporaryDirectory() + "bramble-relay-test-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let ports = try TestCluster.freePorts(3)
        (devicePort, srpPort, httpPort) = (ports[0], ports[1], ports[2])
        try SecretFilePermissions.create(dir + "/srp-keys", bytes: Array("bramble \(key.base64)\n".utf8), what: "SRP key")
    }

    /// Starts a relay (SRP ID `bramble`, audit log on), runs `body`, stops the relay.
    /// Plain unless `tls` (then its device, SRP and HTTP listeners are TLS as in `make up`,
    /// the SRP link mutual): most of these tests write raw frames to a bare socket.
    static func with<T>(tls: Bool = false, _ body: (TestRelay) async throws -> T) async throws -> T {
        let relay = try TestRelay()
        defer {
            relay.process?.stop()
            try? FileManager.default.removeItem(atPath: relay.dir)
        }
        if tls { relay.ca = try TestCA.make(in: relay.dir + "/tls", hosts: ["relay", "node"]) }
        relay.process = try ChildProcess(name: "relay", executable: TestCluster.bin + "/bramble-relay", arguments: [
            "--srp-keys", relay.dir + "/srp-keys", "--device-listen", "127.0.0.1:\(relay.devicePort)",
            "--srp-listen", "127.0.0.1:\(relay.srpPort)", "--http-listen", "127.0.0.1:\(relay.httpPort)",
            "--audit-log", relay.auditPath,
        ] + (relay.ca?.flags("relay") ?? ["--plaintext", "yes"]), logPath: relay.dir + "/relay.log")
        do {
            try await relay.waitUntilListening()
            return try await body(relay)
        } catch {
            print("----- relay log (last 40 lines) -----")
            print(relay.process.log.split(separator: "\n").suffix(40).joined(separator: "\n"))
            throw error
        }
    }

    private func waitUntilListening() async throws {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if (try? await metric("bramble_relay_frames_total")) != nil { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw SetupError("the relay did not come up: \(process.log)")
    }

    /// A frame connection to `address`, for `executeThenClose`: TLS if the relay's is (as
    /// the node, with its client certificate, on the SRP listener; as a device, verifying
    /// the relay only, on the device listener). `receiveBuffer`: SO_RCVBUF, set before
    /// connecting (a small one makes a peer that stops reading stall the relay soon).
    func connect(_ address: HostPort, receiveBuffer: Int32? = nil) async throws -> FrameChannel {
        let tls = try ca.map { ca in try (address == srp ? ca.files("node") : TLSFiles(ca: ca.ca)).clientContext() }
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        if let receiveBuffer { bootstrap = bootstrap.channelOption(ChannelOptions.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBuffer)) }
        return try await bootstrap.connect(host: address.host, port: address.port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.addTLSClient(tls, host: address.host)
                try channel.pipeline.syncOperations.addFrameCodec()
                return try FrameChannel(wrappingChannelSynchronously: channel)
            }
        }
    }

    /// One counter or gauge from the relay's `/metrics` (over HTTPS, trusting the CA, if
    /// the relay has TLS).
    func metric(_ name: String) async throws -> Double? {
        let http = try ca.map { try HTTPClient.bramble(caFile: $0.ca) } ?? HTTPClient.shared
        let response = try await http.execute(HTTPClientRequest(url: "\(ca == nil ? "http" : "https")://127.0.0.1:\(httpPort)/metrics"),
                                               timeout: .seconds(2))
        let body = try await response.body.collect(upTo: 1 << 20)
        for line in String(buffer: body).split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.split(separator: " ")[1])
        }
        return nil
    }

    /// The relay process's resident memory now and at its peak (`VmRSS`, `VmHWM`), in KiB.
    func memoryKiB() throws -> (rss: Int, peak: Int) { try processMemoryKiB(pid: process.pid) }
}

/// A process's resident memory now and at its peak (`VmRSS`, `VmHWM` in /proc), in KiB.
func processMemoryKiB(pid: Int32) throws -> (rss: Int, peak: Int) {
    let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
    func field(_ name: String) -> Int {
        let line = status.split(separator: "\n").first { $0.hasPrefix(name + ":") } ?? ""
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? -1
    }
    return (field("VmRSS"), field("VmHWM"))
}
