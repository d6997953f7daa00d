import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A generated script is served only to its machine (`http.script_access`): a `?mac=` counts
/// with its token (the default), or when it is the requester's own MAC (`neighbour`), or as
/// given (`open`); else the requester is who its own address says, so it gets its own script
/// and never another machine's. Real `bootpolicy serve` processes on loopback, driven by curl.
@Suite struct ScriptAccessTests {
    let curl = "/usr/bin/curl"
    static let netbootOnce = ServerProcess.packageRoot.appendingPathComponent("examples/netboot-once.lua").path

    /// A policy that answers every HTTP request with the MAC it was told and the query it saw.
    static func echoPolicy(in dir: URL) throws -> String {
        let path = dir.appendingPathComponent("echo.lua").path
        try """
            return {
              name = "echo",
              http = function(req)
                local q = {}
                for k, v in pairs(req.query or {}) do q[#q + 1] = k .. "=" .. v end
                table.sort(q)
                return { content = "mac=" .. req.mac .. " query=" .. table.concat(q, ",") }
              end,
            }
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func get(_ url: String) throws -> String {
        try runTool(curl, ["-sS", "-m", "10", url]).output
    }

    func refusals(_ server: ControlAPITests.Server) throws -> [String: Int] {
        var out: [String: Int] = [:]
        for line in try get(server.base + "/metrics").split(separator: "\n") where line.hasPrefix("bootpolicy_http_mac_refused_total{") {
            let reason = line.split(separator: "\"")[1]
            out[String(reason)] = Int(Double(line.split(separator: " ").last ?? "") ?? -1)
        }
        return out
    }

    @Test func aMACCountsOnlyWithItsToken() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-sa-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try ControlAPITests.Server(tokens: false, policy: Self.echoPolicy(in: dir))
        let mac = "52-54-00-12-34-56"
        let token = try #require(server.scriptKey.tokens.token(for: mac))

        // Without it, with another machine's, with a mangled one: nobody (127.0.0.1 has no MAC yet;
        // a request with a good token ties the address to its MAC, so these come first).
        let other = try #require(server.scriptKey.tokens.token(for: "52:54:00:12:34:57"))
        for (query, why) in [("mac=\(mac)", "no token"), ("mac=\(mac)&token=\(other)", "another machine's token"),
                             ("mac=\(mac)&token=\(token.dropLast())", "a token one digit short"),
                             ("mac=\(mac)&token=\(token.dropLast())x", "a token with a non-hex digit"),
                             ("mac=\(mac)&token=", "an empty token")] {
            let answer = try get(server.base + "/boot.ipxe?" + query)
            #expect(answer.hasPrefix("mac= query="), "\(why): \(answer)")
        }
        // A key from elsewhere (another server's) does not open this one.
        let foreign = try ScriptKeyFile(in: dir, name: "other-key")
        #expect(try get(foreign.scriptURL(server.base, mac: mac)).hasPrefix("mac= "))
        // With its token: that machine, and the token is not shown to policies.
        #expect(try get(server.scriptKey.scriptURL(server.base, mac: mac, extra: "&arch=bios"))
                == "mac=52:54:00:12:34:56 query=arch=bios,mac=52-54-00-12-34-56")
        // Hex in either case (another MAC: 127.0.0.1 is 52:54:00:12:34:56's address now).
        let upper = try #require(server.scriptKey.tokens.token(for: "52:54:00:12:34:58")).uppercased()
        #expect(try get(server.base + "/boot.ipxe?mac=52:54:00:12:34:58&token=\(upper)") == "mac=52:54:00:12:34:58 query=mac=52:54:00:12:34:58")
        let counted = try refusals(server)
        #expect(counted["no_token"] == 1 && counted["bad_token"] == 5, "\(counted)")
    }

    /// The script a DHCP decision generated for one machine is not served to a request that
    /// only names it: that request gets the requester's own script.
    @Test func anotherMachinesGeneratedScriptIsNotServed() throws {
        let server = try ControlAPITests.Server(tokens: false, policy: Self.netbootOnce)
        let a: [UInt8] = [0x02, 0x77, 0x07, 0x00, 0x00, 0x0a], b: [UInt8] = [0x02, 0x77, 0x07, 0x00, 0x00, 0x0b]
        #expect(ServeStateTests.discover(port: server.dhcpPort, mac: a, xid: 0x0701)?.bootFile == "once.ipxe")
        // B asks second, from the same address (127.0.0.1): the address is B's now.
        #expect(ServeStateTests.discover(port: server.dhcpPort, mac: b, xid: 0x0702)?.bootFile == "once.ipxe")
        let claimed = try get(server.base + "/boot.ipxe?mac=02:77:07:00:00:0a")
        #expect(claimed.contains("installing 02:77:07:00:00:0b") && !claimed.contains("02:77:07:00:00:0a"), "\(claimed)")
        let own = try get(server.scriptURL("02:77:07:00:00:0a"))
        #expect(own.contains("installing 02:77:07:00:00:0a"), "\(own)")
    }

    @Test func neighbourModeBelievesOnlyTheRequestersOwnMAC() throws {
        let server = try ControlAPITests.Server(tokens: false, policy: Self.netbootOnce, extra: ["--script-access", "neighbour"])
        let a: [UInt8] = [0x02, 0x77, 0x07, 0x00, 0x01, 0x0a]
        // Nothing known about 127.0.0.1 yet: a named MAC is nobody's.
        #expect(try get(server.base + "/boot.ipxe?mac=02:77:07:00:00:01").contains("no policy produced a script for ${mac} (unknown client)"))
        #expect(ServeStateTests.discover(port: server.dhcpPort, mac: a, xid: 0x0711) != nil)
        #expect(try get(server.base + "/boot.ipxe?mac=02:77:07:00:01:0a").contains("installing 02:77:07:00:01:0a"))
        let other = try get(server.base + "/boot.ipxe?mac=02:77:07:00:01:0b")
        #expect(other.contains("installing 02:77:07:00:01:0a"), "\(other)")
        #expect(try refusals(server)["not_neighbour"] == 2)
    }

    @Test func openModeBelievesAnyMACAndSaysSo() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-sa-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try ControlAPITests.Server(tokens: false, policy: Self.echoPolicy(in: dir), extra: ["--script-access", "open"])
        #expect(try get(server.base + "/x?mac=52:54:00:12:34:56&token=whatever") == "mac=52:54:00:12:34:56 query=mac=52:54:00:12:34:56")
        #expect(server.process.text.contains("http.script_access: open: anyone who can reach the server reads any machine's generated script"))
    }

    @Test func badKeysAndModesRefuseToStart() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-sa-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("root"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func refuses(_ extra: [String], saying needle: String) throws {
            let p = ServerProcess(["serve", "--listen", "127.0.0.1", "--no-dhcp", "--no-tftp", "--http-port", "\(freePort())"] + extra)
            let status = try p.runToEnd(timeout: 30)
            #expect(status != 0, "started with \(extra):\n\(p.text)")
            #expect(p.text.contains(needle), "message for \(extra) lacks '\(needle)':\n\(p.text)")
        }
        let open = dir.appendingPathComponent("readable-key").path
        try String(repeating: "k", count: 64).write(toFile: open, atomically: true, encoding: .utf8)
        chmod(open, 0o644)
        try refuses(["--script-key", open], saying: "others may read it (mode 644)")
        let short = dir.appendingPathComponent("short-key").path
        try "tooshort\n".write(toFile: short, atomically: true, encoding: .utf8)
        chmod(short, 0o600)
        try refuses(["--script-key", short], saying: "8 characters; a key needs at least 32")
        let served = try ScriptKeyFile(in: dir.appendingPathComponent("root"))
        try refuses(["--script-key", served.path, "--http-root", dir.appendingPathComponent("root").path],
                    saying: "is inside http.root")
        try refuses(["--script-access", "nobody"], saying: "http.script_access must be token, neighbour or open (got 'nobody')")

        // Absent: made, mode 600, 64 hex digits, and the same one read at the next start.
        let made = dir.appendingPathComponent("new-key").path
        for round in 0..<2 {
            let p = ServerProcess(["serve", "--listen", "127.0.0.1", "--no-dhcp", "--no-tftp", "--http-port", "\(freePort())",
                                   "--script-key", made])
            try p.start()
            defer { p.stop() }
            try #require(p.waitFor("serving: http"), "\(p.text)")
            #expect(p.text.contains("script tokens: key from \(made)"))
            var info = stat()
            #expect(stat(made, &info) == 0 && info.st_mode & 0o777 == 0o600, "round \(round)")
            let text = try String(contentsOfFile: made, encoding: .utf8)
            #expect(text.count == 65 && text.dropLast().allSatisfy(\.isHexDigit), "\(text)")
        }
    }
}
