@testable import BrambleTestSupport
import BrambleCore
import BrambleNet
import Crypto
import Foundation
import NIOCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The relay bounds what it holds for each peer: a device that stops reading is closed
/// once its outbound buffer passes the bound, and the relay's memory stays flat however
/// much is pushed at it, while a device that reads keeps being served. Plain (the stalled
/// peer a bare socket) and with TLS as `make up` runs it (the TLS layer must not buffer
/// for a peer that does not read either).
@Suite(.serialized) struct RelaySlowPeerTests {
    static let stalledPIN = PIN(0x5700_0001)
    static let readingPIN = PIN(0x5700_0002)
    /// Pushed at the stalled device: sixteen times the relay's bound.
    static let floodBytes = 64 << 20
    static let itemBytes = 128 << 10

    @Test(arguments: [false, true])
    func aDeviceThatStopsReadingIsClosedWhileAReadingDeviceKeepsBeingServed(tls: Bool) async throws {
        try await TestRelay.with(tls: tls) { relay in
            let server = try await relay.connect(relay.srp)
            let reading = try await relay.connect(relay.devices)
            try await server.executeThenClose { serverIn, serverOut in
                try await reading.executeThenClose { readingIn, readingOut in
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        // Every frame each peer receives, in order, read as fast as it comes.
                        let (toServer, serverSink) = AsyncStream.makeStream(of: Frame.self)
                        let (toDevice, deviceSink) = AsyncStream.makeStream(of: Frame.self)
                        group.addTask { for try await frame in serverIn { serverSink.yield(frame) }; serverSink.finish() }
                        group.addTask { for try await frame in readingIn { deviceSink.yield(frame) }; deviceSink.finish() }
                        // A deadline, not a timing: a relay that never answers ends the streams,
                        // so the test fails instead of hanging.
                        group.addTask {
                            try await Task.sleep(for: .seconds(60))
                            serverSink.finish()
                            deviceSink.finish()
                        }
                        defer { group.cancelAll() }
                        var serverFrames = toServer.makeAsyncIterator()
                        var deviceFrames = toDevice.makeAsyncIterator()

                        // The test plays the node: register SRP ID "bramble" at epoch 1.
                        guard case .challenge(let nonce)? = await serverFrames.next() else { Issue.record("no challenge"); return }
                        let proof = SRPProof.compute(key: relay.key, nonce: nonce, srpID: "bramble", epoch: 1)
                        try await serverOut.write(.register(srpID: "bramble", epoch: 1, proof: proof))
                        #expect(await serverFrames.next() == .registered(srpID: "bramble", epoch: 1))
                        let master = SymmetricKey(size: .bits256)
                        try await serverOut.write(.deviceKeys(DeviceKeyUpdate(phase: .syncEnd, entries: [
                            DeviceKeyUpdate.Entry(pin: Self.readingPIN, master: master), DeviceKeyUpdate.Entry(pin: Self.stalledPIN, master: master)])))

                        try await readingOut.write(TestDevice.hello(pin: Self.readingPIN, master: master, answering: await deviceFrames.next()))
                        #expect(await deviceFrames.next() == .deviceWelcome)
                        #expect(await serverFrames.next() == .presence(pin: Self.readingPIN, online: true))

                        // A device that says hello and then never reads (a small receive
                        // buffer, so the kernel holds little for it). Over TLS it reads
                        // no more once the few frames its stream buffers are taken.
                        var rawStalled: StalledPeer?
                        defer { rawStalled?.close() }
                        if tls {
                            let stalled = try await relay.connect(relay.devices, receiveBuffer: 16 << 10)
                            group.addTask {
                                try await stalled.executeThenClose { inbound, outbound in
                                    var frames = inbound.makeAsyncIterator()
                                    try await outbound.write(TestDevice.hello(pin: Self.stalledPIN, master: master, answering: try await frames.next()))
                                    try await Task.sleep(for: .seconds(600))  // until the test ends (cancelled)
                                }
                            }
                        } else {
                            let stalled = try StalledPeer(port: relay.devicePort, receiveBuffer: 16 << 10)
                            rawStalled = stalled
                            try stalled.send(TestDevice.hello(pin: Self.stalledPIN, master: master, answering: try stalled.receiveFrame()).encoded())
                        }
                        #expect(await serverFrames.next() == .presence(pin: Self.stalledPIN, online: true))

                        let before = try relay.memoryKiB()
                        let body = [UInt8](repeating: 0xA5, count: Self.itemBytes)
                        func item(_ pin: PIN, _ ref: UInt64, size: Int) -> Frame {
                            .data(DataFrame(pin: pin, service: .push, ref: ref, flags: [], body: Array(body.prefix(size))))
                        }
                        // The flood, with an item for the reading device after every 16.
                        let floodItems = Self.floodBytes / Self.itemBytes
                        var readingRefs: [UInt64] = []
                        for n in 1...floodItems {
                            try await serverOut.write(item(Self.stalledPIN, UInt64(n), size: Self.itemBytes))
                            if n % 16 == 0 {
                                readingRefs.append(UInt64(n))
                                try await serverOut.write(item(Self.readingPIN, UInt64(n), size: 4 << 10))
                            }
                        }

                        // The relay tells the node the stalled device went away: it closed it.
                        var closed = false
                        while let frame = await serverFrames.next() {
                            if frame == .presence(pin: Self.stalledPIN, online: false) { closed = true; break }
                        }
                        #expect(closed, "the relay never closed the device that stopped reading")
                        #expect(try await relay.metric("bramble_relay_slow_peers_closed_total") == 1)

                        // The reading device got every item meant for it, in order, and still does.
                        var got: [UInt64] = []
                        while got.count < readingRefs.count, case .data(let d)? = await deviceFrames.next() { got.append(d.ref) }
                        #expect(got == readingRefs)
                        try await serverOut.write(item(Self.readingPIN, 1_000_000, size: 64))
                        if case .data(let d)? = await deviceFrames.next() { #expect(d.ref == 1_000_000) } else { Issue.record("no item after the flood") }

                        // Measured once the relay has routed the whole flood: the reading
                        // device's items were interleaved with it, up to the last one.
                        let after = try relay.memoryKiB()
                        let pushedMiB = (floodItems * Self.itemBytes) >> 20
                        print("relay memory (\(tls ? "TLS" : "plain")) while \(pushedMiB) MiB were pushed at a device that never read: RSS \(before.rss / 1024) → \(after.rss / 1024) MiB, peak \(before.peak / 1024) → \(after.peak / 1024) MiB")
                        // Loose on purpose (allocator and debug-build noise): holding the flood
                        // would have added all of it.
                        #expect((after.peak - before.peak) / 1024 < pushedMiB / 2,
                                "the relay's peak memory grew by \((after.peak - before.peak) / 1024) MiB")
                    }
                }
            }
        }
    }
}

/// A raw TCP connection that sends but never reads.
private struct StalledPeer {
    let fd: Int32

    init(port: Int, receiveBuffer: Int32) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SetupError("socket: \(errno)") }
        var size = receiveBuffer
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))  // before connect, for the window
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { Glibc.close(fd); throw SetupError("connect: \(errno)") }
    }

    /// One frame, read once (the relay's challenge); the peer reads nothing after it.
    func receiveFrame() throws -> Frame? {
        var bytes = [UInt8](repeating: 0, count: 256)
        let n = bytes.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { throw SetupError("recv: \(errno)") }
        var buffer = ByteBuffer(bytes: bytes.prefix(n))
        return try Frame.decode(from: &buffer)
    }

    func send(_ buffer: ByteBuffer) throws {
        let bytes = Array(buffer: buffer)
        let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
        guard sent == bytes.count else { throw SetupError("send: \(errno)") }
    }

    func close() { Glibc.close(fd) }
}
