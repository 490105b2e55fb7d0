import BrambleCore
import Crypto
import BrambleNet
import Foundation
import NIOCore
import NIOSSL

/// Mails a device's activation request to the user's mailbox, as BES's BlackBerry
/// Infrastructure did: SMTP to the organisation's mail server (its MX role), the request
/// as the `etp.dat` attachment. The relay never reads the request: CPace protects it.
struct ActivationMailer: Sendable {
    struct Configuration: Sendable {
        /// The mail server's SMTP listener (the MX for the activation domains).
        var smtp: HostPort
        /// TLS from the first byte, the server verified against this context's CA; nil:
        /// plaintext SMTP, asked for by name.
        var tls: NIOSSLContext?
        /// The envelope sender and From of the request mails.
        var sender: String
        /// The SRP keys: each request mail carries a seal for every SRP ID.
        var keys: [String: SymmetricKey]
    }

    let configuration: Configuration

    /// Sends one request mail; throws with the mail server's refusal or the connection's
    /// error (the caller tells the device).
    func send(_ request: ActivationFrame) async throws {
        let id = "<activation.\(request.pin).\(UInt64.random(in: 0...UInt64.max))@bramble.relay>"
        let seals = configuration.keys.sorted { $0.key < $1.key }.map { (srpID: $0.key, mac: Activation.seal(etp: request.body, srpKey: $0.value)) }
        let message = ActivationMail.request(to: request.email, from: configuration.sender, etp: request.body, seals: seals, messageID: id, date: Date())
        let sender = configuration.sender
        try await SMTPSession.with(to: configuration.smtp, tls: configuration.tls, helo: "bramble-relay", connectTimeout: .seconds(3)) { session in
            _ = try await session.send(from: sender, to: [request.email], message: String(decoding: message, as: UTF8.self))
        }
    }
}
