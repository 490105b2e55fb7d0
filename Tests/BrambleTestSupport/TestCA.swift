import BrambleNet
import Foundation
import NIOSSL

/// A private CA made with the `openssl` command for one test run, and certificates it
/// signed for 127.0.0.1 (relay, nodes); keys are made 0600.
struct TestCA: Sendable {
    let dir: String
    var ca: String { dir + "/ca.crt" }
    func certificate(_ host: String) -> String { "\(dir)/\(host).crt" }
    func key(_ host: String) -> String { "\(dir)/\(host).key" }
    func files(_ host: String) -> TLSFiles { TLSFiles(ca: ca, certificate: certificate(host), key: key(host)) }

    /// `relay` flags (or `bramble-server` flags) for `host`'s certificate.
    func flags(_ host: String) -> [String] { ["--tls-ca", ca, "--tls-cert", certificate(host), "--tls-key", key(host)] }

    /// A CA named `name` in `dir`, with a certificate for 127.0.0.1 for each of `hosts`.
    static func make(in dir: String, name: String = "Bramble test CA", hosts: [String]) throws -> TestCA {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let ca = TestCA(dir: dir)
        try runCommand("/usr/bin/openssl", [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", dir + "/ca.key",
            "-out", ca.ca, "-days", "2", "-subj", "/CN=\(name)",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ])
        try "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n"
            .write(toFile: dir + "/host.ext", atomically: true, encoding: .utf8)
        for host in hosts {
            try runCommand("/usr/bin/openssl", [
                "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", ca.key(host),
                "-out", "\(dir)/\(host).csr", "-subj", "/CN=\(host).bramble",
            ])
            try runCommand("/usr/bin/openssl", [
                "x509", "-req", "-in", "\(dir)/\(host).csr", "-CA", ca.ca, "-CAkey", dir + "/ca.key", "-CAcreateserial",
                "-out", ca.certificate(host), "-days", "2", "-extfile", dir + "/host.ext",
            ])
            chmod(ca.key(host), 0o600)
        }
        chmod(dir + "/ca.key", 0o600)
        return ca
    }

    /// What a device uses: the CA alone.
    func deviceContext() throws -> NIOSSLContext { try TLSFiles(ca: ca).clientContext() }
}
