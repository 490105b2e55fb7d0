/// A component that works only while its node holds the pair's lease (BES: the
/// Dispatcher, the Router, and the Messaging Agent and Collaboration Service to come).
/// Each is also a `Service` in the node's group, running warm on the standby; the HA
/// manager tells it when to serve.
///
/// Order: on promotion the HA manager calls `serve` on each follower in the order of the
/// node's service list (the Dispatcher first, the Router last, so the SRP link comes up
/// when there is something to send it); on demotion it calls `stopServing` in the
/// reverse order, which is BES's: close the SRP link first, stop message flow, turn
/// active connections into standby ones. Then it records the event and releases the lease.
///
/// Adding a component that follows the lease is one conformance and one line in
/// `Node.services`.
public protocol LeaseFollower: Sendable {
    /// For logs.
    var followerName: String { get }
    /// Promotion: start serving at `epoch`. Returns quickly: slow work (loading the
    /// outbound queue, resuming mailboxes) runs in the component's own service, so it
    /// never holds up the lease renewal.
    func serve(epoch: UInt64) async
    /// Demotion: stop serving at `epoch`; returns once nothing more will be sent under it.
    func stopServing(epoch: UInt64) async
}
