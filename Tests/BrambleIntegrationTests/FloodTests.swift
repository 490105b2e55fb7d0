@testable import BrambleTestSupport
import BrambleCore
import BrambleNet
import Crypto
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The test plays an attacker on loopback: ten thousand idle sockets at the relay's device
/// listener from ten source addresses, hellos for invented SRP IDs, and three thousand
/// idle sockets at the node's HTTP API. The relay and the node stay within their caps and
/// their memory stays bounded, while real devices keep being served and a new one
/// connects in the middle of it.
@Suite(.serialized) struct FloodTests {
    static let idleAtRelay = 10_000
    static let relaySources = 10
    static let idleAtNode = 3_000

    @Test func thousandsOfIdleAndHostileConnectionsLeaveRealDevicesServed() async throws {
        var options = TestCluster.Options()
        options.relayArguments = ["--hello-timeout-ms", "3000"]
        try await TestCluster.with(options) { cluster in
            try cluster.provision(email: "bob@example.test", pin: "B0B00003")
            try cluster.provision(email: "carol@example.test", pin: "CA203")
            try cluster.startDevice(pin: "B0B00003")
            let first = try #require(await cluster.pushID(to: "bob@example.test", subject: "before"))
            try await cluster.waitFor("bob's first item") { cluster.shown(pin: "B0B00003").map(\.push_id) == [first] }
            let relayBefore = try processMemoryKiB(pid: cluster.relay!.pid)
            let nodeBefore = try processMemoryKiB(pid: cluster.node!.pid)

            // The flood: idle sockets from 127.0.0.2 … 127.0.0.11 at the relay, from 127.0.0.12 at the node.
            var sockets = IdleSockets()
            defer { sockets.closeAll() }
            let nodePort = cluster.nodeHTTPPorts[cluster.options.nodes[0]]!
            // In batches the listen backlog takes, each batch's handshakes complete before the next.
            for start in stride(from: 0, to: Self.idleAtRelay, by: 200) {
                try sockets.openBatch((start..<start + 200).map { "127.0.0.\(2 + $0 % Self.relaySources)" }, to: cluster.devicePort)
            }
            for _ in stride(from: 0, to: Self.idleAtNode, by: 200) {
                try sockets.openBatch(Array(repeating: "127.0.0.12", count: 200), to: nodePort)
            }
            // Hellos for SRP IDs the relay does not serve, each refused.
            for n in 0..<200 {
                let refused = try await FrameLink.connect(to: cluster.relayDevices, tls: cluster.deviceTLS) { link, frames -> Bool in
                    try await link.outbound.write(TestDevice.hello(pin: PIN(UInt32(n)), master: SymmetricKey(size: .bits256),
                                                                   srpID: "invented\(n)", answering: try await frames.next()))
                    guard case .error(.unknownSRPID, _)? = try await frames.next() else { return false }
                    return true
                }
                #expect(refused, "hello \(n) for an invented SRP ID was not refused")
            }

            // Meanwhile a real device is served and a new one connects.
            let during = try #require(await cluster.pushID(to: "bob@example.test", subject: "during"))
            try cluster.startDevice(pin: "CA203")
            let carols = try #require(await cluster.pushID(to: "carol@example.test", subject: "welcome"))
            try await cluster.waitFor("bob's item during the flood") { cluster.shown(pin: "B0B00003").map(\.push_id) == [first, during] }
            try await cluster.waitFor("carol's item during the flood") { cluster.shown(pin: "CA203").map(\.push_id) == [carols] }

            // Every connection past a cap is refused once the listeners have accepted them all.
            // Each idle socket at the relay is either refused at a cap or held and closed when
            // its hello times out (3 s here); on a slow machine the flood outlasts the timeout,
            // so some are held after earlier ones timed out: refused + timed out counts them all.
            var seen = (relay: 0, timedOut: 0, node: 0)
            do {
                try await cluster.waitFor("the relay and the node to refuse what is past their caps", seconds: 30) {
                    seen.relay = Int(try await cluster.relayMetric("bramble_relay_connections_refused_total") ?? 0)
                    seen.timedOut = Int(try await cluster.relayMetric("bramble_relay_device_hellos_timed_out_total") ?? 0)
                    seen.node = Int(try await cluster.metric("bramble_http_connections_refused_total") ?? 0)
                    return seen.relay + seen.timedOut >= Self.idleAtRelay && seen.node >= Self.idleAtNode - 256
                }
            } catch {
                throw SetupError("\(error); so far: \(seen.relay) refused and \(seen.timedOut) timed out by the relay, \(seen.node) refused by the node")
            }
            let health = try await cluster.relayHealth()
            let relayHeld = try Self.field(health, "connections")
            let unauthenticated = try Self.field(health, "unauthenticated_connections")
            let refused = try #require(try await cluster.relayMetric("bramble_relay_connections_refused_total"))
            let httpRefused = try #require(try await cluster.metric("bramble_http_connections_refused_total"))
            let relayAfter = try processMemoryKiB(pid: cluster.relay!.pid)
            let nodeAfter = try processMemoryKiB(pid: cluster.node!.pid)
            print("""
                flood: \(sockets.opened) sockets opened (\(Self.idleAtRelay) at the relay from \(Self.relaySources) addresses, \
                \(Self.idleAtNode) at the node's API), 200 hellos for invented SRP IDs; the relay held \(relayHeld) connections \
                (\(unauthenticated) unauthenticated) and refused \(Int(refused)); the node refused \(Int(httpRefused)) HTTP connections; \
                relay peak \(relayBefore.peak / 1024) → \(relayAfter.peak / 1024) MiB, node peak \(nodeBefore.peak / 1024) → \(nodeAfter.peak / 1024) MiB
                """)
            // The caps: 100 unauthenticated per source address at the relay, 256 per address at the API.
            #expect(unauthenticated <= 100 * Self.relaySources)
            // Most are refused at once: at most 100 per source are held at a time.
            #expect(Int(refused) >= Self.idleAtRelay / 2, "connections past the caps are refused")
            #expect(Int(httpRefused) >= Self.idleAtNode - 256, "the API holds at most 256 connections from one address")
            // Loose on purpose (allocator and debug-build noise): a relay holding all ten
            // thousand sockets with their buffers would grow by far more.
            #expect((relayAfter.peak - relayBefore.peak) / 1024 < 64, "the relay's peak grew by \((relayAfter.peak - relayBefore.peak) / 1024) MiB")
            #expect((nodeAfter.peak - nodeBefore.peak) / 1024 < 64, "the node's peak grew by \((nodeAfter.peak - nodeBefore.peak) / 1024) MiB")

            // The hello timeout closes the idle sockets the relay held (the attacker's ends stay open).
            try await cluster.waitFor("the relay to close the unauthenticated sockets", seconds: 10) {
                try Self.field(try await cluster.relayHealth(), "unauthenticated_connections") == 0
            }
            #expect(try await cluster.relayMetric("bramble_relay_device_hellos_timed_out_total") ?? 0 >= 1)
            let after = try #require(await cluster.pushID(to: "bob@example.test", subject: "after"))
            try await cluster.waitFor("bob's item after the flood") { cluster.shown(pin: "B0B00003").map(\.push_id) == [first, during, after] }
        }
    }

