import AsyncHTTPClient
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL

extension HTTPClient {
    /// A client for the nodes' and the relay's HTTPS that trusts only the private CA in
    /// `caFile` (the certificate must name the address dialled): `HTTPClient.shared`
    /// trusts the system's roots, which never signed a Bramble certificate. One per CA
    /// file and kind, made on first use and kept for the life of the process, like the
    /// shared one. `failingFast` (a monitor's probe): a refused connection fails at once
    /// instead of being retried until the deadline, and no redirect is followed; nil
    /// `caFile`: plain HTTP only.
    public static func bramble(caFile: String?, failingFast: Bool = false) throws -> HTTPClient {
        try brambleClients.withLockedValue { clients in
            let key = "\(failingFast) \(caFile ?? "")"
            if let client = clients[key] { return client }
            var configuration = HTTPClient.Configuration()
            if let caFile { configuration.tlsConfiguration = try TLSFiles(ca: caFile).clientConfiguration() }
            if failingFast {
                configuration.redirectConfiguration = .disallow
                configuration.connectionPool.retryConnectionEstablishment = false
            }
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
            clients[key] = client
            return client
        }
    }
}

private let brambleClients = NIOLockedValueBox<[String: HTTPClient]>([:])
