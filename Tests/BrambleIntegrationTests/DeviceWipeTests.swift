import BrambleCore
@testable import BrambleDevice
import BrambleNet
@preconcurrency import Crypto
import Foundation
import Logging
import Testing

/// A device that received a wipe and stopped before it finished (a crash, a kill) wipes at
/// its next start, before it connects: at once when its confirmation left the outbox (the
/// server has it), and only regular files go (a log that is a link is left, its target
/// untouched). `PolicyServiceTests` drive the whole wipe through a cluster.
@Suite struct DeviceWipeTests {
    struct Device {
        let dir: String
        var credential: String { dir + "/device.json" }
        var state: String { credential + ".state" }
        var log: String { dir + "/device.jsonl" }
        var password: String { state + ".password" }
        var marker: String { state + ".wiping" }
    }

    func withDevice(marker kind: String, _ body: (Device, DeviceAgent) async throws -> Void) async throws {
        let device = Device(dir: NSTemporaryDirectory() + "bramble-wipe-" + UUID().uuidString.prefix(8))
        try FileManager.default.createDirectory(atPath: device.dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: device.dir) }
        let credential = DeviceCredential(pin: PIN(0x0E1F_0001), email: "ann@example.test", srpID: "bramble",
                                          masterKey: SymmetricKey(size: .bits256), domainKey: Array(repeating: 1, count: 32))
        try SecretFilePermissions.create(device.credential, bytes: try JSONEncoder().encode(credential), what: "test credential")
        try SecretFilePermissions.create(device.password, bytes: Data("{}".utf8), what: "test verifier")
        try SecretFilePermissions.create(device.marker, bytes: Data(kind.utf8), what: "test marker")
        FileManager.default.createFile(atPath: device.log, contents: Data("{\"ref\":1,\"service\":\"push\"}\n".utf8))
        // Nothing listens there: a device that tried to connect instead of wiping would retry forever.
        var config = DeviceAgent.Configuration(credential: credential, relay: HostPort(host: "127.0.0.1", port: 9), tls: nil)
        (config.statePath, config.logPath, config.credentialPath) = (device.state, device.log, device.credential)
        let agent = try DeviceAgent(configuration: config, logger: Logger(label: "test"))
        try await body(device, agent)
    }

    func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    /// Runs the agent for at most 10 s (a device that did not wipe would keep trying to connect).
    func run(_ agent: DeviceAgent) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await agent.run() }
            group.addTask {
                try await Task.sleep(for: .seconds(10))
                throw CancellationError()
            }
            _ = try? await group.next()
            group.cancelAll()
        }
    }

    @Test func aWipeWhoseConfirmationLeftTheOutboxIsDoneAtTheNextStart() async throws {
        try await withDevice(marker: "wipe") { device, agent in
            try await run(agent)
            #expect(agent.wiped == .wipe)
            for path in [device.credential, device.state, device.state + ".outbox", device.state + ".control", device.log, device.password, device.marker] {
                #expect(!exists(path), "\(path) is gone")
            }
        }
    }

    @Test func aWipeWorkKeepsTheDevicePasswordAndALinkedLogIsLeft() async throws {
        try await withDevice(marker: "wipe-work") { device, agent in
            // The log is a link to a file that is not the device's: the link stays, the file too.
            let elsewhere = device.dir + "/not-the-devices.txt"
            FileManager.default.createFile(atPath: elsewhere, contents: Data("keep me\n".utf8))
            try FileManager.default.removeItem(atPath: device.log)
            try FileManager.default.createSymbolicLink(atPath: device.log, withDestinationPath: elsewhere)
            try await run(agent)
            #expect(agent.wiped == .wipeWork)
            #expect(!exists(device.credential) && !exists(device.state) && !exists(device.marker))
            #expect(exists(device.password), "the device's own password stays")
            #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: device.log)) == elsewhere)
            #expect(FileManager.default.contents(atPath: elsewhere) == Data("keep me\n".utf8))
        }
    }
}
