import BrambleNet
import Foundation
import NIOSSL

/// A private CA for one test run, made by scripts/tls.sh (the same code as `make up`'s),
/// and certificates it signed for 127.0.0.1: DIR/ca.crt, DIR/HOST/{cert.pem,key.pem},
/// keys 0600 from creation. The scripts that start the database and the mail host issue
/// their own hosts' certificates from it (BRAMBLE_TLS_DIR).
struct TestCA: Sendable {
    let dir: String
    var ca: String { dir + "/ca.crt" }
    func certificate(_ host: String) -> String { "\(dir)/\(host)/cert.pem" }
    func key(_ host: String) -> String { "\(dir)/\(host)/key.pem" }
    func files(_ host: String) -> TLSFiles { TLSFiles(ca: ca, certificate: certificate(host), key: key(host)) }

    /// `relay` flags (or `bramble-server` flags) for `host`'s certificate.
    func flags(_ host: String) -> [String] { ["--tls-ca", ca, "--tls-cert", certificate(host), "--tls-key", key(host)] }

    /// What the scripts that start servers (pg-private, pg-patroni, mail-private) need to
    /// issue their certificates from this CA.
    var environment: [String: String] { ["BRAMBLE_TLS_DIR": dir] }

    /// A CA in `dir`, with a certificate for 127.0.0.1 for each of `hosts`.
    static func make(in dir: String, hosts: [String]) throws -> TestCA {
        let steps = ["tls_ca \"$1\""] + hosts.map { "tls_host \"$1\" '\($0)' 127.0.0.1" }
        try runCommand("/bin/bash", ["-euc", ". \"$0/scripts/lib.sh\"; . \"$0/scripts/tls.sh\"; " + steps.joined(separator: "; "),
                                     TestCluster.root, dir])
        return TestCA(dir: dir)
    }

    /// What a device uses: the CA alone.
    func deviceContext() throws -> NIOSSLContext { try TLSFiles(ca: ca).clientContext() }
}
