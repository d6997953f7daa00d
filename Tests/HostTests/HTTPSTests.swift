import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `http.tls`: HTTPS beside HTTP with certificates from files, checked by curl against the
/// test's own CA. Policies see `req.scheme`; files too large to inline stream over TLS (no
/// sendfile there) whole and by Range; SIGHUP loads a new certificate and keeps the old one
/// when the new files are broken; an expired certificate or a key that is not its own is a
/// start error naming the file.
@Suite struct HTTPSTests {
    static let openssl = Requirement.tool("openssl", install: "apt-get install openssl")

    /// A CA, a server certificate for 127.0.0.1 signed by it (valid `days`), and its key.
    struct PKI {
        let dir: URL
        var ca: String { dir.appendingPathComponent("ca.pem").path }
        var cert: String { dir.appendingPathComponent("server.pem").path }
        var key: String { dir.appendingPathComponent("server.key").path }

        init() throws {
            dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-tls-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "3", "-subj", "/CN=bootpolicy test CA"])
            try openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"])
            try "subjectAltName=IP:127.0.0.1\n".write(to: dir.appendingPathComponent("ext"), atomically: true, encoding: .utf8)
            try sign(days: 2, into: "server.pem")
        }

        func openssl(_ args: [String]) throws {
            let r = try Spawn.run("/bin/sh", ["-c", "cd '\(dir.path)' && openssl " + args.map { "'\($0)'" }.joined(separator: " ")], timeout: 60)
            guard r.status == 0 else { throw ServerProcessError("openssl \(args.joined(separator: " ")): \(r.output)") }
        }

        /// Signs the server's request again, valid for `days` (negative: already expired).
        func sign(days: Int, into name: String) throws {
            try openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                         "-out", name, "-days", "\(days)", "-extfile", "ext"])
        }

        func config(port: Int = 0) throws -> String {
            let path = dir.appendingPathComponent("c.yaml").path
            try """
                listen: 127.0.0.1
                dhcp: {enabled: false}
                tftp: {enabled: false}
                http:
                  port: 0
                  root: \(dir.path)
                  tls: {certificate: \(cert), key: \(key), port: \(port)}
                policies:
                  - file: \(dir.appendingPathComponent("p.lua").path)
                """.write(toFile: path, atomically: true, encoding: .utf8)
            try "return { http = function(req) if req.path == \"/scheme\" then return { content = req.scheme .. \"\\n\" } end end }\n"
                .write(to: dir.appendingPathComponent("p.lua"), atomically: true, encoding: .utf8)
            return path
        }
    }

    func curl(_ args: [String]) throws -> (status: Int32, output: String) {
        try runTool("/usr/bin/curl", ["-sS", "--max-time", "20"] + args)
    }

    @Test(.requires(Self.openssl)) func httpsBesideHTTP() throws {
        let pki = try PKI()
        defer { try? FileManager.default.removeItem(at: pki.dir) }
        var big = [UInt8](repeating: 0, count: 3 << 20)
        for i in big.indices { big[i] = UInt8(truncatingIfNeeded: i &* 2654435761 >> 13) }
        try Data(big).write(to: pki.dir.appendingPathComponent("big.bin"))
        let server = ServerProcess(["serve", "--config", try pki.config()])
        defer { server.stop() }
        let ready = try server.startReady()
        let https = "https://127.0.0.1:\(try ready.port("https"))", http = "http://127.0.0.1:\(try ready.port("http"))"

        #expect(try curl(["--cacert", pki.ca, https + "/scheme"]).output == "https\n")
        #expect(try curl([http + "/scheme"]).output == "http\n")
        // Not trusted without the CA: curl's "unable to get local issuer certificate".
        #expect(try curl([https + "/scheme"]).status == 60)
        // The server counts and logs that refusal (and only it: the two good connections
        // above are not counted); a connection reset before the handshake counts too.
        #expect(server.waitFor("https: TLS handshake failed", timeout: 5), "\(server.text)")
        let refusedOnce = try curl([http + "/metrics"]).output
        #expect(refusedOnce.contains("\nbootpolicy_https_handshake_failures_total 1\n"), "\(refusedOnce)")
        let port = try ready.port("https")
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var to = sockaddr_in(sin_family: sa_family_t(AF_INET), sin_port: in_port_t(UInt16(port).bigEndian),
                             sin_addr: in_addr(s_addr: inet_addr("127.0.0.1")), sin_zero: (0, 0, 0, 0, 0, 0, 0, 0))
        let connected = withUnsafePointer(to: &to) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        #expect(connected == 0)
        var reset = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, socklen_t(MemoryLayout<linger>.size))
        close(fd)
        var counted = ""
        for _ in 0..<50 {
            counted = try curl([http + "/metrics"]).output
            if counted.contains("\nbootpolicy_https_handshake_failures_total 2\n") { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        #expect(counted.contains("\nbootpolicy_https_handshake_failures_total 2\n"), "\(counted)")
        // A file past the inline size, whole and by Range, byte for byte.
        let out = pki.dir.appendingPathComponent("got.bin").path
        #expect(try curl(["--cacert", pki.ca, "-o", out, https + "/big.bin"]).status == 0)
        let whole = try Data(contentsOf: URL(fileURLWithPath: out))
        #expect(whole == Data(big))
        let part = try curl(["--cacert", pki.ca, "-r", "1048576-1048583", "-o", out, "-w", "%{http_code}", https + "/big.bin"])
        let piece = try Data(contentsOf: URL(fileURLWithPath: out))
        #expect(part.output == "206" && piece == Data(big[1048576...1048583]), "\(part.output)")

        // SIGHUP: a new certificate serves the next connection; broken files keep it.
        try pki.sign(days: 1, into: "server.pem")
        server.signal(SIGHUP)
        #expect(server.waitFor("https: certificate reloaded", timeout: 10), "\(server.text)")
        let expiry = try curl(["-v", "--cacert", pki.ca, "-o", "/dev/null", https + "/scheme"]).output
        let tomorrow = Calendar(identifier: .gregorian).component(.day, from: Date().addingTimeInterval(86_400))
        #expect(expiry.contains("expire date: ") && expiry.contains(" \(tomorrow) "), "\(expiry)")
        try "not a certificate\n".write(toFile: pki.cert, atomically: true, encoding: .utf8)
        server.signal(SIGHUP)
        #expect(server.waitFor("https: certificate not reloaded, the served one stays", timeout: 10), "\(server.text)")
        #expect(try curl(["--cacert", pki.ca, https + "/scheme"]).output == "https\n")
    }

    @Test(.requires(Self.openssl)) func badCertificatesAreStartErrors() throws {
        let pki = try PKI()
        defer { try? FileManager.default.removeItem(at: pki.dir) }
        let config = try pki.config()
        try pki.sign(days: -1, into: "server.pem")
        let expired = ServerProcess(["serve", "--config", config])
        #expect(try expired.runToEnd(timeout: 30) != 0)
        #expect(expired.text.contains("http.tls.certificate \(pki.cert): expired on"), "\(expired.text)")

        // bootpolicy check loads it the same way, so the refusal comes before a deploy.
        let checked = ServerProcess(["check", "--no-run", "--config", config])
        #expect(try checked.runToEnd(timeout: 30) == 1)
        #expect(checked.text.contains("bootpolicy check: http.tls.certificate \(pki.cert): expired on"), "\(checked.text)")

        try pki.sign(days: 2, into: "server.pem")
        let good = ServerProcess(["check", "--no-run", "--config", config])
        #expect(try good.runToEnd(timeout: 30) == 0, "\(good.text)")
        #expect(good.text.contains("ok    http.tls: ") && good.text.contains("common_name=127.0.0.1"), "\(good.text)")
        try pki.openssl(["genrsa", "-out", "server.key", "2048"])
        let mismatched = ServerProcess(["serve", "--config", config])
        #expect(try mismatched.runToEnd(timeout: 30) != 0)
        #expect(mismatched.text.contains("does not go with the certificate"), "\(mismatched.text)")
    }
}
