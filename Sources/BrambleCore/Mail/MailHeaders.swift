/// Reading one field of a message's header block (RFC 5322 §2.2): what a fetch of
/// `BODY[HEADER.FIELDS (…)]` or a whole message starts with.
public enum MailHeaders {
    /// The most of a header block read: a References field of a long thread fits many
    /// times over, and a hostile one costs no more than this.
    public static let maxHeaderBytes = 64 * 1024

    /// The first `name` field's value, unfolded (continuation lines joined by one space),
    /// trimmed and made printable; nil when the block (up to its first empty line, at
    /// most `maxHeaderBytes`) has no such field. The name matches without case.
    public static func value(_ name: String, in header: some Collection<UInt8>) -> String? {
        let text = String(decoding: header.prefix(maxHeaderBytes), as: UTF8.self)
        let wanted = name.lowercased() + ":"
        var value: String?
        // Split on bytes' line ends: Swift counts "\r\n" as one Character, which
        // `isNewline` takes as one break.
        for line in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            if line.isEmpty { break }  // the end of the header block
            if let v = value {
                guard line.first == " " || line.first == "\t" else { break }
                value = v + " " + line.trimmingCharacters(in: .whitespaces)
            } else if line.lowercased().hasPrefix(wanted) {
                value = line.dropFirst(wanted.count).trimmingCharacters(in: .whitespaces)
            }
        }
        return value.map(MailText.printable)
    }
}
