import BrambleCore
import Crypto

/// What a test playing a device says to the relay.
public enum TestDevice {
    /// The hello that answers `challenge` for `pin` with a proof under `master` (a missing
    /// or other frame gets a hello with a zero nonce's proof, which the relay refuses).
    public static func hello(pin: PIN, master: SymmetricKey, srpID: String = "bramble", answering challenge: Frame?) -> Frame {
        var nonce = [UInt8](repeating: 0, count: Frame.nonceLength)
        if case .challenge(let n)? = challenge { nonce = n }
        let proof = DeviceProof.compute(relayKey: DeviceProof.relayKey(master: master, pin: pin), nonce: nonce, pin: pin, srpID: srpID)
        return .deviceHello(pin: pin, srpID: srpID, proof: proof)
    }
}
