#if canImport(Glibc)
import Glibc
#endif

/// Secret files (keys, tokens, passwords) must be regular files that only their owner
/// can read or write: a key that others could read is no longer a secret, so it is
/// refused with an error that says what to do.
public enum SecretFilePermissions {
    public static func check(_ path: String, what: String) throws {
        var info = stat()
        guard stat(path, &info) == 0 else { throw TLSFilesError("\(what) file \(path) cannot be read (errno \(errno))") }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw TLSFilesError("\(what) file \(path) is not a regular file") }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw TLSFilesError("\(what) file \(path) is readable by others (mode \(String(mode, radix: 8))); chmod 600 it")
        }
    }
}
