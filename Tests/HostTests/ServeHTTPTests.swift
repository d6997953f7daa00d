import Foundation
import Testing

/// The HTTP server of a real `bootpolicy serve` on loopback, driven by curl.
@Suite(.serialized) struct ServeHTTPTests {
    let curl = "/usr/bin/curl"

    func withServer(policy: String = "arch-aware", extra: [String] = [], _ body: (Int, URL) throws -> Void) throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("bp-http-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("sub"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        var blob = [UInt8](repeating: 0, count: 100_000)
        for i in blob.indices { blob[i] = UInt8(truncatingIfNeeded: i &* 31 &+ 7) }
        try Data(blob).write(to: root.appendingPathComponent("kernel"))
        try Data("hello\n".utf8).write(to: root.appendingPathComponent("sub/hello.txt"))
        let server = ServerProcess(["serve", "--listen", "127.0.0.1", "--no-dhcp", "--no-tftp",
                                    "--http-port", "0", "--http-root", root.path, "--policy", policy] + extra)
        defer { server.stop() }
        let port = try server.startReady().port("http")
        try body(port, root)
    }

    /// A policy's response that cannot go on the wire (a content type with CR/LF, NUL or
    /// non-ASCII bytes; a 1xx or bodiless status) is answered 500 naming the policy, and the
    /// connection keeps working. Before, the client got nothing and a keep-alive one hung.
    @Test func aResponseThatCannotBeSentIsA500() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-badhttp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let policy = dir.appendingPathComponent("bad.lua")
        try #"""
            return { http = function(req)
              if req.path == "/crlf" then return { content = "x", content_type = "text/plain\r\nX-Evil: 1" } end
              if req.path == "/nul" then return { content = "x", content_type = "text/plain\0" } end
              if req.path == "/bin" then return { content = "x", content_type = "text/\255\254" } end
              if req.path == "/s101" then return { content = "x", status = 101 } end
              if req.path == "/s204" then return { content = "x", status = 204 } end
              if req.path == "/ok" then return { content = "fine", status = 201 } end
            end }
            """#.write(to: policy, atomically: true, encoding: .utf8)
        try withServer(policy: policy.path) { port, _ in
            for path in ["crlf", "nul", "bin", "s101", "s204"] {
                let r = try runTool(curl, ["-s", "-m", "5", "-w", "\n%{http_code}", "http://127.0.0.1:\(port)/\(path)"], timeout: 10)
                #expect(r.status == 0, "/\(path): curl exited \(r.status) (no response?)")
                #expect(r.output.hasSuffix("\n500"), "/\(path): \(r.output)")
                #expect(r.output.contains("policy bad made a response that cannot be sent"), "/\(path): \(r.output)")
            }
            // Two requests on one keep-alive connection: the bad one does not wedge it.
            let both = try runTool(curl, ["-s", "-m", "5", "-w", "%{http_code} ", "http://127.0.0.1:\(port)/crlf",
                                          "http://127.0.0.1:\(port)/ok"], timeout: 10)
            #expect(both.output.hasSuffix("500 fine201 "), "\(both.output)")
        }
    }

    /// `%00` in a path is refused, not cut short at the NUL (which served hello.txt).
    @Test func aNULInThePathIsRefused() throws {
        try withServer(policy: "default") { port, _ in
            let r = try runTool(curl, ["-s", "-m", "5", "-w", "%{http_code}", "http://127.0.0.1:\(port)/sub/hello.txt%00.png"])
            #expect(r.output.hasSuffix("400"), "\(r.output)")
            #expect(!r.output.contains("hello\n"))
            #expect(try runTool(curl, ["-s", "http://127.0.0.1:\(port)/sub/hello.txt"]).output == "hello\n")
        }
    }

    @Test func healthAndMetrics() throws {
        try withServer { port, _ in
            let health = try runTool(curl, ["-sS", "http://127.0.0.1:\(port)/healthz"])
            #expect(health.output == "ok\n")
            _ = try runTool(curl, ["-sS", "http://127.0.0.1:\(port)/sub/hello.txt"])
            let metrics = try runTool(curl, ["-sS", "http://127.0.0.1:\(port)/metrics"]).output
            // Prometheus text format: every sample line is `name{labels} value`.
            let samples = metrics.split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.isEmpty }
            #expect(!samples.isEmpty)
            for line in samples {
                #expect(line.split(separator: " ").count == 2, "not a sample line: \(line)")
            }
            #expect(samples.contains { $0.hasPrefix("bootpolicy_http_requests_total{") && $0.contains("status=\"200\"") })
        }
    }

    @Test func jsonLogsAreOneObjectPerLine() throws {
        let server = ServerProcess(["serve", "--listen", "127.0.0.1", "--no-dhcp", "--no-tftp", "--http-port", "0", "--log-format", "json"])
        let port = try server.startReady().port("http")
        try #require(server.waitFor("serving: http"), "\(server.text)")  // through the pipe before the stop
        server.stop()
        let lines = server.text.split(separator: "\n").filter { !$0.isEmpty }
        #expect(lines.count >= 3)
        for line in lines {
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["level"] != nil && object?["msg"] != nil && object?["time"] != nil, "not a JSON log line: \(line)")
        }
        #expect(lines.contains { $0.contains("\"msg\":\"serving: http 127.0.0.1:\(port)") })
    }

    @Test func staticFileHeadAndRange() throws {
        try withServer { port, root in
            let head = try runTool(curl, ["-sS", "-I", "http://127.0.0.1:\(port)/kernel"]).output.lowercased()
            #expect(head.contains("200 ok"))
            #expect(head.contains("content-length: 100000"))
            #expect(head.contains("accept-ranges: bytes"))
            let whole = try Data(contentsOf: root.appendingPathComponent("kernel"))
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("bp-range-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: out) }
            let ranged = try runTool(curl, ["-sS", "-r", "1000-1999", "-o", out.path, "-w", "%{http_code}", "http://127.0.0.1:\(port)/kernel"])
            #expect(ranged.output == "206")
            #expect(try Data(contentsOf: out) == whole.subdata(in: 1000..<2000))
            let tail = try runTool(curl, ["-sS", "-r", "-10", "-o", out.path, "http://127.0.0.1:\(port)/kernel"])
            #expect(tail.status == 0)
            #expect(try Data(contentsOf: out) == whole.suffix(10))
            let bad = try runTool(curl, ["-sS", "-r", "200000-", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/kernel"])
            #expect(bad.output == "416")
            // Resume: a second request from where the first stopped gives the rest exactly.
            _ = try runTool(curl, ["-sS", "-r", "0-49999", "-o", out.path, "http://127.0.0.1:\(port)/kernel"])
            _ = try runTool(curl, ["-sS", "-C", "-", "-o", out.path, "http://127.0.0.1:\(port)/kernel"])
            #expect(try Data(contentsOf: out) == whole)
        }
    }

    @Test func traversalIsRefused() throws {
        try withServer { port, root in
            try FileManager.default.createSymbolicLink(atPath: root.appendingPathComponent("escape").path, withDestinationPath: "/etc")
            for path in ["/../../../etc/passwd", "/sub/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/escape/passwd", "/sub"] {
                let r = try runTool(curl, ["-sS", "--path-as-is", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)\(path)"])
                #expect(r.output == "403" || r.output == "404", "\(path) answered \(r.output)")
                #expect(r.output != "200")
            }
            let missing = try runTool(curl, ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/nope"])
            #expect(missing.output == "404")
        }
    }

    /// A key file outside the served root, for the tests that fetch a machine's script by URL.
    func keyFile() throws -> ScriptKeyFile {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-key-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return try ScriptKeyFile(in: dir)
    }

    @Test func scriptEndpointAsksThePolicy() throws {
        let key = try keyFile()
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: key.path).deletingLastPathComponent().path) }
        try withServer(extra: ["--script-key", key.path]) { port, _ in
            let r = try runTool(curl, ["-sS", key.scriptURL("http://127.0.0.1:\(port)", mac: "52-54-00-12-34-56", extra: "&arch=efi-x64")])
            #expect(r.output.hasPrefix("#!ipxe\n"))
            #expect(r.output.contains("52:54:00:12:34:56"))
            let clients = try runTool(curl, ["-sS", "http://127.0.0.1:\(port)/api/clients"]).output
            #expect(clients.contains("\"mac\" : \"52:54:00:12:34:56\""))
        }
    }

    @Test func scriptMissExplainsItselfToIPXE() throws {
        let key = try keyFile()
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: key.path).deletingLastPathComponent().path) }
        try withServer(policy: "default", extra: ["--script-key", key.path]) { port, _ in
            // The default policy has no http hook: iPXE must print why instead of hanging.
            let r = try runTool(curl, ["-sS", "-w", "\n%{http_code}", key.scriptURL("http://127.0.0.1:\(port)", mac: "52-54-00-00-00-09")])
            #expect(r.output.hasPrefix("#!ipxe\necho bootpolicy: no policy produced a script"))
            #expect(r.output.contains("52:54:00:00:00:09"))
        }
    }
}
