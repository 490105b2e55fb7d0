/// One message on a Bramble TCP link (device ↔ relay, or relay ↔ server over SRP).
///
/// On the wire: `u32 length` (bytes that follow), `u8 version`, `u8 type`, then the
/// type's fields, all big-endian. See `Frame+Codec.swift`.
public enum Frame: Equatable, Sendable {
    /// Device → relay, the answer to the relay's challenge: who the device is, which BES
    /// it belongs to, and the proof that it holds the PIN's key (`DeviceProof`).
    case deviceHello(pin: PIN, srpID: String, proof: [UInt8])
    /// Relay → device: the hello was accepted.
    case deviceWelcome
    /// Relay → server or device, first frame on every link: prove you hold your key.
    case challenge(nonce: [UInt8])
    /// Server → relay: registration of an SRP ID at an epoch, with the HMAC proof.
    case register(srpID: String, epoch: UInt64, proof: [UInt8])
    /// Relay → server: the registration stands; PINs of this SRP ID now route here.
    case registered(srpID: String, epoch: UInt64)
    /// End-to-end device data; the relay routes it by PIN and never opens `body`.
    case data(DataFrame)
    /// Relay → server: a device of this SRP ID connected (`true`) or went away.
    case presence(pin: PIN, online: Bool)
    /// Either direction: a refusal or failure, with a code and an operator-readable reason.
    case error(code: ErrorCode, message: String)
    case ping(UInt64)
    case pong(UInt64)
    /// Relay → server: the relay holds `heldEpoch` for the server's SRP ID, so this
    /// session is fenced (a registration below it, or a session a registration at
    /// `heldEpoch` displaced). The relay closes the link after it.
    case epochRefused(reason: EpochRefusal, heldEpoch: UInt64)
    /// Server → relay: the relay keys its devices prove themselves with (`DeviceProof`).
    case deviceKeys(DeviceKeyUpdate)
    /// Over-the-air activation (`Activation`), before the device has a key the relay
    /// knows: its request, which the relay mails to the user, and the exchange after it.
    case activation(ActivationFrame)

    public enum FrameType: UInt8, Sendable, CaseIterable {
        case deviceHello = 1, deviceWelcome = 2, challenge = 3, register = 4, registered = 5
        case data = 6, presence = 7, error = 8, ping = 9, pong = 10, epochRefused = 11, deviceKeys = 12
        case activation = 13
    }

    public enum ErrorCode: UInt16, Sendable {
        case badFrame = 1
        case authenticationFailed = 2
        // 3 was `staleEpoch`, now the `epochRefused` frame; not to be reused. An old
        // relay's code 3 decodes as `other`.
        case lockedOut = 4
        /// A device's connection, after another connection said hello for its PIN.
        case displaced = 5
        case unknownSRPID = 6
        case protocolViolation = 7
        /// A device hello for a PIN its BES has not registered with the relay (or revoked).
        case unknownDevice = 8
        /// The relay is at a connection limit; try again later.
        case overloaded = 9
        /// An activation request the relay will not mail (no mail route for the address's
        /// domain, or over-the-air activation is not offered).
        case activationRefused = 10
        case other = 99
    }

    public var type: FrameType {
        switch self {
        case .deviceHello: .deviceHello
        case .deviceWelcome: .deviceWelcome
        case .challenge: .challenge
        case .register: .register
        case .registered: .registered
        case .data: .data
        case .presence: .presence
        case .error: .error
        case .ping: .ping
        case .pong: .pong
        case .epochRefused: .epochRefused
        case .deviceKeys: .deviceKeys
        case .activation: .activation
        }
    }
}

/// Relay keys of devices (`DeviceProof.relayKey`), sent by the serving node over its SRP
/// link. After each registration the node sends its whole set in `sync` parts ending with
/// a `syncEnd` part: the relay then forgets the SRP ID's PINs the set left out, and a
/// hello for a PIN it does not know is refused rather than held. `update` parts carry
/// devices provisioned or removed since.
public struct DeviceKeyUpdate: Equatable, Sendable, CustomStringConvertible {
    public enum Phase: UInt8, Sendable { case update = 0, sync = 1, syncEnd = 2 }

    public struct Entry: Equatable, Sendable {
        public var pin: PIN
        /// The 32-byte relay key, or empty: the device is removed.
        public var key: [UInt8]
        public init(pin: PIN, key: [UInt8]) { (self.pin, self.key) = (pin, key) }
        public static func revoked(_ pin: PIN) -> Entry { Entry(pin: pin, key: []) }
    }

    /// Entries per frame: 1,024 × 37 bytes stays far below a frame's bound.
    public static let maxEntries = 1_024
    public static let keyLength = 32

    public var phase: Phase
    public var entries: [Entry]

    public init(phase: Phase, entries: [Entry]) { (self.phase, self.entries) = (phase, entries) }

    /// Never shows a key.
    public var description: String { "DeviceKeyUpdate(\(phase), \(entries.count) entries)" }
}

