import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Runs `body` and cancels it on SIGTERM or SIGINT, so it can finish its current step
/// and close its connections instead of dying mid-write.
public func withSignalCancellation(_ body: @escaping @Sendable () async -> Void) async throws {
    let task = Task { await body() }
    signal(SIGTERM, SIG_IGN)
    signal(SIGINT, SIG_IGN)
    let sources = [SIGTERM, SIGINT].map { sig in
        let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        source.setEventHandler { task.cancel() }
        source.resume()
        return source
    }
    await task.value
    sources.forEach { $0.cancel() }
}
