import ArgumentParser
import BrambleNet
import NIOSSL
import Foundation

/// How a device reaches the relay, for every command that runs devices: the address, and
/// the CA that must have signed the relay's certificate (or, asked for by name, no TLS).
public struct RelayOptions: ParsableArguments, Sendable {
    @Option(help: "Relay device listener, HOST:PORT.") public var relay = "127.0.0.1:4101"
    @Option(help: "The private CA's certificate (PEM): the relay's certificate must chain to it and name the address dialled.")
    public var caFile: String?
    @Flag(help: "Connect without TLS (the relay must run with plaintext = yes); a warning is printed.") public var plaintext = false

    public init() {}

    /// What an HTTP client of the nodes and the relay trusts: the same CA (nil: the
    /// system's roots, for plain or public URLs).
    public func httpTLS() throws -> TLSConfiguration? {
        try caFile.map { try TLSFiles(ca: $0).clientConfiguration() }
    }

    /// The relay's address and the TLS context devices share (one per process: building
    /// one is expensive), or nil for plain links.
    public func endpoint() throws -> (HostPort, NIOSSLContext?) {
        guard let address = HostPort(relay) else { throw ValidationError("--relay must be HOST:PORT, got '\(relay)'") }
        switch (caFile, plaintext) {
        case (nil, false):
            throw ValidationError("give --ca-file (the CA that signed the relay's certificate), or --plaintext for a relay without TLS")
        case (.some, true):
            throw ValidationError("--ca-file and --plaintext exclude each other")
        case (nil, true):
            FileHandle.standardError.write(Data("warning: no TLS to the relay (--plaintext): anyone on the path can read and alter the link\n".utf8))
            return (address, nil)
        case (let ca?, false):
            do { return (address, try TLSFiles(ca: ca).clientContext()) } catch { throw ValidationError("\(error)") }
        }
    }
}
