import Foundation

/// A password given to a command line tool in a file ('-': standard input), never on the
/// command line (where `ps` shows it): the text without its trailing line breaks.
public enum PasswordFile {
    /// Far more than any password the project accepts; a larger file is not one.
    public static let maxBytes = 4_096

    /// The password, or nil when the file cannot be read, is larger than `maxBytes` or is
    /// not UTF-8 (an empty one is the caller's to refuse, with its own rules).
    public static func read(_ path: String) -> String? {
        let handle = path == "-" ? FileHandle.standardInput : FileHandle(forReadingAtPath: path)
        guard let handle else { return nil }
        defer { if path != "-" { try? handle.close() } }
        let data: Data
        // nil from `read` is the end of the file: an empty one.
        do { data = try handle.read(upToCount: maxBytes + 1) ?? Data() } catch { return nil }
        guard data.count <= maxBytes, let text = String(data: data, encoding: .utf8) else { return nil }
        return text.trimmingCharacters(in: .newlines)
    }
}