    /// An integer field of a flat JSON object.
    static func field(_ json: String, _ name: String) throws -> Int {
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        guard let value = object?[name] as? Int else { throw SetupError("no integer '\(name)' in \(json)") }
        return value
    }
}

/// Non-blocking TCP connects that are never written to or read from.
struct IdleSockets {
    private var fds: [Int32] = []
    var opened: Int { fds.count }

    /// Opens one socket from each of `sources` and waits (up to 5 s) until each handshake
    /// is done or failed.
    mutating func openBatch(_ sources: [String], to port: Int) throws {
        let first = fds.count
        for source in sources { try open(from: source, to: port) }
        var waiting = fds[first...].map { pollfd(fd: $0, events: Int16(POLLOUT), revents: 0) }
        let deadline = Date().addingTimeInterval(5)
        while !waiting.isEmpty, Date() < deadline {
            _ = poll(&waiting, nfds_t(waiting.count), 100)
            waiting.removeAll { $0.revents != 0 }
        }
    }

    mutating func open(from source: String, to port: Int) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SetupError("socket: errno \(errno) after \(fds.count) sockets") }
        fds.append(fd)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = inet_addr(source)
        var remote = local
        remote.sin_addr.s_addr = inet_addr("127.0.0.1")
        remote.sin_port = in_port_t(UInt16(port).bigEndian)
        let bound = withUnsafePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw SetupError("bind \(source): errno \(errno)") }
        let rc = withUnsafePointer(to: &remote) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 || errno == EINPROGRESS else { throw SetupError("connect from \(source): errno \(errno)") }
    }

    mutating func closeAll() {
        for fd in fds { close(fd) }
        fds = []
    }
}
