import BrambleCore
import Crypto
import Foundation
import Testing

/// Device master keys at rest: sealed under the key-encryption key, bound to their PIN.
@Suite struct MasterKeyVaultTests {
    let vault = MasterKeyVault(kek: SymmetricKey(size: .bits256))
    let key = SymmetricKey(size: .bits256)

    @Test func aSealedKeyOpensUnderItsKEKAndPINAndHoldsNoPlainKey() throws {
        let stored = vault.seal(key, pin: PIN(0x2A00_F00D))
        #expect(stored.hasPrefix("v1.") && MasterKeyVault.isSealed(stored))
        #expect(!stored.contains(key.base64), "the plain key is not in the stored value")
        #expect(try vault.open(stored, pin: PIN(0x2A00_F00D)) == key)
        // A fresh nonce each time: sealing twice gives two values.
        #expect(vault.seal(key, pin: PIN(0x2A00_F00D)) != stored)
    }

    @Test func anotherKEKAnotherPINAPlainKeyOrAnAlteredValueDoNotOpen() {
        let pin = PIN(0x2A00_F00D)
        let stored = vault.seal(key, pin: pin)
        let other = MasterKeyVault(kek: SymmetricKey(size: .bits256))
        #expect(throws: MasterKeyVault.OpenFailure(pin: pin)) { try other.open(stored, pin: pin) }
        #expect(throws: MasterKeyVault.OpenFailure.self) { try vault.open(stored, pin: PIN(0x2A00_F00E)) }
        // A plain key (as stored before sealing, or planted by someone without the KEK).
        #expect(throws: MasterKeyVault.OpenFailure.self) { try vault.open(key.base64, pin: pin) }
        var bytes = Array(Data(base64Encoded: String(stored.dropFirst(3)))!)
        bytes[bytes.count / 2] ^= 1
        #expect(throws: MasterKeyVault.OpenFailure.self) { try vault.open("v1." + Data(bytes).base64EncodedString(), pin: pin) }
        #expect(throws: MasterKeyVault.OpenFailure.self) { try vault.open("v1.not base64", pin: pin) }
        #expect(throws: MasterKeyVault.OpenFailure.self) { try vault.open("v1.", pin: pin) }
    }

    @Test func duringARotationThePreviousKEKStillOpensAndIsReportedForResealing() throws {
        let pin = PIN(0x2A00_F00D)
        let oldKEK = SymmetricKey(size: .bits256), newKEK = SymmetricKey(size: .bits256)
        let underOld = MasterKeyVault(kek: oldKEK).seal(key, pin: pin)
        let rotating = MasterKeyVault(kek: newKEK, previous: oldKEK)
        let opened = try rotating.opened(underOld, pin: pin)
        #expect(opened.key == key && opened.underPrevious)
        let resealed = rotating.seal(key, pin: pin)
        #expect(try rotating.opened(resealed, pin: pin).underPrevious == false)
        #expect(throws: MasterKeyVault.OpenFailure.self) { try MasterKeyVault(kek: oldKEK).open(resealed, pin: pin) }
        #expect(throws: MasterKeyVault.OpenFailure.self) { try MasterKeyVault(kek: newKEK).open(underOld, pin: pin) }
    }
}
