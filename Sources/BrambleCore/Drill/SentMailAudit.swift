/// Mail the devices sent during a drill, judged only from evidence outside the nodes: each
/// send the server acknowledged to its device (the device's `request` line, whose number
/// gives the mail's Message-ID, `OutgoingMessageID`) against the copies found by that
/// Message-ID in the recipient's INBOX and in the sender's Sent folder (read over IMAP as
/// each user).
public struct SentMailAudit: Equatable, Sendable {
    /// A send acknowledged to its device.
    public struct Acked: Hashable, Sendable {
        public var messageID: String
        /// The sending user's address: the copy belongs in its Sent folder.
        public var sender: String
        /// The recipient's address: the mail belongs in its INBOX.
        public var recipient: String
        public init(messageID: String, sender: String, recipient: String) {
            (self.messageID, self.sender, self.recipient) = (messageID, sender, recipient)
        }
    }

    /// The copies of each Message-ID found in one user's folder.
    public typealias Copies = [String: Int]

    /// Sends acknowledged to the devices (each Message-ID once).
    public var acked: Int
    /// Acknowledged and found in the recipient's INBOX and in the sender's Sent.
    public var delivered: Int
    /// Acknowledged and missing from either.
    public var lost: Int
    /// Extra copies: a Message-ID found n times in a folder counts n − 1, over every
    /// folder read (the caller reads only the drill's mail).
    public var duplicates: Int
    /// The Message-IDs lost, sorted.
    public var missing: [String]

    /// `inbox` and `sent`: by user address, the copies found in that user's folder.
    public init(acked: some Sequence<Acked>, inbox: [String: Copies], sent: [String: Copies]) {
        var byID: [String: Acked] = [:]
        for a in acked { byID[a.messageID] = a }
        let missing = byID.values.filter { a in
            (inbox[a.recipient]?[a.messageID] ?? 0) == 0 || (sent[a.sender]?[a.messageID] ?? 0) == 0
        }.map(\.messageID).sorted()
        self.acked = byID.count
        self.lost = missing.count
        self.delivered = byID.count - missing.count
        self.duplicates = (Array(inbox.values) + Array(sent.values)).reduce(0) { total, folder in
            total + folder.values.reduce(0) { $0 + max(0, $1 - 1) }
        }
        self.missing = missing
    }

    /// Something was acknowledged, and every acknowledged mail is in both folders once.
    public var passed: Bool { acked > 0 && lost == 0 && duplicates == 0 }
}
