import BrambleCore
import BrambleNet
import Foundation

/// Reads the credential files `bramble device provision` writes.
public enum CredentialFile {
    /// One file, checked field by field; the error names the file and never the key.
    public static func load(_ path: String) throws -> DeviceCredential {
        // It holds the device's master key: a copy others can read is refused.
        let data: Data
        do { data = Data(try SecretFilePermissions.read(path, what: "credential")) } catch { throw CredentialError("\(error)") }
        let credential: DeviceCredential
        do {
            credential = try JSONDecoder().decode(DeviceCredential.self, from: data)
        } catch {
            throw CredentialError("\(path) is not a device credential file (from `bramble device provision`)")
        }
        do {
            _ = try credential.validated()
        } catch {
            throw CredentialError("\(path): \(error)")
        }
        return credential
    }

    /// Every `*.json` file of a directory, in name order; at least one.
    public static func loadDirectory(_ directory: String) throws -> [DeviceCredential] {
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".json") }.sorted()
        guard !files.isEmpty else { throw CredentialError("no *.json credential files in \(directory)") }
        return try files.map { try load(directory + "/" + $0) }
    }
}
