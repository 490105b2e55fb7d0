#if BRAMBLE_FUZZ
import BrambleCore
import Crypto

/// `envelope`: opening a data frame's sealed body. Bytes off the wire fail GCM; so the
/// input is also sealed as the plaintext (`u32 length ‖ deflate stream`), which reaches the
/// length bound and the inflater as a peer that holds the key could; and sealed as a
/// payload, which must open to itself, bound to its header.
enum EnvelopeTarget {
    static let target = FuzzTarget(
        name: "envelope",
        covers: "Envelope.open: the input as a sealed body, as the plaintext under a valid seal (inflate), seal/open round trip",
        run: run, seeds: seeds)

    static let key = SymmetricKey(data: [UInt8](repeating: 0x42, count: 32))
    static let header = DataFrame(pin: PIN(0x2A00_F00D), service: .mail, ref: 7, flags: [.fromDevice], body: [])
    static let maxPayload = 1 << 16
    // libFuzzer calls in from one thread; an envelope keeps its zlib streams between uses,
    // as a connection's does.
    nonisolated(unsafe) static let envelope = Envelope()

    static func frame(_ body: [UInt8], flags: DataFrame.Flags = [.fromDevice]) -> DataFrame {
        var f = header
        (f.body, f.flags) = (body, flags)
        return f
    }

    static func run(_ bytes: [UInt8]) {
        // 1. As a sealed body.
        if let payload = try? envelope.open(frame(bytes), key: key, maxPayload: maxPayload) {
            require(payload.count <= maxPayload, "opened more than the bound")
        }

        // 2. As the plaintext of a valid seal: the declared length, then a deflate stream.
        let nonce = try! AES.GCM.Nonce(data: [UInt8](repeating: 7, count: Envelope.nonceLength))
        let box = try! AES.GCM.seal(bytes, using: key, nonce: nonce, authenticating: header.associatedData)
        do {
            let payload = try envelope.open(frame(Array(box.combined!)), key: key, maxPayload: maxPayload)
            require(bytes.count >= 4, "opened a plaintext without its length")
            let declared = bytes.prefix(4).reduce(0) { $0 << 8 | Int($1) }
            require(payload.count == declared && declared <= maxPayload, "opened \(payload.count) bytes, \(declared) declared")
        } catch {
            switch error {
            case .authenticationFailed: require(false, "a valid seal failed to authenticate")
            case .truncated: require(bytes.count < 4, "a plaintext with its length called truncated")
            case .payloadTooLarge(let n): require(n > maxPayload, "\(n) bytes refused under the bound \(maxPayload)")
            case .decompressionFailed: break
            }
        }

        // 3. Sealed as a payload: opens to itself; the header is bound to it (a reflected
        //    frame fails), except the resend flag; a cut body fails.
        guard bytes.count <= maxPayload else { return }
        let sealed = envelope.seal(bytes, key: key, header: header)
        require((try? envelope.open(frame(sealed), key: key, maxPayload: maxPayload)) == bytes, "seal then open changed the payload")
        require((try? envelope.open(frame(sealed, flags: [.fromDevice, .resend]), key: key, maxPayload: maxPayload)) == bytes,
                "the resend flag broke the seal")
        do {
            _ = try envelope.open(frame(sealed, flags: []), key: key, maxPayload: maxPayload)
            require(false, "a reflected frame opened")
        } catch {
            require(error == .authenticationFailed, "a reflected frame failed with \(error)")
        }
        require((try? envelope.open(frame(Array(sealed.dropLast())), key: key, maxPayload: maxPayload)) == nil, "a cut body opened")
    }

    static func seeds() -> [(name: String, bytes: [UInt8])] {
        let payloads: [(String, [UInt8])] = [
            ("empty", []),
            ("push", PushItem(pushID: "p-1", subject: "Build failed", body: "main is red since 14:02\n").encoded()),
            ("ack", AckList(refs: [1, 2, 3, 5, 8]).encoded()),
            ("mail", PayloadsTarget.sampleMail.encoded()),
            ("repetitive", Array(String(repeating: "All work and no play. ", count: 200).utf8)),
        ]
        var seeds: [(name: String, bytes: [UInt8])] = []
        for (name, payload) in payloads {
            // The plaintext inside a seal, u32 length ‖ deflate(payload); sealed again under a
            // fixed nonce, so the seeds are the same each time they are written.
            let box = try! AES.GCM.SealedBox(combined: envelope.seal(payload, key: key, header: header))
            let plaintext = try! AES.GCM.open(box, using: key, authenticating: header.associatedData)
            let nonce = try! AES.GCM.Nonce(data: [UInt8](repeating: 9, count: Envelope.nonceLength))
            let sealed = try! AES.GCM.seal(plaintext, using: key, nonce: nonce, authenticating: header.associatedData)
            seeds.append(("plain-\(name).bin", Array(plaintext)))
            seeds.append(("sealed-\(name).bin", Array(sealed.combined!)))
        }
        // A stored (uncompressed) deflate block: 5 bytes "hello" behind a declared length of 5.
        seeds.append(("plain-stored.bin", [0, 0, 0, 5, 0x01, 0x05, 0x00, 0xFA, 0xFF] + Array("hello".utf8)))
        return seeds
    }
}

#endif
