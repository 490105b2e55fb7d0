/// What the mail server calls: `POST /mail/notify?user=EMAIL`, with the mail notify token
/// (not the admin token) as its bearer token, when EMAIL's INBOX got mail. No body. The
/// primary answers 202 at once and checks the mailbox; a standby answers 409
/// `not_primary`.
public enum MailAPI {
    public static let notify = "/mail/notify"
    /// Longest `user` accepted.
    public static let maxUserLength = 320
}
