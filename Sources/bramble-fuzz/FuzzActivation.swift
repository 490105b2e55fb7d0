#if BRAMBLE_FUZZ
import BrambleCore
import Crypto

/// `activation`: what over-the-air activation reads from others: the request a node finds
/// in a mailbox (`etp.dat`, anyone can mail one), the response, confirmation and result
/// the relay passes between device and node, and what the device reads once activated
/// (the signed IT policy, the service books and the signed IT commands). Every decoder
/// runs on every input; each may throw only `PayloadError` (typed throws, checked below)
/// and must never trap.
enum ActivationTarget {
    static let target = FuzzTarget(
        name: "activation",
        covers: "ActivationRequest/Response/Confirm/Result.decode, SignedPolicy.decode (+ verified), ITPolicy.decode (+ validated, signed), ServiceBooks.decode, SignedCommand.decode (+ verified), ITCommand.decode (+ signed): decode, re-encode, decode",
        run: run, seeds: seeds)

    /// A fixed domain key, so the seeds are the same on every run (libFuzzer calls in
    /// from one thread; the key is only read).
    nonisolated(unsafe) static let domain = try! Curve25519.Signing.PrivateKey(rawRepresentation: [UInt8](repeating: 0x5A, count: 32))
    static let domainKey = Array(domain.publicKey.rawRepresentation)

    static func run(_ bytes: [UInt8]) {
        request(bytes)
        response(bytes)
        confirm(bytes)
        result(bytes)
        policy(bytes)
        signedPolicy(bytes)
        serviceBooks(bytes)
        command(bytes)
        signedCommand(bytes)
    }

    /// `decode` may throw only `PayloadError` (the typed throw makes the compiler hold it
    /// to that); nil when it did.
    static func decoded<T>(_ decode: () throws(PayloadError) -> T) -> T? {
        do throws(PayloadError) {
            return try decode()
        } catch {
            require(!error.reason.isEmpty, "a PayloadError without a reason")
            return nil
        }
    }

    static func request(_ bytes: [UInt8]) {
        guard let request = decoded({ () throws(PayloadError) in try ActivationRequest.decode(bytes) }) else { return }
        require(bytes.count <= Activation.maxMessageLength, "a request over \(Activation.maxMessageLength) bytes was read")
        require(request.sessionID.count == Activation.sessionIDLength && request.share.count == 32, "a request's session id or share of another length")
        let email = request.email.utf8
        require((3...Activation.maxEmailLength).contains(email.count) && email.count(where: { $0 == 0x40 }) == 1,
                "a request's address \(request.email.debugDescription) is not bounded with one '@'")
        require(!request.email.unicodeScalars.contains { $0.value <= 0x20 || (0x7F...0x9F).contains($0.value) },
                "a space or control character in a request's address \(request.email.debugDescription)")
        require(decoded({ () throws(PayloadError) in try ActivationRequest.decode(request.encoded()) }) == request, "re-encoding changed the request")
        // What the node computes from it before CPace.
        _ = Activation.channelIdentifier(email: ActivationPassword.canonicalEmail(request.email), pin: request.pin)
        _ = request.associatedData
    }

    static func response(_ bytes: [UInt8]) {
        guard let response = decoded({ () throws(PayloadError) in try ActivationResponse.decode(bytes) }) else { return }
        require(bytes.count <= Activation.maxMessageLength, "a response over \(Activation.maxMessageLength) bytes was read")
        require(SRPIdentifier.isValid(response.srpID), "a response from SRP ID \(response.srpID.debugDescription)")
        require(response.sessionID.count == Activation.sessionIDLength && response.domainKey.count == Activation.domainKeyLength
                    && response.share.count == 32 && response.confirmation.count == 64, "a response field of another length")
        require(decoded({ () throws(PayloadError) in try ActivationResponse.decode(response.encoded()) }) == response, "re-encoding changed the response")
        // The device pins the domain key it reads here; any 32 bytes must be usable or refused, never trap.
        _ = try? Curve25519.Signing.PublicKey(rawRepresentation: response.domainKey)
        _ = response.associatedData
    }

    static func confirm(_ bytes: [UInt8]) {
        guard let confirm = decoded({ () throws(PayloadError) in try ActivationConfirm.decode(bytes) }) else { return }
        require(bytes.count <= Activation.maxMessageLength, "a confirmation over \(Activation.maxMessageLength) bytes was read")
        require(confirm.sessionID.count == Activation.sessionIDLength && confirm.confirmation.count == 64, "a confirmation field of another length")
        require(decoded({ () throws(PayloadError) in try ActivationConfirm.decode(confirm.encoded()) }) == confirm, "re-encoding changed the confirmation")
    }

