#if BRAMBLE_FUZZ
import Foundation

// libFuzzer entry points. Built only with -sanitize=fuzzer,address and -DBRAMBLE_FUZZ
// (`make fuzz`, `make fuzz-short`); libFuzzer supplies the driver. One binary holds every
// fuzz target: BRAMBLE_FUZZ_TARGET names the one a run exercises (libFuzzer owns the
// command line), so each target has its own corpus, coverage and execution count. Any
// crash, sanitizer report, leak, timeout or broken invariant (`require`) is a finding.

/// One decoder family under fuzzing.
struct FuzzTarget: Sendable {
    var name: String
    /// What the target feeds its input to, for the usage text.
    var covers: String
    /// Runs the input through the target's decoders and checks their invariants.
    var run: @Sendable ([UInt8]) -> Void
    /// Seeds made with the library's own encoders (`BRAMBLE_FUZZ_WRITE_SEEDS`); the
    /// committed corpus adds hand-written ones (IMAP transcripts, mail, settings files).
    var seeds: @Sendable () -> [(name: String, bytes: [UInt8])] = { [] }
}

let fuzzTargets: [FuzzTarget] = [
    FramesTarget.target, EnvelopeTarget.target, PayloadsTarget.target, IMAPTarget.target,
    MIMETarget.target, SettingsTarget.target, SMTPTarget.target, NotifyTarget.target, XMPPTarget.target,
    ActivationTarget.target,
]

/// The target this process runs; set once, before libFuzzer calls in (from one thread).
nonisolated(unsafe) private var selectedTarget: FuzzTarget?

/// A broken invariant: a crash libFuzzer records with the input that caused it.
func require(_ condition: Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
    if !condition { fatalError("fuzz invariant broken: \(message())", file: file, line: line) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = size == 0 || data == nil ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    selectedTarget!.run(bytes)
    return 0
}

// SwiftPM links an executable's entry as `<target>_main`; choose the target, then hand
// control to libFuzzer's driver.
@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

private func usage() -> String {
    var text = """
        usage: BRAMBLE_FUZZ_TARGET=NAME bramble-fuzz [libFuzzer options] [CORPUS_DIR…]
               BRAMBLE_FUZZ_WRITE_SEEDS=DIR bramble-fuzz   (writes the generated seeds to DIR/NAME/)
        targets:

        """
    for t in fuzzTargets { text += "  \(t.name.padding(toLength: 9, withPad: " ", startingAt: 0)) \(t.covers)\n" }
    return text
}

private func writeSeeds(to directory: String) -> CInt {
    for target in fuzzTargets {
        let dir = directory + "/" + target.name
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            for seed in target.seeds() {
                // Every seed must pass its own target: a seed that breaks an invariant is a bug here.
                target.run(seed.bytes)
                try Data(seed.bytes).write(to: URL(fileURLWithPath: dir + "/" + seed.name))
            }
        } catch {
            FileHandle.standardError.write(Data("bramble-fuzz: writing seeds to \(dir): \(error)\n".utf8))
            return 1
        }
    }
    return 0
}

@_cdecl("bramble_fuzz_main")
public func brambleFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    let environment = ProcessInfo.processInfo.environment
    if let directory = environment["BRAMBLE_FUZZ_WRITE_SEEDS"], !directory.isEmpty { return writeSeeds(to: directory) }
    guard let name = environment["BRAMBLE_FUZZ_TARGET"], let target = fuzzTargets.first(where: { $0.name == name }) else {
        let given = environment["BRAMBLE_FUZZ_TARGET"].map { "unknown target '\($0)'\n" } ?? "BRAMBLE_FUZZ_TARGET is not set\n"
        FileHandle.standardError.write(Data((given + usage()).utf8))
        return 2
    }
    selectedTarget = target
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, fuzzTestOneInput)
}

#endif
