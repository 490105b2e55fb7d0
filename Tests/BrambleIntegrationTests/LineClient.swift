import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A blocking line-oriented TCP client for talking SMTP and IMAP to real servers in
/// tests: CRLF lines out, lines in, every read bounded by a receive time-out.
final class LineClient {
    struct Failure: Error, CustomStringConvertible { let description: String }

    private let fd: Int32
    private var buffer: [UInt8] = []

    init(host: String, port: Int, timeoutSeconds: Int = 10) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr(host)
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw Failure(description: "connect \(host):\(port): \(message)")
        }
    }

    deinit { close(fd) }

    /// Sends `line` followed by CRLF.
    func send(_ line: String) throws { try write(Array((line + "\r\n").utf8)) }

    func write(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw Failure(description: "send: \(String(cString: strerror(errno)))") }
            sent += n
        }
    }

    /// The next line, without its CRLF.
    func readLine() throws -> String {
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                var line = Array(buffer[..<newline])
                buffer.removeSubrange(...newline)
                if line.last == UInt8(ascii: "\r") { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw Failure(description: n == 0 ? "connection closed" : "recv: \(String(cString: strerror(errno)))") }
            buffer += chunk[..<n]
        }
    }

    /// An SMTP reply (its lines, up to the one whose code is followed by a space).
    func smtpReply() throws -> (code: Int, text: String) {
        var lines: [String] = []
        while true {
            let line = try readLine()
            lines.append(line)
            if line.count < 4 || line[line.index(line.startIndex, offsetBy: 3)] == " " {
                return (Int(line.prefix(3)) ?? 0, lines.joined(separator: "\n"))
            }
        }
    }

    /// Sends an SMTP command and returns its reply; throws unless the code is `expect`.
    @discardableResult
    func smtp(_ command: String, expect: Int) throws -> String {
        try send(command)
        let reply = try smtpReply()
        guard reply.code == expect else { throw Failure(description: "SMTP \(command.prefix(30)): expected \(expect), got \(reply.text)") }
        return reply.text
    }

    /// Sends an IMAP command under `tag` and returns every line up to and including the
    /// tagged completion.
    func imap(_ tag: String, _ command: String) throws -> [String] {
        try send("\(tag) \(command)")
        var lines: [String] = []
        while true {
            let line = try readLine()
            lines.append(line)
            if line.hasPrefix(tag + " ") { return lines }
        }
    }
}
