import Foundation
import Testing

/// Data files (`data:`) seen by a running server's policies: an edit on disk is picked up by
/// itself within a second, a broken edit is refused with file:line:col and the old data kept.
@Suite struct ServeDataTests {
    @Test func dataFileEditsReloadThemselvesAllOrNothing() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-data-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let machines = dir.appendingPathComponent("machines.yaml")
        try "- { mac: 52-54-00-aa-00-01, name: web-01 }\n".write(to: machines, atomically: true, encoding: .utf8)
        try """
        return { http = function(req)
          local m = data.machines["52:54:00:aa:00:01"]
          return { content = (m and m.name or "none") .. " " .. #data.machines .. " " .. tostring(server.http_port) .. "\\n" }
        end }

        """.write(to: dir.appendingPathComponent("p.lua"), atomically: true, encoding: .utf8)
        let config = dir.appendingPathComponent("bootpolicy.yaml")
        try """
        policies:
          - file: p.lua
        data:
          machines: { file: machines.yaml, key: mac, key_format: mac }

        """.write(to: config, atomically: true, encoding: .utf8)

        let server = ServerProcess(["serve", "--config", config.path, "--listen", "127.0.0.1", "--no-dhcp", "--no-tftp", "--http-port", "0"])
        defer { server.stop() }
        let port = try server.startReady().port("http")
        func fetch() throws -> String { try runTool("/usr/bin/curl", ["-sS", "http://127.0.0.1:\(port)/x"]).output }
        #expect(try fetch() == "web-01 1 \(port)\n", "policies see data and the port really served on")
        // The log reaches the test through a pipe read on another thread: wait for the line
        // (bounded) rather than read what has arrived so far (it once had only the first line).
        #expect(server.waitFor("data loaded: machines (1 entries from machines.yaml)", timeout: 10), "\(server.text)")

        // An editor's save: a new file renamed over the old one.
        func waitForContent(_ want: String, within seconds: Double) throws -> Double? {
            let start = Date()
            while Date().timeIntervalSince(start) < seconds {
                if try fetch() == want { return Date().timeIntervalSince(start) }
                Thread.sleep(forTimeInterval: 0.05)
            }
            return nil
        }
        try "- { mac: 52:54:00:AA:00:01, name: web-02 }\n- { mac: 52:54:00:aa:00:02, name: db-01 }\n"
            .write(to: machines, atomically: true, encoding: .utf8)
        let renamed = try waitForContent("web-02 2 \(port)\n", within: 5)
        #expect(renamed != nil && renamed! < 1.0, "a saved data file is live within a second (took \(renamed.map { "\($0) s" } ?? "more than 5 s"))\n\(server.text)")

        // A write in place (no rename), as `cat > file` does.
        let handle = try FileHandle(forWritingTo: machines)
        try handle.truncate(atOffset: 0)
        try handle.write(contentsOf: Data("- { mac: 52:54:00:aa:00:01, name: web-03 }\n".utf8))
        try handle.close()
        let inPlace = try waitForContent("web-03 1 \(port)\n", within: 5)
        #expect(inPlace != nil && inPlace! < 1.0, "took \(inPlace.map { "\($0) s" } ?? "more than 5 s")\n\(server.text)")

        // Broken: a duplicate key on line 2 -> refused with its position, the old data serves.
        try "- { mac: 52:54:00:aa:00:01, name: web-04 }\n- { mac: 52-54-00-AA-00-01, name: twin }\n"
            .write(to: machines, atomically: true, encoding: .utf8)
        #expect(server.waitFor("machines.yaml:2:3: duplicate key 52:54:00:aa:00:01 (first at line 1)", timeout: 5), "\(server.text)")
        #expect(try fetch() == "web-03 1 \(port)\n")
        // And a YAML syntax error.
        try "- { mac: 52:54:00:aa:00:01, name: web-05\n".write(to: machines, atomically: true, encoding: .utf8)
        #expect(server.waitFor("machines.yaml:2:1:", timeout: 5), "\(server.text)")
        #expect(try fetch() == "web-03 1 \(port)\n")
        // Fixed again: live again.
        try "- { mac: 52:54:00:aa:00:01, name: web-06 }\n".write(to: machines, atomically: true, encoding: .utf8)
        #expect(try waitForContent("web-06 1 \(port)\n", within: 5) != nil, "\(server.text)")
        #expect(server.process.isRunning)
    }

    @Test func brokenDataFileStopsStartupWithItsPosition() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-data-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try "mac,name\n52:54:00:aa:00:01,web-01\n52:54:00:aa:00:02,db-01,extra\n"
            .write(to: dir.appendingPathComponent("racks.csv"), atomically: true, encoding: .utf8)
        let config = dir.appendingPathComponent("bootpolicy.yaml")
        try "data:\n  racks: racks.csv\n".write(to: config, atomically: true, encoding: .utf8)
        let check = ServerProcess(["check", "--config", config.path])
        #expect(try check.runToEnd(timeout: 60) == 1)
        #expect(check.text.contains("racks.csv:3: row has 3 cells, the header has 2"), "\(check.text)")
        let serve = ServerProcess(["serve", "--config", config.path, "--listen", "127.0.0.1", "--no-dhcp", "--no-tftp", "--http-port", "0"])
        #expect(try serve.runToEnd(timeout: 60) != 0)
        #expect(serve.text.contains("cannot load data") && serve.text.contains("racks.csv:3:"), "\(serve.text)")
    }
}
