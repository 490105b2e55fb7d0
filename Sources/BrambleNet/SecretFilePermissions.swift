#if canImport(Glibc)
import Glibc
#endif

/// Secret files (keys, tokens, passwords) must be regular files that only their owner
/// can read or write: a key that others could read is no longer a secret, so it is
/// refused with an error that says what to do. New ones are made 0600 from the first
/// byte, never over an existing file.
public enum SecretFilePermissions {
    public static func check(_ path: String, what: String) throws {
        var info = stat()
        guard stat(path, &info) == 0 else { throw SecretFileError("\(what) file \(path) cannot be read (errno \(errno))") }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw SecretFileError("\(what) file \(path) is not a regular file") }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw SecretFileError("\(what) file \(path) is readable by others (mode \(String(mode, radix: 8))); chmod 600 it")
        }
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
}

public struct SecretFileError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
