#if BRAMBLE_FUZZ
import BrambleCore
import Crypto
import Foundation

/// `settings`: the files the daemons and devices read at start: the settings file
/// (`key = value`, both daemons), the SRP key file (`SRP_ID BASE64_KEY` lines, relay and
/// node), a device's credential file (JSON from `bramble device provision`) and its
/// shown-state file (JSON). Every parser runs on every input.
enum SettingsTarget {
    static let target = FuzzTarget(
        name: "settings",
        covers: "SettingsFile.parse (+ re-render), SRPKeyFile.parse (+ re-render), DeviceCredential JSON + validated(), ShownSet state JSON",
        run: run)

    static func run(_ bytes: [UInt8]) {
        // The daemons read the files as UTF-8 text, refusing anything else.
        if let text = String(validating: bytes, as: UTF8.self) {
            settingsFile(text)
            srpKeys(text)
        }
        let data = Data(bytes)
        credential(data)
        shownState(data)
    }

    static func settingsFile(_ text: String) {
        guard let settings = try? SettingsFile.parse(text) else { return }
        var keys = Set<String>(), lastLine = 0
        for s in settings {
            require(keys.insert(s.key).inserted, "'\(s.key)' twice")
            require(s.line > lastLine, "settings out of line order")
            lastLine = s.line
            require(!s.key.isEmpty && s.key.utf8.count <= 64 && s.key.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D },
                    "a setting named \(s.key.debugDescription)")
            require(!s.value.contains(where: \.isNewline) && !s.value.utf8.contains(0), "a line break or NUL in a value")
            _ = SettingsFile.environmentName(s.key)
        }
        // Written back, quoted, the settings read the same (ASCII values: a combining mark
        // after the quote would join it into one character).
        guard settings.allSatisfy({ $0.value.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F } }) else { return }
        let rendered = settings.map { "\($0.key) = \"\($0.value)\"" }.joined(separator: "\n")
        let again = try? SettingsFile.parse(rendered)
        require(again?.map { [$0.key, $0.value] } == settings.map { [$0.key, $0.value] }, "a re-rendered settings file read differently")
    }

    static func srpKeys(_ text: String) {
        guard let keys = try? SRPKeyFile.parse(text, path: "srp-keys") else { return }
        require(!keys.isEmpty, "an SRP key file of no keys accepted")
        for (id, key) in keys {
            require(SRPIdentifier.isValid(id) && key.bitCount == 256, "SRP ID \(id.debugDescription) or its key is invalid")
        }
        let rendered = keys.map { "\($0.key) \($0.value.base64)" }.joined(separator: "\n")
        let again = try? SRPKeyFile.parse(rendered, path: "srp-keys")
        require(again?.mapValues(\.base64) == keys.mapValues(\.base64), "a re-rendered SRP key file read differently")
    }

    /// As `CredentialFile.load`: the JSON, then every field checked.
    static func credential(_ data: Data) {
        guard let credential = try? JSONDecoder().decode(DeviceCredential.self, from: data),
              let (pin, key) = try? credential.validated() else { return }
        require(PIN(pin.description) == pin, "PIN \(pin) does not read back")
        let again = DeviceCredential(pin: pin, email: credential.email, srpID: credential.srpID, masterKey: key)
        require((try? again.validated())?.pin == pin, "a re-made credential does not validate")
    }

    /// As `ShownStore`: the state file, then what the device does with it: asks whether a
    /// sequence number was shown, and records new ones.
    static func shownState(_ data: Data) {
        guard var shown = try? JSONDecoder().decode(ShownSet.self, from: data) else { return }
        let probes = [shown.highWater, shown.highWater &+ 1, shown.highWater &+ 2, UInt64.max - 1, .max] + shown.above.sorted().prefix(4)
        for seq in probes {
            let had = shown.contains(seq)
            require(shown.insert(seq) == !had, "insert(\(seq)) disagreed with contains")
            require(shown.contains(seq), "\(seq) not shown after insert")
        }
        require((try? JSONDecoder().decode(ShownSet.self, from: JSONEncoder().encode(shown))) == shown, "the state does not read back")
    }
}

#endif
