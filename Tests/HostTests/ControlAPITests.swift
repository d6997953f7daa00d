import Foundation
import Protocols
import Testing
import TestSupport
@testable import Host
#if canImport(Glibc)
import Glibc
#endif

/// The control API of a real `bootpolicy serve` on loopback, driven by curl, the `bootpolicy
/// state` command and schemathesis: tokens, every refusal, durability, the next DHCP answer.
@Suite struct ControlAPITests {
    static let writeToken = "w-0123456789abcdef0123456789"
    static let readToken = "r-fedcba9876543210fedcba9876"
    let curl = "/usr/bin/curl"

    /// A server with a tokens file and a state file in a fresh folder.
    final class Server {
        let dir: URL
        /// The ports the server bound (it is started with port 0), from its READY=1.
        private(set) var httpPort = 0, dhcpPort = 0
        let process: ServerProcess
        let scriptKey: ScriptKeyFile
        var base: String { "http://127.0.0.1:\(httpPort)" }
        /// The script URL a policy would hand `mac` at DHCP time (with its token).
        func scriptURL(_ mac: String) -> String { scriptKey.scriptURL(base, mac: mac) }
        var tokens: String { dir.appendingPathComponent("tokens").path }

        init(tokens: Bool = true, policy: String? = nil, state: String? = nil, extra: [String] = []) throws {
            dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-api-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            scriptKey = try ScriptKeyFile(in: dir)
            var args = ["serve", "--listen", "127.0.0.1", "--dhcp-port", "0", "--no-tftp",
                        "--http-port", "0", "--state", state ?? dir.appendingPathComponent("state.db").path,
                        "--script-key", scriptKey.path]
            if tokens {
                try "# bootpolicy API tokens\nwrite \(ControlAPITests.writeToken) installer\nread \(ControlAPITests.readToken)\n"
                    .write(toFile: dir.appendingPathComponent("tokens").path, atomically: true, encoding: .utf8)
                chmod(dir.appendingPathComponent("tokens").path, 0o600)
                args += ["--api-tokens", dir.appendingPathComponent("tokens").path]
            }
            if let policy { args += ["--policy", policy] }
            process = ServerProcess(args + extra)
            let ready = try process.startReady()
            httpPort = try ready.port("http")
            dhcpPort = try ready.port("proxydhcp")
        }

        deinit {
            process.stop()
            try? FileManager.default.removeItem(at: dir)
        }
    }

