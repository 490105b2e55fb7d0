@testable import BrambleTestSupport
import BrambleCore
import BrambleNet
@testable import BrambleServer
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import Testing

/// TLS on the relay's links: nodes and devices verify the relay's certificate against the
/// private CA (a relay it did not sign hears nothing, not even a node's proof), and the SRP
/// listener takes only nodes that present a certificate of that CA.
@Suite(.serialized) struct TLSTests {
    @Test func nodesAndDevicesSayNothingToARelayTheCADidNotSign() async throws {
        try await TestCluster.with { cluster in
            let evil = try TestCA.make(in: cluster.dir + "/evil", hosts: ["relay"])
            let fake = try await FakeRelay.start(tls: try evil.files("relay").serverContext(requireClientCertificate: false))
            defer { fake.stop() }
            for (who, context) in [("node", try cluster.nodeTLS()), ("device", cluster.deviceTLS)] {
                await #expect(throws: (any Error).self, "a \(who) accepted the fake relay's certificate") {
                    try await FrameLink.connect(to: fake.address, tls: context) { link, frames in
                        _ = try await frames.next()
                        try await link.outbound.write(.register(srpID: "bramble", epoch: 1, proof: Array(repeating: 0, count: 32)))
                        _ = try await frames.next()
                    }
                }
            }
            #expect(fake.received.isEmpty, "the fake relay heard \(fake.received)")
            // The node counts a certificate that does not verify as an answer (the path to
            // the relay works; its certificate is wrong), not as a silent relay.
            do {
                try await FrameLink.connect(to: fake.address, tls: try cluster.nodeTLS()) { _, frames in _ = try await frames.next() }
                Issue.record("the node connected to the fake relay")
            } catch {
                #expect(SRPRouter.cause(of: error) == .relayAnswered, "\(error)")
            }
        }
    }

    @Test func theSRPListenerTakesOnlyNodesWithACertificateOfTheCA() async throws {
        try await TestCluster.with { cluster in
            let evil = try TestCA.make(in: cluster.dir + "/evil", hosts: ["node-x"])
            // Trusts the real CA (so it would talk to the real relay) but presents the evil CA's certificate.
            let impostor = try TLSFiles(ca: cluster.tls.ca, certificate: evil.certificate("node-x"), key: evil.key("node-x")).clientContext()
            for (who, context) in [("no certificate", cluster.deviceTLS), ("another CA's certificate", impostor)] {
                let challenged = try? await FrameLink.connect(to: cluster.relaySRP, tls: context) { _, frames in try await frames.next() }
                #expect(challenged == nil, "a node with \(who) got \(String(describing: challenged))")
            }
            // A node of the CA is challenged; a device without TLS is not even understood.
            let challenge = try await FrameLink.connect(to: cluster.relaySRP, tls: try cluster.nodeTLS()) { _, frames in try await frames.next() }
            #expect(challenge?.type == .challenge)
            let plain = try? await FrameLink.connect(to: cluster.relayDevices) { _, frames in try await frames.next() }
            #expect(plain == nil, "a plain connection got \(String(describing: plain))")
            #expect(cluster.relay!.isRunning)
        }
    }

    @Test func theAPIIsHTTPSUnderTheCAAndTheCLIAsksForIt() async throws {
        try await TestCluster.with { cluster in
            let plainURL = cluster.nodeURL.replacingOccurrences(of: "https:", with: "http:")
            let plain = try? await BrambleClient(baseURL: plainURL, token: cluster.token, http: .shared).raw(.GET, "/health", timeout: .seconds(2))
            #expect(plain?.status != 200, "plain HTTP got an answer from the API")
            // A client trusting only the system's roots refuses the node's certificate.
            let untrusted = try? await BrambleClient(baseURL: cluster.nodeURL, token: cluster.token, http: .shared).raw(.GET, "/health", timeout: .seconds(2))
            #expect(untrusted == nil)
            #expect(try await cluster.get(cluster.nodeURL + "/health").status == 200)
            #expect(try await cluster.get(cluster.relayHTTPURL + "/health").status == 200, "the relay's /health is HTTPS too")
            let refusal = #expect(throws: CommandFailed.self) {
                try runCommand(TestCluster.bin + "/bramble", ["status"],
                               environment: ["BRAMBLE_TOKEN": cluster.token, "BRAMBLE_URL": cluster.nodeURL, "BRAMBLE_STATUS": "/nonexistent"])
            }
            #expect(refusal?.output.contains("give --ca-file") == true, "\(refusal?.output ?? "")")
            let status = try runCommand(TestCluster.bin + "/bramble", ["status"], environment: cluster.cliEnvironment(cluster.nodeURL))
            #expect(status.contains("node-a"), "\(status)")
        }
    }
}

/// A TLS frame listener with someone else's certificate that challenges whoever connects
/// and records the frames it hears.
final class FakeRelay: Sendable {
    let channel: any Channel
    private let heard: NIOLockedValueBox<[Frame]>
    var address: HostPort { HostPort(host: "127.0.0.1", port: channel.localAddress!.port!) }
    var received: [Frame] { heard.withLockedValue { $0 } }

    private init(channel: any Channel, heard: NIOLockedValueBox<[Frame]>) { (self.channel, self.heard) = (channel, heard) }

    static func start(tls: NIOSSLContext) async throws -> FakeRelay {
        let heard = NIOLockedValueBox<[Frame]>([])
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                    try channel.pipeline.syncOperations.addFrameCodec()
                    try channel.pipeline.syncOperations.addHandler(Recorder(heard: heard))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return FakeRelay(channel: channel, heard: heard)
    }

    func stop() { channel.close(promise: nil) }

    private final class Recorder: ChannelInboundHandler {
        typealias InboundIn = Frame
        typealias OutboundOut = Frame
        let heard: NIOLockedValueBox<[Frame]>
        init(heard: NIOLockedValueBox<[Frame]>) { self.heard = heard }
        func channelActive(context: ChannelHandlerContext) {
            context.writeAndFlush(wrapOutboundOut(.challenge(nonce: Array(repeating: 7, count: Frame.nonceLength))), promise: nil)
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let frame = unwrapInboundIn(data)
            heard.withLockedValue { $0.append(frame) }
        }
    }
}
