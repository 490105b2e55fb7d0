import BrambleCore
import BrambleNet
import Foundation
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle

/// The Policy Service on the primary (DESIGN "Policy Service"): signs with the domain's
/// key and sends what the administrator changed — an IT policy due on a device, an IT
/// command (lock, wipe, wipe-work) queued for one — sends again what a device left
/// unanswered, and records the devices' answers: a policy applied (during activation this
/// releases the service books) or refused, a command carried out (a wiped device is
/// forgotten: its key leaves the relay).
public actor PolicyService: Service, LeaseFollower {
    public struct Configuration: Sendable {
        public var srpID: String
        /// Whether the node offers instant messaging (the service books say so).
        public var imOffered = false
        /// How often the primary looks for changes made on any node (the node that took
        /// the change wakes its own service at once).
        public var passMs: UInt64 = 2_000
        /// A policy or command sent this long ago, unanswered and no longer queued for its
        /// device, is sent again.
        public var resendAfterMs: UInt64 = 60_000
        public init(srpID: String) { self.srpID = srpID }
    }

    enum Event: Sendable {
        /// Device requests were recorded (a confirmation among them, perhaps).
        case requests
        /// An administrator changed a policy or queued a command.
        case changed
        case tick
    }

    public nonisolated let followerName = "policy"
    private let configuration: Configuration
    private let store: ConfigStore
    private let dispatcher: Dispatcher
    private let pair: String
    private let node: String
    private let clock: any NodeClock
    private let metrics: NodeMetrics?
    private let logger: Logger
    // Wake-ups only: one of each kind waiting is as good as many.
    private let events = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .bufferingNewest(8))
    private let serving = ServingEpoch()
    private var domain: ConfigStore.DomainKey?
    private var lastPassMs: UInt64 = 0

    public init(configuration: Configuration, store: ConfigStore, dispatcher: Dispatcher, pair: String, node: String,
                clock: any NodeClock, metrics: NodeMetrics? = nil, logger: Logger) {
        (self.configuration, self.store, self.dispatcher) = (configuration, store, dispatcher)
        (self.pair, self.node, self.clock, self.metrics, self.logger) = (pair, node, clock, metrics, logger)
    }

    public nonisolated func requestsRecorded() { events.continuation.yield(.requests) }
    public nonisolated func changed() { events.continuation.yield(.changed) }

    public func serve(epoch: UInt64) async {
        serving.serve(epoch)
        lastPassMs = 0
        events.continuation.yield(.changed)
    }

    /// Returns once no pass of `epoch` is under way (at most about 2 s: a pass's
    /// statements are bounded by the database's timeouts and the fence).
    public nonisolated func stopServing(epoch: UInt64) async {
        await serving.stop(epoch)
    }

    public func run() async throws {
        // The clock wakes the loop to see whether a pass is due.
        await runTickingLoop(events.continuation, tick: .tick, everyMs: 500) { await self.loop() }
    }

    private func loop() async {
        for await event in events.stream {
            await serving.pass { epoch in await self.pass(event, epoch: epoch) }
        }
    }

    private func pass(_ event: Event, epoch: UInt64) async {
        if case .requests = event { return await answers(epoch: epoch) }
        let now = clock.nowMs()
        guard event == .changed || now >= lastPassMs + configuration.passMs else { return }
        lastPassMs = now
        // An answer whose recording failed is tried again with each pass.
        await answers(epoch: epoch)
        do {
            if domain == nil { domain = try await store.domainKey() }
            guard let domain, try await store.policyWorkPending(resendAfterMs: configuration.resendAfterMs) else { return }
            let committed = try await withDeadline(ms: 10_000, clock: clock) { [store, configuration, pair, node] in
                try await store.policyPass(domain: domain, resendAfterMs: configuration.resendAfterMs, pair: pair, node: node, epoch: epoch)
            }
            if let committed, !committed.items.isEmpty {
                await dispatcher.committed(committed.items, keys: committed.keys)
                for item in committed.items {
                    logger.info(item.service == .command ? "IT command sent" : "IT policy sent", metadata: ["device.pin": "\(item.pin)"])
                }
            }
        } catch {
            logger.warning("IT policies and commands not sent", metadata: ["error": "\(describe(error))"])
        }
    }

    private func answers(epoch: UInt64) async {
        let pending: [PendingRequest]
        do { pending = try await store.pendingPolicyRequests() } catch {
            logger.warning("devices' answers to IT policies and commands not read", metadata: ["error": "\(describe(error))"])
            return
        }
        for request in pending {
            guard serving.current == epoch else { return }
            do {
                let outcome = try await withDeadline(ms: 10_000, clock: clock) { [store, configuration, pair, node] in
                    try await store.recordPolicyOutcome(request, srpID: configuration.srpID, imOffered: configuration.imOffered,
                                                        pair: pair, node: node, epoch: epoch)
                }
                if let committed = outcome.committed, !committed.items.isEmpty {
                    await dispatcher.committed(committed.items, keys: committed.keys)
                }
                // The relay forgets a wiped device's key (it can no longer connect).
                if outcome.wiped { dispatcher.refreshKeys() }
                if outcome.recorded, let answer = ActivationMetrics.answer(request.request) { metrics?.policyAnswer(answer) }
                if !outcome.summary.isEmpty { logger.info("\(outcome.summary)", metadata: ["device.pin": "\(request.pin)"]) }
            } catch {
                // One answer's trouble is that answer's: the others are recorded, it is tried again.
                logger.warning("a device's answer to an IT policy or command not recorded",
                               metadata: ["device.pin": "\(request.pin)", "error": "\(describe(error))"])
            }
        }
    }
}