/// One step of an over-the-air activation. The relay reads only the routing fields;
/// `body` is the step's message (`ActivationRequest`, `ActivationResponse`, …).
public struct ActivationFrame: Equatable, Sendable {
    public enum Phase: UInt8, Sendable {
        /// Device → relay: mail `body` (etp.dat) to `email`.
        case request = 1
        /// Server → relay → the device activating `pin`; `srpID` is the server's.
        case response = 2
        /// Device → relay → the server of `srpID`.
        case confirm = 3
        /// Server → relay → the device: the outcome.
        case result = 4
    }

    public var phase: Phase
    public var pin: PIN
    /// Request only: where the relay mails it.
    public var email: String
    /// The answering server's SRP ID (response, result) or the one addressed (confirm).
    public var srpID: String
    public var body: [UInt8]

    public init(phase: Phase, pin: PIN, email: String = "", srpID: String = "", body: [UInt8]) {
        (self.phase, self.pin, self.email, self.srpID, self.body) = (phase, pin, email, srpID, body)
    }
}

/// Why the relay fenced a server session (`Frame.epochRefused`).
public enum EpochRefusal: UInt8, Sendable {
    /// The registration's epoch is below the highest the relay holds for the SRP ID.
    case stale = 1
    /// A registration at a higher or equal epoch took the SRP ID's session over.
    case displaced = 2
}

/// Device data: the header travels in clear (the relay routes on `pin`) and is bound to
/// the sealed body as AES-GCM associated data.
public struct DataFrame: Equatable, Sendable {
    public var pin: PIN
    public var service: Service
    /// Per-device sequence number of the item (server → device), or the device's own
    /// request number (device → server).
    public var ref: UInt64
    public var flags: Flags
    /// `nonce ‖ AES-256-GCM(zlib(payload)) ‖ tag`, see `Envelope`.
    public var body: [UInt8]

    public init(pin: PIN, service: Service, ref: UInt64, flags: Flags, body: [UInt8]) {
        self.pin = pin
        self.service = service
        self.ref = ref
        self.flags = flags
        self.body = body
    }

    public enum Service: UInt8, Sendable {
        /// A pushed item for the device to show (server → device).
        case push = 1
        /// Acknowledgements of shown items (device → server).
        case ack = 2
        /// A new mail, `MailItem` (server → device; delivered and acknowledged like a push).
        case mail = 3
        /// The next chunk of a mail's text, `MoreChunk` (server → device, likewise).
        case more = 4
        /// A device's request, `DeviceRequest`, under the device's request number (device → server).
        case request = 5
        /// The request numbers the server recorded, an `AckList` (server → device).
        case requestAck = 6
        /// What became of a device's send, reply or forward, `SentOutcome` (server →
        /// device; delivered and acknowledged like a mail).
        case sent = 7
        /// A mail's state in the mailbox (read, deleted, folder), `MessageState` (server →
        /// device; delivered and acknowledged like a mail).
        case state = 8
        /// The user's folders, `FolderList` (server → device, likewise).
        case folders = 9
        /// An IM login's outcome or a session's end, `IMSessionOutcome` (server → device,
        /// delivered and acknowledged like a mail).
        case imSession = 10
        /// An instant message received or sent, `IMMessage` (likewise).
        case im = 11
        /// The user's IM contacts with their presence, `IMContactList` (likewise).
        case imContacts = 12
        /// A contact's presence changed, `IMPresenceUpdate` (likewise).
        case imPresence = 13
        /// The user's IT policy, a `SignedPolicy` (server → device, likewise); the device
        /// confirms it with a `policyApplied` request.
        case policy = 14
        /// The services the device may use, `ServiceBooks` (likewise), sent once the
        /// device confirmed its policy.
        case serviceBooks = 15
        /// An IT administration command, a `SignedCommand` (likewise); the device confirms
        /// it with a `commandDone` request.
        case command = 16

        /// The services the server delivers through a device's window (sequence numbered,
        /// acknowledged with `ack`).
        public var isDelivered: Bool {
            switch self {
            case .push, .mail, .more, .sent, .state, .folders, .imSession, .im, .imContacts, .imPresence, .policy, .serviceBooks, .command: true
            case .ack, .request, .requestAck: false
            }
        }
    }

    public struct Flags: OptionSet, Sendable, Hashable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// Set on device → server frames; part of the associated data, so a frame cannot
        /// be reflected back in the other direction.
        public static let fromDevice = Flags(rawValue: 1 << 0)
        /// The item was sent before and not acknowledged.
        public static let resend = Flags(rawValue: 1 << 1)
    }

    /// The bytes bound to the ciphertext: version, type, pin, service, ref, flags.
    /// The resend flag is excluded: a resend re-uses the sealed body as committed.
    public var associatedData: [UInt8] {
        var out: [UInt8] = [Frame.version, Frame.FrameType.data.rawValue]
        withUnsafeBytes(of: pin.value.bigEndian) { out.append(contentsOf: $0) }
        out.append(service.rawValue)
        withUnsafeBytes(of: ref.bigEndian) { out.append(contentsOf: $0) }
        out.append(flags.subtracting(.resend).rawValue)
        return out
    }
}
