#if canImport(Glibc)
import Glibc
#endif

/// Secret files (keys, tokens, passwords) must be regular files that only their owner
/// can read or write: a key that others could read is no longer a secret, so it is
/// refused with an error that says what to do. New ones are made 0600 from the first
/// byte, never over an existing file.
public enum SecretFilePermissions {
    /// The most a secret file may hold (keys, tokens, a credential, a status file).
    public static let maxBytes = 1 << 20

    /// Reads a secret file through one descriptor that is checked as it is read, so the
    /// file cannot be swapped between the check and the read: opened without following a
    /// symlink, a regular file of this user's (or root's), readable by no one else.
    public static func read(_ path: String, what: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            let reason = errno == ELOOP ? "it is a symbolic link" : "errno \(errno)"
            throw SecretFileError("\(what) file \(path) cannot be read (\(reason))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw SecretFileError("\(what) file \(path) is not a regular file")
        }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw SecretFileError("\(what) file \(path) is readable by others (mode \(String(mode, radix: 8))); chmod 600 it")
        }
        guard info.st_uid == geteuid() || info.st_uid == 0 else {
            throw SecretFileError("\(what) file \(path) belongs to another user (uid \(info.st_uid))")
        }
        guard info.st_size <= maxBytes else { throw SecretFileError("\(what) file \(path) is larger than \(maxBytes) bytes") }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw SecretFileError("\(what) file \(path) cannot be read (errno \(errno))") }
            if n == 0 { break }
            bytes += chunk[0..<n]
            guard bytes.count <= maxBytes else { throw SecretFileError("\(what) file \(path) is larger than \(maxBytes) bytes") }
        }
        return bytes
    }

    /// Writes `bytes` to a new file at `path`, created with mode 0600 (O_EXCL: an existing
    /// file, or a symlink planted there, is an error and is left alone). A failed write
    /// removes what it made.
    public static func create(_ path: String, bytes: some Collection<UInt8>, what: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else {
            let reason = errno == EEXIST ? "it already exists" : "errno \(errno)"
            throw SecretFileError("cannot create the \(what) file \(path): \(reason)")
        }
        var ok = true
        let data = Array(bytes)
        data.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 { if errno == EINTR { continue }; ok = false; return }
                offset += n
            }
        }
        if fsync(fd) != 0 { ok = false }
        if close(fd) != 0 { ok = false }
        guard ok else {
            unlink(path)
            throw SecretFileError("cannot write the \(what) file \(path)")
        }
    }

    /// Replaces the file at `path` atomically with one of mode 0600 from its creation (a
    /// new file beside it, then rename): readers see the old file or the new, whole.
    public static func replace(_ path: String, bytes: some Collection<UInt8>, what: String) throws {
        let temporary = "\(path).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp"
        try create(temporary, bytes: bytes, what: what)
        guard rename(temporary, path) == 0 else {
            let error = errno
            unlink(temporary)
            throw SecretFileError("cannot replace the \(what) file \(path): errno \(error)")
        }
    }
}

public struct SecretFileError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
