import ArgumentParser
import BrambleCore
import CompressNIO
import Crypto
import Foundation
import NIOCore

/// (a) Envelope throughput on one core: 2 KB text items compressed and encrypted, with
/// framing, beside a baseline of the same items through plain zlib at the same level
/// plus AES-256-GCM, with no framing or bookkeeping — both measured in this run.
struct EnvelopeBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "envelope", abstract: "Envelope throughput vs raw zlib + AES-GCM.")

    @Option(help: "Items per measurement.") var items = 20_000
    @Option(help: "Measurements of each (the median is reported).") var rounds = 5

    func run() throws {
        let texts = Self.items(count: 256, size: 2048)
        let key = SymmetricKey(size: .bits256)
        let baseline = try Baseline()
        let envelope = Envelope()

        func measure(_ body: (Int) throws -> Int) rethrows -> Double {
            let start = ContinuousClock.now
            var sink = 0
            for i in 0..<items { sink &+= try body(i) }
            precondition(sink > 0)
            let elapsed = ContinuousClock.now - start
            return Double(items) / (Double(elapsed.components.attoseconds) / 1e18 + Double(elapsed.components.seconds))
        }

        var baseRates: [Double] = [], envelopeRates: [Double] = []
        var frame = ByteBufferAllocator().buffer(capacity: 4096)
        for _ in 0..<rounds {
            baseRates.append(try measure { i in try baseline.seal(texts[i % texts.count], key: key) })
            envelopeRates.append(measure { i in
                var header = DataFrame(pin: PIN(UInt32(i & 0xFFFF)), service: .push, ref: UInt64(i), flags: [], body: [])
                header.body = envelope.seal(texts[i % texts.count], key: key, header: header)
                frame.clear()
                Frame.data(header).encode(into: &frame)
                return frame.readableBytes
            })
        }
        let base = median(baseRates), env = median(envelopeRates)
        print(String(format: "envelope: baseline zlib(level %d)+AES-256-GCM  %9.0f items/s", Envelope.compressionLevel, base))
        print(String(format: "envelope: Bramble envelope + frame           %9.0f items/s", env))
        print(String(format: "envelope: cost ratio (baseline/envelope)     %9.2fx   (goal <= 1.30x)", base / env))
    }

    /// Text that compresses like mail: words from a small vocabulary, varied per item.
    static func items(count: Int, size: Int) -> [[UInt8]] {
        let words = ["meeting", "quarterly", "report", "the", "and", "budget", "attached", "please", "review", "before",
                     "Friday", "thanks", "regards", "project", "schedule", "update", "customer", "invoice", "server", "team"]
        var rng = SystemRandomNumberGenerator()
        return (0..<count).map { n in
            var text = "Item \(n): "
            while text.utf8.count < size { text += words[Int(rng.next() % UInt64(words.count))] + (rng.next() % 9 == 0 ? ". " : " ") }
            return Array(text.utf8.prefix(size))
        }
    }

    struct Baseline {
        let compressor: ZlibCompressor
        var scratch = ByteBufferAllocator().buffer(capacity: 4096)

        init() throws {
            compressor = try ZlibCompressor(algorithm: .deflate, configuration: .init(compressionLevel: Envelope.compressionLevel))
        }

        func seal(_ payload: [UInt8], key: SymmetricKey) throws -> Int {
            var input = ByteBufferAllocator().buffer(bytes: payload)
            var out = ByteBufferAllocator().buffer(capacity: compressor.maxSize(from: input))
            try compressor.reset()
            try compressor.deflate(from: &input, to: &out, flush: .finish)
            let box = try AES.GCM.seal(Array(out.readableBytesView), using: key)
            return box.ciphertext.count
        }
    }
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}
