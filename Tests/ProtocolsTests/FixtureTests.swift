import Foundation
import Testing
@testable import Protocols

@Suite struct FixtureTests {
    func temporary(_ name: String) -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("bp-fixture-\(UUID().uuidString)-\(name)")
    }

    @Test func dhcpFixtureRoundTripsThroughJSON() throws {
        let message = Build.discover(arch: 7)
        let fixture = Fixture(name: "uefi", origin: "test", message: message, serverPort: 4011, source: "0.0.0.0", interface: "bp0")
        let url = temporary("uefi.json")
        try fixture.encoded().write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let text = try String(contentsOf: url, encoding: .utf8)
        #expect(text.contains("\"server_port\" : 4011"))
        #expect(text.contains("\"kind\" : \"dhcp\""))
        let loaded = try Fixture.load(from: url)
        #expect(loaded == fixture)
        #expect(try loaded.message() == message)
        let request = try loaded.bootRequest()
        #expect(request.arch == "efi-x64" && request.serverPort == 4011 && request.interface == "bp0")
    }

    @Test func loaderIgnoresDecodedAndDefaultsPort() throws {
        let raw = Hex.encode(Build.discover().bytes)
        let json = #"{"name":"x","kind":"dhcp","raw":"\#(raw)","decoded":{"op":"nonsense"}}"#
        let url = temporary("x.json")
        try Data(json.utf8).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        // `decoded` does not parse as a Summary: loaders must not care.
        let fixture = try Fixture.load(from: url)
        #expect(fixture.decoded == nil)
        #expect(try fixture.bootRequest().serverPort == 67)
    }

    @Test func tftpAndHTTPFixtures() throws {
        let tftp = #"{ "name": "t", "kind": "tftp", "mac": "52:54:00:12:34:56", "source": "192.168.77.50", "path": "bootstrap.ipxe" }"#
        let http = #"{ "name": "h", "kind": "http", "mac": "52:54:00:12:34:56", "source": "192.168.77.50", "path": "/boot.ipxe", "query": { "mac": "52-54-00-12-34-56", "arch": "x86_64" } }"#
        for (json, kind) in [(tftp, BootRequest.Kind.tftp), (http, .http)] {
            let url = temporary("\(kind).json")
            try Data(json.utf8).write(to: url)
            defer { try? FileManager.default.removeItem(at: url) }
            let request = try Fixture.load(from: url).bootRequest()
            #expect(request.kind == kind && request.mac == "52:54:00:12:34:56" && request.clientAddress == "192.168.77.50")
            if kind == .http { #expect(request.query["arch"] == "x86_64" && request.path == "/boot.ipxe") }
        }
    }

    @Test func errorsNameTheField() throws {
        let url = temporary("bad.json")
        defer { try? FileManager.default.removeItem(at: url) }
        try Data(#"{"name":"b","kind":"dhcp","raw":"zz"}"#.utf8).write(to: url)
        #expect(throws: DHCPError.malformed(field: "raw", reason: "not hex")) { try Fixture.load(from: url).bootRequest() }
        try Data(#"{"kind":"dhcp"}"#.utf8).write(to: url)
        #expect(throws: DHCPError.malformed(field: url.lastPathComponent, reason: "missing field name")) { try Fixture.load(from: url) }
    }
}
