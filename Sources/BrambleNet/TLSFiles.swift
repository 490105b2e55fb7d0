import NIOCore
import NIOSSL

/// The PEM files a process's TLS uses: the private CA every peer's certificate must chain
/// to, and this process's own certificate and key (a server's, or a client's for mutual
/// TLS). The key file must be a regular file readable by no one else (mode 0600 or
/// stricter): it is refused otherwise.
public struct TLSFiles: Sendable, Equatable {
    public var ca: String
    public var certificate: String?
    public var key: String?

    public init(ca: String, certificate: String? = nil, key: String? = nil) {
        (self.ca, self.certificate, self.key) = (ca, certificate, key)
    }

    /// A client's context: trusts only the CA, verifies the peer's certificate (an IP
    /// address is matched against its subjectAltName), and presents this process's
    /// certificate when it has one. TLS 1.2 at least.
    public func clientContext() throws -> NIOSSLContext {
        try NIOSSLContext(configuration: try clientConfiguration())
    }

    /// The configuration behind `clientContext` (for AsyncHTTPClient and postgres-nio,
    /// which take a configuration).
    public func clientConfiguration() throws -> TLSConfiguration {
        var c = TLSConfiguration.makeClientConfiguration()
        c.trustRoots = .certificates(try Self.certificates(ca, "CA certificate"))
        c.minimumTLSVersion = .tlsv12
        c.certificateVerification = .fullVerification
        if let certificate, let key {
            c.certificateChain = try Self.certificates(certificate, "certificate").map { .certificate($0) }
            c.privateKey = .privateKey(try Self.privateKey(key))
        }
        // A demotion closes the SRP link first; a silent peer must not hold the close.
        c.shutdownTimeout = .milliseconds(300)
        return c
    }

    /// A server's context; with `requireClientCertificate`, a client must present a
    /// certificate the CA signed (mutual TLS).
    public func serverContext(requireClientCertificate: Bool) throws -> NIOSSLContext {
        try NIOSSLContext(configuration: try serverConfiguration(requireClientCertificate: requireClientCertificate))
    }

    /// The configuration behind `serverContext` (for Hummingbird, which takes one).
    public func serverConfiguration(requireClientCertificate: Bool) throws -> TLSConfiguration {
        guard let certificate, let key else { throw TLSFilesError("a TLS server needs its certificate and key files") }
        let chain = try Self.certificates(certificate, "certificate").map { NIOSSLCertificateSource.certificate($0) }
        let privateKey = NIOSSLPrivateKeySource.privateKey(try Self.privateKey(key))
        var c = requireClientCertificate
            ? TLSConfiguration.makeServerConfigurationWithMTLS(certificateChain: chain, privateKey: privateKey,
                                                              trustRoots: .certificates(try Self.certificates(ca, "CA certificate")))
            : TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: privateKey)
        c.minimumTLSVersion = .tlsv12
        // A closed connection leaves the caps at once; its TLS close must not linger 5 s
        // for a peer that never answers close_notify.
        c.shutdownTimeout = .milliseconds(300)
        return c
    }

    static func certificates(_ path: String, _ what: String) throws -> [NIOSSLCertificate] {
        do {
            let certificates = try NIOSSLCertificate.fromPEMFile(path)
            guard !certificates.isEmpty else { throw TLSFilesError("\(what) file \(path) holds no certificate") }
            return certificates
        } catch let error as TLSFilesError {
            throw error
        } catch {
            throw TLSFilesError("\(what) file \(path) cannot be read as PEM: \(error)")
        }
    }

    static func privateKey(_ path: String) throws -> NIOSSLPrivateKey {
        let bytes = try SecretFilePermissions.read(path, what: "TLS key")
        do {
            return try NIOSSLPrivateKey(bytes: bytes, format: .pem)
        } catch {
            throw TLSFilesError("TLS key file \(path) cannot be read as a PEM private key")
        }
    }
}

public struct TLSFilesError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The server name to check a certificate for: none for an IP address (NIOSSL then
/// matches the address the connection went to against the certificate's IP entries).
public func tlsServerName(_ host: String) -> String? {
    (try? SocketAddress(ipAddress: host, port: 0)) == nil ? host : nil
}

extension Channel {
    /// Makes a new client channel TLS from its first byte (with `tls`; nothing without):
    /// the peer's certificate is verified for `host` — its IP subjectAltName for an
    /// address, its DNS name (also sent as SNI) otherwise. Call in the channel initializer.
    public func addTLSClient(_ tls: NIOSSLContext?, host: String) throws {
        guard let tls else { return }
        try pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: tlsServerName(host)))
    }
}
