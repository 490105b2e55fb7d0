#if !BRAMBLE_FUZZ
/// Without the fuzzer (a plain `swift build`), say how to build this target.
@main
struct FuzzUsage {
    static func main() {
        print("bramble-fuzz is a libFuzzer target: run `make fuzz` (builds it with -sanitize=fuzzer).")
    }
}
#endif
