import BrambleCore
import Foundation

extension AdminAPI {
    /// A user's over-the-air activation: `POST` sets a new activation password.
    public static func activation(_ email: String) -> String { user(email) + "/activation" }
}

/// `POST /admin/users/{email}/activation`: a new one-time activation password, given
/// (`password`) or made by the node (`generate`), valid for `expires_seconds` (BES: 48 h);
/// `send_instructions` mails the user what to type on the device. A new password clears
/// the failed runs and unlocks a locked activation.
public struct NewActivation: Codable, Sendable, Equatable {
    public var password: String?
    public var generate: Bool?
    public var expires_seconds: Int?
    public var send_instructions: Bool?
    public init(password: String? = nil, generate: Bool? = nil, expires_seconds: Int? = nil, send_instructions: Bool? = nil) {
        (self.password, self.generate, self.expires_seconds, self.send_instructions) = (password, generate, expires_seconds, send_instructions)
    }

    /// The longest a password may stay valid: 30 days.
    public static let maxExpirySeconds = 30 * 86_400
}

/// A user's activation as `bramble user show` gives it. `state`: none (no password set),
/// pending (a password waits for the device), in_progress (a run is under way: request
/// answered, or the key confirmed and the policy and service books on their way), locked
/// (5 runs failed: set a new password), completed (the device acknowledged its service
/// books), expired (the password's time passed before a device used it).
public struct ActivationStatus: Codable, Sendable, Equatable {
    public var state: String
    public var failures: Int
    public var expires_at: Date?
    /// The device being activated, or activated.
    public var pin: String?
    public var last_event: String
    public var last_event_at: Date?
    public init(state: String, failures: Int, expires_at: Date?, pin: String?, last_event: String, last_event_at: Date?) {
        (self.state, self.failures, self.expires_at, self.pin, self.last_event, self.last_event_at) = (state, failures, expires_at, pin, last_event, last_event_at)
    }

    public static let none = ActivationStatus(state: "none", failures: 0, expires_at: nil, pin: nil, last_event: "", last_event_at: nil)
}

/// The answer to a new activation password: the state, the generated password (only when
/// the node made it, shown once to the administrator), and whether instructions went out.
public struct ActivationSet: Codable, Sendable, Equatable {
    public var email: String
    public var activation: ActivationStatus
    public var password: String?
    public var instructions_sent: Bool
    /// Why the instructions could not be mailed (the password is set all the same).
    public var instructions_error: String?
    public init(email: String, activation: ActivationStatus, password: String?, instructions_sent: Bool, instructions_error: String? = nil) {
        (self.email, self.activation, self.password, self.instructions_sent) = (email, activation, password, instructions_sent)
        self.instructions_error = instructions_error
    }
}
