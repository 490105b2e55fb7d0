import AsyncHTTPClient
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL

extension HTTPClient {
    /// A client for the nodes' and the relay's HTTPS that trusts only the private CA in
    /// `caFile` (the certificate must name the address dialled): `HTTPClient.shared`
    /// trusts the system's roots, which never signed a Bramble certificate. One per CA
    /// file, made on first use and kept for the life of the process, like the shared one.
    public static func bramble(caFile: String) throws -> HTTPClient {
        try brambleClients.withLockedValue { clients in
            if let client = clients[caFile] { return client }
            let client = HTTPClient(eventLoopGroupProvider: .singleton,
                                    configuration: .init(tlsConfiguration: try TLSFiles(ca: caFile).clientConfiguration()))
            clients[caFile] = client
            return client
        }
    }
}

private let brambleClients = NIOLockedValueBox<[String: HTTPClient]>([:])
