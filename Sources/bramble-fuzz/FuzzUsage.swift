#if !BRAMBLE_FUZZ
/// Without the fuzzer (a plain `swift build`), say how to build and run this target.
@main
struct FuzzUsage {
    static func main() {
        print("""
            bramble-fuzz holds Bramble's libFuzzer targets (frames, envelope, payloads, imap, mime, settings, smtp, notify, xmpp, activation).
            Run `make fuzz` (every target, FUZZ_SECONDS each) or `make fuzz-short`; both build it with -sanitize=fuzzer,address.
            """)
    }
}
#endif