    static func result(_ bytes: [UInt8]) {
        guard let result = decoded({ () throws(PayloadError) in try ActivationResult.decode(bytes) }) else { return }
        require(bytes.count <= Activation.maxMessageLength, "a result over \(Activation.maxMessageLength) bytes was read")
        require(result.sessionID.count == Activation.sessionIDLength, "a result's session id of another length")
        require(result.reason.utf8.count <= Activation.maxReasonLength, "a result's reason over its bound")
        require(!result.reason.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F },
                "a control character in a result's reason \(result.reason.debugDescription)")
        require(decoded({ () throws(PayloadError) in try ActivationResult.decode(result.encoded()) }) == result, "re-encoding changed the result")
    }

    static func policy(_ bytes: [UInt8]) {
        guard let policy = decoded({ () throws(PayloadError) in try ITPolicy.decode(bytes) }) else { return }
        require(decoded({ () throws(PayloadError) in try policy.validated() }) == policy, "a decoded policy does not validate")
        require(decoded({ () throws(PayloadError) in try ITPolicy.decode(policy.encoded()) }) == policy, "re-encoding changed the policy")
        // Signed by the domain, it verifies to itself; by another key it does not.
        let signed = SignedPolicy.sign(policy, with: domain)
        require((try? signed.verified(domainKey: domainKey)) == policy, "a signed policy did not verify to itself")
        require((try? signed.verified(domainKey: Array(Curve25519.Signing.PrivateKey().publicKey.rawRepresentation))) == nil,
                "a policy verified under another domain's key")
        require(signed.digest == Array(SHA256.hash(data: signed.policy)), "a policy digest that is not SHA-256 of its bytes")
    }

    static func signedPolicy(_ bytes: [UInt8]) {
        guard let signed = decoded({ () throws(PayloadError) in try SignedPolicy.decode(bytes) }) else { return }
        require(signed.signature.count == 64 && signed.policy.count <= 4_096, "a signed policy's fields over their bounds")
        require(decoded({ () throws(PayloadError) in try SignedPolicy.decode(signed.encoded()) }) == signed, "re-encoding changed the signed policy")
        // Whatever the device reads, checking it either gives the policy its bytes hold or a refusal.
        do throws(SignedPolicy.Refused) {
            let policy = try signed.verified(domainKey: domainKey)
            require(decoded({ () throws(PayloadError) in try ITPolicy.decode(signed.policy) }) == policy, "a verified policy is not what its bytes hold")
        } catch {
            require(!error.description.isEmpty, "a refusal without a reason")
        }
        // The device's own reading of the claimed policy, for its refusal report.
        _ = decoded({ () throws(PayloadError) in try ITPolicy.decode(signed.policy) })
        _ = try? signed.verified(domainKey: Array(signed.policy.prefix(32)))
    }

    static func serviceBooks(_ bytes: [UInt8]) {
        guard let books = decoded({ () throws(PayloadError) in try ServiceBooks.decode(bytes) }) else { return }
        require(books.books.count <= 32, "more than 32 service books")
        for b in books.books {
            require(b.service.utf8.count <= 16 && b.identifier.utf8.count <= 255 && b.name.utf8.count <= 128, "a service book field over its bound")
        }
        require(decoded({ () throws(PayloadError) in try ServiceBooks.decode(books.encoded()) }) == books, "re-encoding changed the service books")
    }

    static func command(_ bytes: [UInt8]) {
        guard let command = decoded({ () throws(PayloadError) in try ITCommand.decode(bytes) }) else { return }
        // Only a lock carries a verifier, and then one of the lengths the device derives.
        require((command.kind == .lock) == (command.lock != nil), "a \(command.kind.name) command with\(command.lock == nil ? "out" : "") a verifier")
        if let lock = command.lock {
            require(lock.salt.count == DeviceLock.saltLength && lock.verifier.count == DeviceLock.verifierLength, "a lock's salt or verifier of another length")
        }
        require(ITCommand.Kind(name: command.kind.name) == command.kind, "a command kind whose name does not read back")
        require(decoded({ () throws(PayloadError) in try ITCommand.decode(command.encoded()) }) == command, "re-encoding changed the command")
        // Signed by the domain, it verifies to itself on its own device; by another key, or
        // on another device, it does not. (No `DeviceLock.matches`: scrypt is far too slow here.)
        let signed = SignedCommand.sign(command, with: domain)
        require((try? signed.verified(domainKey: domainKey, pin: command.pin)) == command, "a signed command did not verify to itself")
        require((try? signed.verified(domainKey: Array(Curve25519.Signing.PrivateKey().publicKey.rawRepresentation), pin: command.pin)) == nil,
                "a command verified under another domain's key")
        require((try? signed.verified(domainKey: domainKey, pin: PIN(command.pin.value &+ 1))) == nil, "a command verified on another device")
        require(decoded({ () throws(PayloadError) in try SignedCommand.decode(signed.encoded()) }) == signed, "re-encoding changed the signed command")
    }

    static func signedCommand(_ bytes: [UInt8]) {
        guard let signed = decoded({ () throws(PayloadError) in try SignedCommand.decode(bytes) }) else { return }
        require(signed.signature.count == 64 && signed.command.count <= 256, "a signed command's fields over their bounds")
        require(decoded({ () throws(PayloadError) in try SignedCommand.decode(signed.encoded()) }) == signed, "re-encoding changed the signed command")
        // Whatever the device reads, checking it either gives the command its bytes hold or a refusal.
        let claimed = decoded({ () throws(PayloadError) in try ITCommand.decode(signed.command) })
        do throws(SignedPolicy.Refused) {
            let command = try signed.verified(domainKey: domainKey, pin: claimed?.pin ?? PIN(0))
            require(claimed == command, "a verified command is not what its bytes hold")
            // The labels keep the two apart: a command's signature is no policy's.
            if let asPolicy = decoded({ () throws(PayloadError) in try SignedPolicy.decode(signed.encoded()) }) {
                require((try? asPolicy.verified(domainKey: domainKey)) == nil, "a command's signature verified as a policy's")
            }
        } catch {
            require(!error.description.isEmpty, "a refusal without a reason")
        }
        _ = try? signed.verified(domainKey: Array(signed.command.prefix(32)), pin: claimed?.pin ?? PIN(0))
    }

    static func seeds() -> [(name: String, bytes: [UInt8])] {
        let sid: [UInt8] = Array(0..<16)
        let pin = PIN(0x2A00_F00D)
        let share = [UInt8](repeating: 0xA1, count: 32)
        let policy = ITPolicy(name: "sales-eu", version: 3, passwordRequired: true, minPasswordLength: 8, lockTimeoutMinutes: 30,
                              allowedServices: ["push", "mail"])
        // Fixed bytes, not scrypt of a password: the decoder reads any 16 + 32 bytes alike.
        let lock = ITCommand(id: 41, pin: pin, kind: .lock,
                             lock: DeviceLock(salt: [UInt8](repeating: 0x5C, count: DeviceLock.saltLength),
                                              verifier: [UInt8](repeating: 0xC5, count: DeviceLock.verifierLength)),
                             issuedAt: 1_767_225_600)
        return [
            ("request.bin", ActivationRequest(sessionID: sid, pin: pin, email: "ann@example.com", share: share).encoded()),
            ("request-utf8.bin", ActivationRequest(sessionID: sid, pin: PIN(.max), email: "jörg@bücher.example", share: share).encoded()),
            ("response.bin", ActivationResponse(sessionID: sid, srpID: "bramble", domainKey: domainKey,
                                                share: [UInt8](repeating: 0xB2, count: 32), confirmation: [UInt8](repeating: 0x7B, count: 64)).encoded()),
            ("confirm.bin", ActivationConfirm(sessionID: sid, confirmation: [UInt8](repeating: 0x7A, count: 64)).encoded()),
            ("result-accepted.bin", ActivationResult(sessionID: sid, accepted: true).encoded()),
            ("result-refused.bin", ActivationResult(sessionID: sid, accepted: false, reason: "the key confirmation failed: check the activation password").encoded()),
            ("policy.bin", policy.encoded()),
            ("policy-standard.bin", ITPolicy.standard.encoded()),
            ("signed-policy.bin", SignedPolicy.sign(policy, with: domain).encoded()),
            ("service-books.bin", ServiceBooks.offered(srpID: "bramble", email: "ann@example.com", imOffered: true, policy: .standard).encoded()),
            ("command-lock.bin", lock.encoded()),
            ("command-wipe-work.bin", ITCommand(id: 42, pin: pin, kind: .wipeWork, issuedAt: 1_767_225_660).encoded()),
            ("signed-command-lock.bin", SignedCommand.sign(lock, with: domain).encoded()),
        ]
    }
}

#endif
