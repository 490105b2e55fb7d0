import Logging

extension DaemonSettings {
    /// The TLS files from `tls-ca`, `tls-cert` and `tls-key` (all three, or none with
    /// `plaintext = yes`). Plain links only when asked for by name: nil then, and a
    /// warning in the log; neither is an error that says what to set.
    public func tlsFiles(logger: Logger) async throws(SettingsFailure) -> TLSFiles? {
        let plaintext = try await string("plaintext", default: "no")
        guard ["yes", "no"].contains(plaintext) else {
            throw SettingsFailure("'plaintext' must be yes or no, got '\(plaintext)'")
        }
        let (ca, cert, key) = (try await string("tls-ca"), try await string("tls-cert"), try await string("tls-key"))
        if plaintext == "yes" {
            guard ca == nil, cert == nil, key == nil else {
                throw SettingsFailure("'plaintext = yes' and the tls-ca, tls-cert, tls-key settings exclude each other")
            }
            logger.warning("TLS is off (plaintext = yes): anyone on the network path can read and alter what crosses these links")
            return nil
        }
        guard let ca, let cert, let key else {
            throw SettingsFailure(
                "TLS needs tls-ca (the CA certificate), tls-cert and tls-key (this host's certificate and key, PEM); "
                + "or set plaintext = yes to run without TLS")
        }
        return TLSFiles(ca: ca, certificate: cert, key: key)
    }
}
