import Foundation
import Protocols
import Testing
@testable import LuaBridge

/// Data files as policies see them (`data.<name>`), the errors a broken one gives, the `net`
/// helpers and the `server` facts.
@Suite struct PolicyDataTests {
    final class Dir {
        let url: URL
        init() throws {
            url = FileManager.default.temporaryDirectory.appendingPathComponent("bp-data-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        }
        deinit { try? FileManager.default.removeItem(at: url) }
        func write(_ name: String, _ text: String) throws -> String {
            let path = url.appendingPathComponent(name).path
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
    }

    /// Runs `body` (Lua statements ending in `return <string>`) as an http hook over `sources`.
    func run(_ body: String, _ sources: [DataSource] = [], server: ServerFacts = ServerFacts(), in dir: Dir,
             request: BootRequest = BootRequest(kind: .http, mac: "52:54:00:aa:00:01", serverAddress: "10.1.2.3", path: "/x")) throws -> String {
        let policy = try dir.write("p\(UUID().uuidString.prefix(6)).lua", "return { http = function(req) local function f()\n\(body)\nend return { content = f() } end }\n")
        let chain = try PolicyChain(specs: [PolicySpec(path: policy)], limits: PolicyLimits(states: 2), logger: TestPolicies.logger,
                                    data: try PolicyData.load(sources), server: server)
        let (decision, steps) = chain.decideTraced(request)
        if case .error(let m)? = steps.last?.outcome { return "error: \(m)" }
        return decision?.content.map { String(decoding: $0, as: UTF8.self) } ?? "nil"
    }

    func loadError(_ name: String, _ text: String, key: String? = nil, format: DataSource.KeyFormat = .verbatim) throws -> String {
        let dir = try Dir()
        let path = try dir.write(name, text)
        do {
            _ = try PolicyData.load([DataSource(name: "d", path: path, key: key, keyFormat: format)])
            return "loaded"
        } catch {
            return error.description.replacingOccurrences(of: dir.url.path + "/", with: "")
        }
    }

    @Test func yamlJSONAndCSVBecomeLuaTables() throws {
        let dir = try Dir()
        let yaml = try dir.write("m.yaml", """
            racks:
              r1: { row: 3, pdu: [a, b], up: true, temp: 21.5, mac: 52:54:00:00:00:02, code: "007", none: ~ }
            """)
        let json = try dir.write("m.json", #"{"sites": [{"name": "ams", "vlan": 12}, {"name": "fra", "vlan": 13}], "flag": false}"#)
        let csv = try dir.write("m.csv", "mac,name,note\r\n52:54:00:aa:00:01,web-01,\"said \"\"hi\"\", twice\"\n52:54:00:aa:00:02,db-01,\n\n")
        let sources = [DataSource(name: "y", path: yaml), DataSource(name: "j", path: json), DataSource(name: "c", path: csv)]
        let got = try run("""
            local r = data.y.racks.r1
            return table.concat({ math.type(r.row), r.pdu[2], #r.pdu, tostring(r.up), tostring(r.temp), r.mac, r.code, tostring(r.none),
              data.j.sites[2].name, tostring(data.j.sites[1].vlan), tostring(data.j.flag),
              #data.c, data.c[1].name, data.c[1].note, tostring(data.c[2].note) }, "|")
            """, sources, in: dir)
        // A MAC is text (YAML 1.2, not 1.1's base-60 integer), a quoted number stays text, an
        // empty CSV cell and a YAML null are absent.
        #expect(got == "integer|b|2|true|21.5|52:54:00:00:00:02|007|nil|fra|12|false|2|web-01|said \"hi\", twice|nil")
    }

    @Test func keyedRowsAreFoundByTheirKeyAndInOrder() throws {
        let dir = try Dir()
        let csv = try dir.write("m.csv", "mac,name\n52-54-00-AA-00-01,web-01\n5254.00aa.0002,db-01\n")
        let yaml = try dir.write("g.yaml", "- { id: a, v: 1 }\n- { id: b, v: 2 }\n")
        let got = try run("""
            local m = data.m[req.mac]
            local n = 0
            for i, row in ipairs(data.m) do n = n + i end
            local keys = 0
            for k in pairs(data.g) do keys = keys + 1 end
            return m.name .. " " .. data.m["52:54:00:aa:00:02"].name .. " " .. #data.m .. " " .. n .. " " .. data.g.b.v .. " " .. keys
              .. " " .. tostring(data.m[1] == data.m[req.mac])
            """, [DataSource(name: "m", path: csv, key: "mac", keyFormat: .mac), DataSource(name: "g", path: yaml, key: "id")], in: dir)
        // The same row by position and by key is one table; pairs sees rows and keys.
        #expect(got == "web-01 db-01 2 3 2 4 true")
    }

    @Test func dataIsReadOnlyEveryWay() throws {
        let dir = try Dir()
        let yaml = try dir.write("m.yaml", "a: { b: 1 }\nlist: [1, 2]\n")
        let sources = [DataSource(name: "m", path: yaml)]
        for (attempt, want) in [
            ("data.m.a.b = 2", "read-only (cannot set field 'b')"),
            ("data.m.new = 1", "read-only (cannot set field 'new')"),
            ("data.x = 1", "read-only"),
            ("table.insert(data.m.list, 3)", "read-only"),
            ("rawset(data.m, 'a', 1)", "read-only"),
            ("setmetatable(data.m, nil)", "protected metatable"),
        ] {
            let got = try run("\(attempt)\nreturn 'changed'", sources, in: dir)
            #expect(got.hasPrefix("error: ") && got.contains(want), "\(attempt): \(got)")
            #expect(got.contains(":2:"), "the error names the policy's line: \(got)")
        }
        #expect(try run("return tostring(getmetatable(data.m))", sources, in: dir) == "read-only data")
        #expect(try run("return tostring(data.m.a.b)", sources, in: dir) == "1", "nothing changed")
    }

    @Test func brokenFilesNameLineAndColumn() throws {
        #expect(try loadError("d.yaml", "a: 1\nb: [1, 2\n") == "d.yaml:3:1: while parsing a flow sequence did not find expected ',' or ']'")
        #expect(try loadError("d.yaml", "a: 1\n  b: 2\n").hasPrefix("d.yaml:2:4: "))
        #expect(try loadError("d.yaml", "a: 1\nb: 2\na: 3\n") == "d.yaml:3:1: duplicate key 'a' (first at line 1)")
        #expect(try loadError("d.yaml", "- 1\n- ~\n") == "d.yaml:2:3: null in a list (a Lua list cannot hold nil; leave the item out)")
        let json = try loadError("d.json", "{\"a\": 1,\n \"b\": }\n")
        #expect(json.hasPrefix("d.json:2:"), "\(json)")
        #expect(try loadError("d.csv", "mac,name\na,b\nc\n") == "d.csv:3: row has 1 cells, the header has 2")
        #expect(try loadError("d.csv", "mac,name\n\"a,b\n") == "d.csv:2:1: unterminated quoted cell (opened here)")
        #expect(try loadError("d.csv", "mac,name\na\"b,c\n") == "d.csv:2:2: a quote inside an unquoted cell (quote the whole cell and double the quote)")
        #expect(try loadError("d.csv", "mac,mac\n") == "d.csv:1: column name 'mac' appears twice in the header row")
        #expect(try loadError("d.csv", "") == "d.csv:1: empty file: a CSV data file needs a header row")
        #expect(try loadError("d.csv", "mac,name\nnot-a-mac,x\n", key: "mac", format: .mac) == "d.csv:2: 'mac' is not a MAC address: not-a-mac")
        #expect(try loadError("d.csv", "mac,name\naa:bb:cc:dd:ee:ff,x\nAA-BB-CC-DD-EE-FF,y\n", key: "mac", format: .mac)
                == "d.csv:3: duplicate key aa:bb:cc:dd:ee:ff (first at line 2)")
        #expect(try loadError("d.csv", "mac,name\n", key: "serial") == "d.csv:1: key column 'serial' is not in the header row (mac, name)")
        #expect(try loadError("d.yaml", "a: 1\n", key: "id") == "d.yaml:1:1: key: id needs a list of tables at the top of the file")
        #expect(try loadError("d.yaml", "- { id: a }\n- { v: 2 }\n", key: "id") == "d.yaml:2:3: row has no 'id' (the key field)")
        #expect(try loadError("d.txt", "x") == "d.txt: unknown data format (name the file .yaml, .yml, .json or .csv)")
        #expect(try loadError("d.yaml", "a: &x [1]\nb: *x\n") == "loaded", "aliases expand as YAML says")
        #expect(throws: DataError.self) { try PolicyData.load([DataSource(name: "d", path: "/nonexistent/d.yaml")]) }
        #expect(throws: DataError.self) { try PolicyData.load([DataSource(name: "not-a-name", path: "/x.yaml")]) }
    }

    @Test func netHelpers() throws {
        let dir = try Dir()
        let got = try run("""
            return table.concat({
              tostring(net.in_cidr("10.7.0.0/16", "10.7.200.1")), tostring(net.in_cidr("10.7.0.0/16", "10.8.0.1")),
              tostring(net.in_cidr("0.0.0.0/0", "1.2.3.4")), tostring(net.in_cidr("10.7.1.1", "10.7.1.1")),
              tostring(net.in_cidr({ "192.168.0.0/16", "10.0.0.0/8" }, "10.1.1.1")),
              tostring(net.in_cidr("10.0.0.0/8", nil)), tostring(net.in_cidr("10.0.0.0/8", "fd77::1")),
              tostring(net.ipv4("1.2.3.4")), tostring(net.ipv4("1.2.3.256")), net.ipv4_string(167772161),
            }, " ")
            """, in: dir)
        #expect(got == "true false true true true false false 16909060 nil 10.0.0.1")
        let bad = try run("return tostring(net.in_cidr(\"10.0.0.0/33\", \"10.0.0.1\"))", in: dir)
        #expect(bad.contains(":2: net.in_cidr: not an IPv4 CIDR: 10.0.0.0/33"), "\(bad)")
    }

    @Test func serverFactsBuildTheServersOwnURLs() throws {
        let dir = try Dir()
        let body = "return tostring(server.http_url(req)) .. ' ' .. tostring(server.tftp_address(req)) .. ' ' .. tostring(server.http_port)"
        #expect(try run(body, server: ServerFacts(httpPort: 18080, tftpPort: 69), in: dir) == "http://10.1.2.3:18080 10.1.2.3 18080")
        #expect(try run(body, server: ServerFacts(address: "10.9.9.9", httpPort: 80), in: dir) == "http://10.9.9.9 nil 80")
        #expect(try run(body, server: ServerFacts(), in: dir) == "nil nil nil", "HTTP and TFTP off")
        let v6 = BootRequest(kind: .http, mac: "52:54:00:aa:00:01", serverAddress: "fd77::2", path: "/x")
        #expect(try run(body, server: ServerFacts(httpPort: 8080, tftpPort: 69), in: dir, request: v6) == "http://[fd77::2]:8080 fd77::2 8080")
    }

    /// A state's data sits outside the per-request memory cap: a policy with data bigger than
    /// the cap still has the whole cap for its requests.
    @Test func dataDoesNotEatTheRequestMemoryCap() throws {
        let dir = try Dir()
        var csv = "id,blob\n"
        for i in 0..<3000 { csv += "r\(i),\(String(repeating: "x", count: 1000))\n" }
        let path = try dir.write("big.csv", csv)
        let policy = try dir.write("p.lua", "return { http = function(req) local t = {} for i = 1, 5000 do t[i] = ('y'):rep(100) .. i end return { content = data.big.r2999.id } end }\n")
        let chain = try PolicyChain(specs: [PolicySpec(path: policy)], limits: PolicyLimits(memoryBytes: 2 << 20, states: 1),
                                    logger: TestPolicies.logger,
                                    data: try PolicyData.load([DataSource(name: "big", path: path, key: "id")]))
        #expect(chain.dataBytesPerState > 3_000_000, "\(chain.dataBytesPerState)")
        let d = chain.decide(BootRequest(kind: .http, mac: "52:54:00:aa:00:01", path: "/x"))
        #expect(d?.content.map { String(decoding: $0, as: UTF8.self) } == "r2999")
    }
}
