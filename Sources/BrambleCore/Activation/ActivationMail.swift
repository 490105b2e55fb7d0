import Foundation

/// The mails of activation: the request the relay sends to the user's mailbox (BES: the
/// BlackBerry Infrastructure's mail with `etp.dat`), and the instructions the
/// administrator can have sent to the user. Pure: CRLF, headers free of control
/// characters, base64 in 76-column lines.
public enum ActivationMail {
    /// The request mail: `etp` as the `etp.dat` attachment, with `X-Bramble-Activation` and
    /// the relay's seals (`Activation.seal`), one per SRP ID.
    public static func request(to email: String, from sender: String, etp: [UInt8], seals: [(srpID: String, mac: [UInt8])] = [],
                               messageID: String, date: Date) -> [UInt8] {
        let boundary = "bramble-activation-\(messageID.utf8.reduce(UInt32(2_166_136_261)) { ($0 ^ UInt32($1)) &* 16_777_619 })"
        var lines = [
            "From: Bramble activation <\(sender)>",
            "To: <\(Activation.printable(email))>",
            "Subject: Bramble device activation request",
            "Date: \(MessageComposer.rfc5322Date(date))",
            "Message-ID: \(messageID)",
            "\(Activation.mailHeader): 1",
        ] + seals.map { "\(Activation.sealHeader): \($0.srpID) \(Data($0.mac).base64EncodedString())" } + [
            "MIME-Version: 1.0",
            "Content-Type: multipart/mixed; boundary=\"\(boundary)\"",
            "",
            "--\(boundary)",
            "Content-Type: text/plain; charset=us-ascii",
            "",
            "This message carries a request to activate a device for this mailbox.",
            "Bramble removes it from the mailbox when it reads it.",
            "",
            "--\(boundary)",
            "Content-Type: application/octet-stream; name=\"\(Activation.attachmentName)\"",
            "Content-Disposition: attachment; filename=\"\(Activation.attachmentName)\"",
            "Content-Transfer-Encoding: base64",
            "",
        ]
        let encoded = Data(etp).base64EncodedString()
        var i = encoded.startIndex
        while i < encoded.endIndex {
            let end = encoded.index(i, offsetBy: 76, limitedBy: encoded.endIndex) ?? encoded.endIndex
            lines.append(String(encoded[i..<end]))
            i = end
        }
        lines += ["--\(boundary)--", ""]
        return Array(lines.joined(separator: "\r\n").utf8)
    }

    /// The instructions for the user (`bramble user activation --send-instructions`):
    /// what to type on the device. The password goes only in this mail, to the user's
    /// own mailbox, as BES's "send an email with activation instructions" did.
    public static func instructions(to email: String, from sender: String, password: String, expires: Date,
                                    messageID: String, date: Date) -> [UInt8] {
        let clean = Activation.printable
        let lines = [
            "From: Bramble administrator <\(clean(sender))>",
            "To: <\(clean(email))>",
            "Subject: Activate your device",
            "Date: \(MessageComposer.rfc5322Date(date))",
            "Message-ID: \(clean(messageID))",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
            "",
            "To activate your device over the air, open Enterprise Activation on it and type:",
            "",
            "  E-mail address:       \(clean(email))",
            "  Activation password:  \(clean(password))",
            "",
            "(With the Bramble device simulator: bramble-device activate --email \(clean(email))",
            "--password-file FILE --relay RELAY, with the password in FILE and the relay your",
            "administrator names.)",
            "",
            "The password can be used once, and expires \(MessageComposer.rfc5322Date(expires)).",
            "After five failed attempts activation is locked until your administrator sets",
            "a new password.",
            "",
        ]
        return Array(lines.joined(separator: "\r\n").utf8)
    }
}
