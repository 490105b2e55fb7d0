import ServiceLifecycle

/// Runs `loop` (which reads the stream `events` feeds until it finishes) beside a clock
/// that yields `tick` every `everyMs`, until a graceful shutdown finishes the stream; the
/// clock stops with it, so the service returns at once.
func runTickingLoop<Event: Sendable>(_ events: AsyncStream<Event>.Continuation, tick: Event, everyMs: UInt64,
                                     _ loop: @escaping @Sendable () async -> Void) async {
    await withGracefulShutdownHandler {
        await withDiscardingTaskGroup { group in
            group.addTask { await loop() }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(everyMs))
                    if case .terminated = events.yield(tick) { return }
                }
            }
        }
    } onGracefulShutdown: {
        events.finish()
    }
}