    /// One curl request: status code and body.
    func call(_ server: Server, _ method: String, _ path: String, token: String? = nil, body: String? = nil,
              bodyFile: String? = nil, headers: [String] = []) throws -> (status: Int, body: String) {
        var args = ["-s", "-m", "20", "-X", method, "-w", "\n%{http_code}"]
        if let token { args += ["-H", "Authorization: Bearer \(token)"] }
        for h in headers { args += ["-H", h] }
        if let body { args += ["-H", "Content-Type: application/json", "--data-binary", body] }
        if let bodyFile { args += ["-H", "Content-Type: application/json", "--data-binary", "@" + bodyFile] }
        let r = try runTool(curl, args + [server.base + path], timeout: 30)
        let lines = r.output.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? -1, lines.dropLast().joined(separator: "\n"))
    }

    /// Every refusal is one line of JSON naming the problem (413 excepted: plain text).
    func expectRefusal(_ r: (status: Int, body: String), _ status: Int, _ needle: String, _ what: String) {
        #expect(r.status == status, "\(what): got \(r.status) \(r.body)")
        #expect(r.body.contains(needle), "\(what): body lacks '\(needle)': \(r.body)")
        #expect(!r.body.trimmingCharacters(in: .whitespacesAndNewlines).contains("\n"), "\(what): more than one line: \(r.body)")
    }

    /// Full DHCP's leases through the API: listed after a DORA, read one by one, freed only
    /// with a write token (and then offered to another client).
    @Test func leasesAreListedAndFreed() throws {
        let server = try Server(extra: ["--dhcp-range", "127.77.0.10,127.77.0.11,/8,1h", "--no-ping"])
        func dora(_ n: UInt8) -> DHCPMessage? {
            let mac: [UInt8] = [0x52, 0x54, 0x00, 0x77, 0x00, n]
            var d = DHCPMessage(op: .request, xid: 0x0A00 + UInt32(n), flags: 0x8000, chaddr: mac)
            d.messageType = .discover
            guard let offer = ServeStateTests.exchange(port: server.dhcpPort, d), offer.messageType == .offer else { return nil }
            var r = DHCPMessage(op: .request, xid: 0x0B00 + UInt32(n), flags: 0x8000, chaddr: mac)
            r.messageType = .request
            r.options.set(50, offer.yiaddr.bytes)
            r.options.set(54, [127, 0, 0, 1])
            r.options.set(12, Array("node\(n)".utf8))
            return ServeStateTests.exchange(port: server.dhcpPort, r)
        }
        let ack = try #require(dora(1))
        #expect(ack.messageType == .ack && ack.yiaddr.description == "127.77.0.10")
        let list = try call(server, "GET", "/api/v1/leases", token: Self.readToken)
        #expect(list.status == 200 && list.body.contains(#""address":"127.77.0.10","mac":"52:54:00:77:00:01""#), "\(list.body)")
        #expect(list.body.contains(#""hostname":"node1","state":"bound""#) && list.body.contains(#""size":2,"active":1"#), "\(list.body)")
        #expect(try call(server, "GET", "/api/v1/leases/127.77.0.10", token: Self.readToken).body.contains(#""active":true"#))
        expectRefusal(try call(server, "GET", "/api/v1/leases/127.77.0.99", token: Self.readToken), 404, "no lease record", "unknown address")
        expectRefusal(try call(server, "GET", "/api/v1/leases/nope", token: Self.readToken), 400, "not an IPv4 address", "bad address")
        expectRefusal(try call(server, "GET", "/api/v1/leases?active=maybe", token: Self.readToken), 400, "active must be", "bad filter")
        // A read token may not free an address; a write token may, and says so once durable.
        expectRefusal(try call(server, "DELETE", "/api/v1/leases/127.77.0.10", token: Self.readToken), 403, "may only read", "read token")
        let freed = try call(server, "DELETE", "/api/v1/leases/127.77.0.10", token: Self.writeToken)
        #expect(freed.status == 200 && freed.body.contains(#""released":true"#), "\(freed.body)")
        #expect(try call(server, "GET", "/api/v1/leases?active=true", token: Self.readToken).body.contains(#""leases":[]"#))
        // The range has two addresses: two more clients both get one (the freed one included).
        #expect(dora(2)?.messageType == .ack && dora(3)?.messageType == .ack)
        #expect(dora(4) == nil, "a third client in a range of two")
        #expect(server.process.waitFor("silent (pool_exhausted)"), "\(server.process.text)")
    }

    @Test func everyEndpointRefusesWhatItMust() throws {
        let server = try Server()
        let state = "/api/v1/clients/52:54:00:00:00:01/state"
        let writes: [(String, String, String?)] = [
            ("PUT", state, #"{"installed":true}"#), ("PATCH", state, #"{"installed":true}"#),
            ("DELETE", state, nil), ("POST", "/api/v1/reload", nil),
        ]
        let reads = [("GET", state), ("GET", "/api/v1/clients")]
        for (method, path, body) in writes {
            expectRefusal(try call(server, method, path, body: body), 401, "no token", "\(method) \(path) without token")
            expectRefusal(try call(server, method, path, token: "wrong-token-wrong-token", body: body), 401, "unknown token",
                          "\(method) \(path) with a wrong token")
            expectRefusal(try call(server, method, path, body: body, headers: ["Authorization: Basic dXNlcjpwYXNz"]), 401,
                          "unknown token", "\(method) \(path) with Basic auth and a password that is no token")
            expectRefusal(try call(server, method, path, body: body, headers: ["Authorization: Digest abc"]), 401,
                          "not `Bearer <token>`", "\(method) \(path) with Digest auth")
            expectRefusal(try call(server, method, path, token: Self.readToken, body: body), 403, "may only read",
                          "\(method) \(path) with a read token")
        }
        for (method, path) in reads {
            expectRefusal(try call(server, method, path), 401, "no token", "\(method) \(path) without token")
            expectRefusal(try call(server, method, path, token: "wrong-token-wrong-token"), 401, "unknown token", "\(method) \(path)")
        }
        // Nothing above changed anything.
        #expect(try call(server, "GET", state, token: Self.readToken).status == 404)

        let w = Self.writeToken
        for method in ["PUT", "PATCH"] {
            expectRefusal(try call(server, method, state, token: w, body: #"{"a": "#), 400, "not JSON", "\(method) malformed JSON")
            expectRefusal(try call(server, method, state, token: w, body: "[1,2]"), 400, "must be a JSON object", "\(method) array body")
            expectRefusal(try call(server, method, state, token: w, body: "\"text\""), 400, "must be a JSON object", "\(method) string body")
            expectRefusal(try call(server, method, state, token: w, body: "42"), 400, "must be a JSON object", "\(method) number body")
            expectRefusal(try call(server, method, state, token: w, body: #"{"a": {"b": 1}}"#), 400, "value of 'a' is an object",
                          "\(method) nested object")
            expectRefusal(try call(server, method, state, token: w, body: #"{"a": [1]}"#), 400, "value of 'a' is an array",
                          "\(method) array value")
            expectRefusal(try call(server, method, "/api/v1/clients/not-a-mac/state", token: w, body: #"{"a": 1}"#), 400,
                          "not a MAC address", "\(method) invalid MAC")
            expectRefusal(try call(server, method, state + "?ttl=-3", token: w, body: #"{"a": 1}"#), 400, "ttl must be",
                          "\(method) negative ttl")
        }
        expectRefusal(try call(server, "PUT", state, token: w, body: #"{"a": null}"#), 400, "PUT takes strings", "PUT null value")
        expectRefusal(try call(server, "GET", "/api/v1/clients/zz:zz/state", token: w), 400, "not a MAC address", "GET invalid MAC")
        expectRefusal(try call(server, "DELETE", "/api/v1/clients/12345/state", token: w), 400, "not a MAC address", "DELETE invalid MAC")
        expectRefusal(try call(server, "GET", "/api/v1/clients?limit=0", token: w), 400, "limit must be", "list limit 0")
        expectRefusal(try call(server, "POST", state, token: w), 405, "allowed: GET, PUT, PATCH, DELETE", "POST on state")
        expectRefusal(try call(server, "GET", "/api/v1/nothing", token: w), 404, "no such endpoint", "unknown endpoint")
        let big = (1...70).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
        expectRefusal(try call(server, "PUT", state, token: w, body: "{\(big)}"), 422, "keys is more than", "too many keys")

        // A 10 MB body is refused at once, with a 413 the client sees.
        let tenMB = server.dir.appendingPathComponent("big.json").path
        try Data(count: 10 << 20).write(to: URL(fileURLWithPath: tenMB))
        for method in ["PUT", "PATCH"] {
            let r = try call(server, method, state, token: w, bodyFile: tenMB)
            #expect(r.status == 413 && r.body.contains("request body too large"), "\(method) 10 MB: \(r.status) \(r.body.prefix(200))")
        }
        // After all of that the server still answers, and nothing was written.
        #expect(try call(server, "GET", state, token: Self.readToken).status == 404)
        let metrics = try runTool(curl, ["-s", server.base + "/metrics"]).output
        #expect(metrics.contains("bootpolicy_api_auth_failures_total"), "auth failures are counted")
        #expect(metrics.contains("bootpolicy_http_bodies_refused_total"), "refused bodies are counted")
    }

    @Test func writesAreDurableLoggedAndVisible() throws {
        let server = try Server()
        let w = Self.writeToken, r = Self.readToken
        let put = try call(server, "PUT", "/api/v1/clients/52-54-00-AA-BB-01/state?ttl=86400", token: w,
                           body: #"{"installed": true, "rack": "r7", "slot": 12, "weight": 1.5}"#)
        #expect(put.status == 200, "\(put)")
        #expect(put.body.contains(#""state":{"installed":true,"rack":"r7","slot":12,"weight":1.5}"#), "\(put.body)")
        let patch = try call(server, "PATCH", "/api/v1/clients/5254.00aa.bb01/state", token: w, body: #"{"weight": null, "os": "debian"}"#)
        #expect(patch.status == 200 && patch.body.contains(#"{"installed":true,"os":"debian","rack":"r7","slot":12}"#), "\(patch)")
        #expect(try call(server, "PUT", "/api/v1/clients/52:54:00:aa:bb:02/state", token: w, body: #"{"installed": false}"#).status == 200)

        let get = try call(server, "GET", "/api/v1/clients/52:54:00:aa:bb:01/state", token: r)
        #expect(get.status == 200 && get.body.contains(#""os":"debian""#), "\(get)")
        let installed = try call(server, "GET", "/api/v1/clients?key=installed&value=true", token: r)
        #expect(installed.body.contains("52:54:00:aa:bb:01") && !installed.body.contains("52:54:00:aa:bb:02"), "\(installed.body)")
        let page = try call(server, "GET", "/api/v1/clients?limit=1", token: r)
        #expect(page.body.contains(#""total":2,"next":"52:54:00:aa:bb:01""#), "\(page.body)")
        let rest = try call(server, "GET", "/api/v1/clients?limit=1&after=52:54:00:aa:bb:01", token: r)
        #expect(rest.body.contains("52:54:00:aa:bb:02") && rest.body.contains(#""next":null"#), "\(rest.body)")

        // Who, what, before and after, in the log.
        #expect(server.process.waitFor("api: patch state of 52:54:00:aa:bb:01"), "\(server.process.text)")
        let log = server.process.text
        #expect(log.contains("who=installer") && log.contains(#"before={"installed":true,"rack":"r7","slot":12,"weight":1.5}"#)
                && log.contains(#"after={"installed":true,"os":"debian","rack":"r7","slot":12}"#), "\(log)")

        // Acknowledged means durable: kill -9 now, and a new server on the same file has it.
        kill(server.process.process.processIdentifier, SIGKILL)
        server.process.process.waitUntilExit()
        let again = ServerProcess(["serve", "--listen", "127.0.0.1", "--no-dhcp", "--no-tftp", "--http-port", "\(server.httpPort)",
                                   "--state", server.dir.appendingPathComponent("state.db").path])
        defer { again.stop() }
        try again.startReady()
        let after = try call(server, "GET", "/api/v1/clients/52:54:00:aa:bb:01/state")
        #expect(after.status == 200 && after.body.contains(#""os":"debian""#), "after the kill: \(after)")

        // Without a tokens file reads are open and writes are off, and the log says so.
        expectRefusal(try call(server, "PUT", "/api/v1/clients/52:54:00:aa:bb:01/state", body: #"{"a":1}"#), 403,
                      "writes are off", "PUT without a tokens file")
        #expect(again.waitFor("control API: no tokens file"), "\(again.text)")
    }

    /// The installer's last step, through the API, changes the machine's next DHCP answer.
    @Test func aPutChangesTheNextDHCPAnswer() throws {
        let examples = ServerProcess.packageRoot.appendingPathComponent("examples").path
        let server = try Server(policy: examples + "/netboot-once.lua")
        let mac: [UInt8] = [0x02, 0x77, 0x02, 0x00, 0x00, 0x01]
        // Not installed yet: the installer script.
        #expect(ServeStateTests.discover(port: server.dhcpPort, mac: mac, xid: 0x0301)?.bootFile == "once.ipxe")
        let first = try runTool(curl, ["-sS", server.scriptURL("02:77:02:00:00:01")]).output
        #expect(first.contains("installing 02:77:02:00:00:01"), "\(first)")
        // An operator asks for a reinstall: the state goes, the next boot installs again.
        #expect(try call(server, "DELETE", "/api/v1/clients/02:77:02:00:00:01/state", token: Self.writeToken).status == 200)
        _ = ServeStateTests.discover(port: server.dhcpPort, mac: mac, xid: 0x0302)
        let reinstall = try runTool(curl, ["-sS", server.scriptURL("02:77:02:00:00:01")]).output
        #expect(reinstall.contains("installing"), "after DELETE: \(reinstall)")
        // The installer says it is done: the next boot goes to disk.
        let cli = try runTool(ServerProcess.binary.path, ["state", "set", "02:77:02:00:00:01", "installed=true",
                                                         "--server", server.base, "--token-file", server.tokens])
        #expect(cli.status == 0 && cli.output.contains(#""installed":true"#), "\(cli.output)")
        _ = ServeStateTests.discover(port: server.dhcpPort, mac: mac, xid: 0x0303)
        let disk = try runTool(curl, ["-sS", server.scriptURL("02:77:02:00:00:01")]).output
        #expect(disk.contains("booting from disk"), "after PUT: \(disk)")
    }

    @Test func theStateCommand() throws {
        let server = try Server()
        let bin = ServerProcess.binary.path
        let conn = ["--server", server.base, "--token-file", server.tokens]
        let set = try runTool(bin, ["state", "set", "52:54:00:cc:00:01", "installed=true", "count=3", "serial=\"007\"", "name=web 1"] + conn)
        #expect(set.status == 0 && set.output.contains(#"{"count":3,"installed":true,"name":"web 1","serial":"007"}"#), "\(set.output)")
        let one = try runTool(bin, ["state", "get", "52-54-00-cc-00-01", "serial"] + conn)
        #expect(one.status == 0 && one.output == "007\n", "\(one.output)")
        let list = try runTool(bin, ["state", "list", "--key", "installed", "--value", "true"] + conn)
        #expect(list.status == 0 && list.output.contains("52:54:00:cc:00:01"), "\(list.output)")
        let clearKey = try runTool(bin, ["state", "clear", "52:54:00:cc:00:01", "count"] + conn)
        #expect(clearKey.status == 0 && !clearKey.output.contains("count"), "\(clearKey.output)")
        #expect(try runTool(bin, ["state", "clear", "52:54:00:cc:00:01"] + conn).output == "cleared\n")
        let missing = try runTool(bin, ["state", "get", "52:54:00:cc:00:01"] + conn)
        #expect(missing.status == 1 && missing.output.contains("404: no state for 52:54:00:cc:00:01"), "\(missing.output)")
        let noToken = try runTool(bin, ["state", "set", "52:54:00:cc:00:01", "a=1", "--server", server.base])
        #expect(noToken.status == 1 && noToken.output.contains("401: no token"), "\(noToken.output)")
        let down = try runTool(bin, ["state", "get", "52:54:00:cc:00:01", "--server", "http://127.0.0.1:\(freePort())"])
        #expect(down.status == 1 && down.output.contains("cannot reach"), "\(down.output)")
    }

    /// With api.protect_status the page, /api/clients and /metrics need a read token: bearer
    /// for scrapers and scripts, Basic (the token as password) for a browser.
    @Test func theStatusCanNeedAReadToken() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-protect-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = dir.appendingPathComponent("c.yaml").path
        try "api:\n  protect_status: true\n".write(toFile: config, atomically: true, encoding: .utf8)
        let server = try Server(extra: ["--config", config])
        func status(_ path: String, _ auth: [String] = []) throws -> String {
            try runTool(curl, ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "10"] + auth + [server.base + path]).output
        }
        for path in ["/", "/api/clients", "/metrics"] {
            #expect(try status(path) == "401", "\(path) without a token")
            #expect(try status(path, ["-H", "Authorization: Bearer nope-nope-nope-nope"]) == "401", "\(path) with a wrong token")
            #expect(try status(path, ["-H", "Authorization: Bearer \(Self.readToken)"]) == "200", "\(path) with a read token")
            #expect(try status(path, ["-u", "anyone:\(Self.writeToken)"]) == "200", "\(path) with Basic")
        }
        #expect(try status("/healthz") == "200", "health checks need no token")
        let prompt = try runTool(curl, ["-s", "-D", "-", "-o", "/dev/null", server.base + "/"]).output
        #expect(prompt.contains("WWW-Authenticate: Basic realm=\"bootpolicy\""), "a browser is asked for the token:\n\(prompt)")

        // Without a tokens file nobody could read it: a start error.
        let refused = ServerProcess(["serve", "--listen", "127.0.0.1", "--no-dhcp", "--no-tftp", "--http-port", "0", "--config", config])
        #expect(try refused.runToEnd(timeout: 30) != 0)
        #expect(refused.text.contains("api.protect_status needs api.tokens"), "\(refused.text)")
    }

    @Test func tokensFilesThatAreUnsafeAreRefusedAtStart() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("tokens").path
        func refused(_ text: String, mode: mode_t, saying needle: String) throws {
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            chmod(file, mode)
            let p = ServerProcess(["serve", "--listen", "127.0.0.1", "--no-dhcp", "--no-tftp", "--http-port", "0",
                                   "--api-tokens", file])
            #expect(try p.runToEnd(timeout: 30) != 0, "started with \(text)")
            #expect(p.text.contains(needle), "lacks '\(needle)': \(p.text)")
        }
        try refused("write \(Self.writeToken)\n", mode: 0o644, saying: "others may read it (mode 644)")
        try refused("write short\n", mode: 0o600, saying: "tokens:1: token is 5 characters")
        try refused("admin \(Self.writeToken)\n", mode: 0o600, saying: "tokens:1: scope must be read or write")
        try refused("write \(Self.writeToken)\nread \(Self.writeToken)\n", mode: 0o600, saying: "tokens:2: the same token appears twice")
        try refused("# nothing\n", mode: 0o600, saying: "holds no token")
    }

    @Test func reloadAnswersWhetherTheChainLoaded() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-rl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let policy = dir.appendingPathComponent("mine.lua").path
        try "return { name = \"mine\", dhcp = function(req) return nil end }\n".write(toFile: policy, atomically: true, encoding: .utf8)
        let server = try Server(policy: policy)
        let ok = try call(server, "POST", "/api/v1/reload", token: Self.writeToken)
        #expect(ok.status == 200 && ok.body.contains(#"{"loaded":true,"chain":["mine"]}"#), "\(ok)")
        try "return { name = \"mine\",\n  dhcp = function(req) return nil end\n  oops }\n".write(toFile: policy, atomically: true, encoding: .utf8)
        let bad = try call(server, "POST", "/api/v1/reload", token: Self.writeToken)
        #expect(bad.status == 422 && bad.body.contains(#""loaded":false"#) && bad.body.contains("mine.lua:3"), "\(bad)")
        #expect(server.process.waitFor("reload refused, the running policies stay (api: installer)"), "\(server.process.text)")
    }

    @Test func timestampsAreRFC3339InUTC() {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        for t in [0.0, 951_782_400.5, 1_764_720_000, 4_102_444_799.9, 1_798_761_599] {
            let d = Date(timeIntervalSince1970: t)
            #expect(ControlAPI.timestamp(d) == f.string(from: d), "\(t)")
        }
    }

    @Test func theOpenAPIDocumentIsTheOneInTheRepo() throws {
        let server = try Server()
        let served = try runTool(curl, ["-s", server.base + "/api/v1/openapi.json"]).output
        let file = try String(contentsOf: ServerProcess.packageRoot.appendingPathComponent("docs/api/openapi.json"), encoding: .utf8)
        #expect(served == file.trimmingCharacters(in: .newlines), "run scripts/gen-openapi.sh after editing docs/api/openapi.json")
    }

    /// schemathesis generates requests from the OpenAPI document (valid and invalid) and checks
    /// every answer against it: status codes, content types, response schemas, auth.
    static let schemathesis: String? = {
        let tool = ["/usr/local/bin/schemathesis", "/root/.pyenv/shims/schemathesis"].first { FileManager.default.isExecutableFile(atPath: $0) }
            ?? (try? runTool("/bin/sh", ["-c", "command -v schemathesis"]).output.trimmingCharacters(in: .whitespacesAndNewlines))
        guard let tool, !tool.isEmpty, FileManager.default.isExecutableFile(atPath: tool) else { return nil }
        return tool
    }()

    @Test(.requires(Requirement(schemathesis != nil, "schemathesis is not installed (scripts/deps.sh test installs it from PyPI)")))
    func schemathesisFindsNothing() throws {
        let tool = try #require(Self.schemathesis)
        let server = try Server()
        // PATCH creates a client's state (a merge patch onto nothing), so a deleted client
        // comes back by design: schemathesis's use_after_free check would count that.
        let r = try runTool(tool, ["run", ServerProcess.packageRoot.appendingPathComponent("docs/api/openapi.json").path,
                                   "--url", server.base, "-H", "Authorization: Bearer \(Self.writeToken)",
                                   "--checks", "all", "--exclude-checks", "use_after_free",
                                   "--phases", "examples,coverage,fuzzing,stateful", "--max-examples", "60", "-w", "1",
                                   "--seed", "1"], timeout: 400)
        #expect(r.status == 0, "\(r.output.suffix(6000))")
        #expect(r.output.contains("passed"), "\(r.output.suffix(2000))")
    }

    /// A policy's http hook sees the method, the headers and the body, so it can take an
    /// authenticated callback itself.
    @Test func policiesSeeMethodHeadersAndBody() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-cb-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let policy = dir.appendingPathComponent("callback.lua").path
        try """
            return {
              name = "callback",
              http = function(req)
                if req.path ~= "/done" then return nil end
                if req.method ~= "POST" then return { refuse = "POST only", status = 405 } end
                if req.headers["x-secret"] ~= "s3cret" then return { refuse = "bad secret", status = 403 } end
                state.set(req.query.mac, { done = req.body })
                return { content = "ok " .. req.method .. " " .. #req.body .. " " .. (req.headers["content-type"] or "") }
              end,
            }
            """.write(toFile: policy, atomically: true, encoding: .utf8)
        let server = try Server(policy: policy)
        let ok = try runTool(curl, ["-s", "-X", "POST", "-H", "X-Secret: s3cret", "-H", "Content-Type: text/plain",
                                    "--data-binary", "finished", server.base + "/done?mac=52:54:00:dd:00:01"]).output
        #expect(ok == "ok POST 8 text/plain", "\(ok)")
        let denied = try call(server, "POST", "/done?mac=52:54:00:dd:00:01", headers: ["X-Secret: nope"])
        #expect(denied.status == 403, "\(denied)")
        let get = try call(server, "GET", "/done?mac=52:54:00:dd:00:01")
        #expect(get.status == 405, "\(get)")
        let state = try call(server, "GET", "/api/v1/clients/52:54:00:dd:00:01/state", token: Self.readToken)
        #expect(state.body.contains(#""done":"finished""#), "\(state)")
        // A POST to a path no policy answers is not a file upload.
        #expect(try call(server, "POST", "/boot.ipxe").status == 405)
    }
}
