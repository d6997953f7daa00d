import Foundation
import Testing

/// SIGHUP reloads the policies of a running server: a good chain replaces the old one, a broken
/// one is refused and the old one keeps serving.
@Suite struct ServeReloadTests {
    @Test func reloadSwapsOnlyWhenAllLoads() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-reload-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let policy = dir.appendingPathComponent("p.lua")
        func write(_ version: String) throws {
            try "return { http = function(req) return { content = \"\(version)\\n\" } end }\n"
                .write(to: policy, atomically: true, encoding: .utf8)
        }
        try write("v1")
        let server = ServerProcess(["serve", "--listen", "127.0.0.1", "--no-dhcp", "--no-tftp", "--http-port", "0", "--policy", policy.path])
        defer { server.stop() }
        let port = try server.startReady().port("http")
        func fetch() throws -> String { try runTool("/usr/bin/curl", ["-sS", "http://127.0.0.1:\(port)/anything"]).output }
        #expect(try fetch() == "v1\n")

        try write("v2")
        server.signal(SIGHUP)
        // "(SIGHUP)": the engine's own swap at start-up (told the bound HTTP port) is logged
        // too, and a bare needle matched it before this reload had happened.
        #expect(server.waitFor("policies reloaded (SIGHUP)", timeout: 10), "\(server.text)")
        #expect(try fetch() == "v2\n")

        try "return { http = function(req) return { content = \n".write(to: policy, atomically: true, encoding: .utf8)
        server.signal(SIGHUP)
        #expect(server.waitFor("reload refused, the running policies stay", timeout: 10), "\(server.text)")
        #expect(server.text.contains("p.lua:"), "the refusal names file:line:\n\(server.text)")
        #expect(try fetch() == "v2\n")
        #expect(server.process.isRunning)
    }

    @Test func runtimeErrorIsLoggedCountedAndFallsBack() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-rterr-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let bad = dir.appendingPathComponent("bad.lua")
        try "return { http = function(req)\n  local t = nil\n  return { content = t.x }\nend }\n".write(to: bad, atomically: true, encoding: .utf8)
        let good = dir.appendingPathComponent("good.lua")
        try "return { http = function(req) return { content = \"fallback\\n\" } end }\n".write(to: good, atomically: true, encoding: .utf8)
        let server = ServerProcess(["serve", "--listen", "127.0.0.1", "--no-dhcp", "--no-tftp", "--http-port", "0",
                                    "--policy", bad.path, "--policy", good.path])
        defer { server.stop() }
        let port = try server.startReady().port("http")
        for _ in 0..<3 {
            #expect(try runTool("/usr/bin/curl", ["-sS", "http://127.0.0.1:\(port)/x"]).output == "fallback\n")
        }
        #expect(server.waitFor("bad.lua:3:", timeout: 5), "\(server.text)")
        let metrics = try runTool("/usr/bin/curl", ["-sS", "http://127.0.0.1:\(port)/metrics"]).output
        let errors = metrics.split(separator: "\n").first { $0.hasPrefix("bootpolicy_policy_errors_total{") && $0.contains("policy=\"bad\"") && $0.contains("kind=\"runtime\"") }
        #expect(errors?.hasSuffix(" 3") == true, "\(errors.map(String.init) ?? metrics)")
    }
}
