import Foundation
import Testing

/// `bootpolicy check` refuses the full-DHCP ranges and reservations `serve` would refuse at
/// start, naming them, so a broken `dhcp.ranges` is caught before it reaches a server.
@Suite struct CheckRangesTests {
    func check(_ yaml: String) throws -> (status: Int32, output: String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-check-ranges-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("c.yaml")
        try yaml.write(to: file, atomically: true, encoding: .utf8)
        let p = ServerProcess(["check", "--no-run", "--config", file.path])
        let status = try p.runToEnd(timeout: 60)
        return (status, p.text)
    }

    @Test func goodRangesPassAndAreListed() throws {
        let r = try check("""
            dhcp:
              ranges:
                - range: 10.9.0.100,10.9.0.150,255.255.255.0,12h
                  routers: [10.9.0.1]
              reservations:
                - {mac: "52:54:00:12:34:56", address: 10.9.0.20}
            """)
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("ok    dhcp.ranges: 10.9.0.100-10.9.0.150 (10.9.0.0/24); 1 reservations"), "\(r.output)")
    }

    @Test(arguments: [
        ("dhcp:\n  ranges:\n    - range: 10.9.0.150,10.9.0.100,255.255.255.0\n", "dhcp.ranges 10.9.0.150,10.9.0.100,255.255.255.0"),
        ("dhcp:\n  ranges:\n    - range: 10.9.0.100,10.9.0.150,255.255.255.0\n      routers: [ten]\n", "routers: 'ten' is not an IPv4 address"),
        ("dhcp:\n  ranges:\n    - range: 10.9.0.100,10.9.0.150,255.255.255.0\n  reservations:\n    - {mac: \"52:54:00:12:34:56\", address: 10.8.0.20}\n",
         "'10.8.0.20' is not an address in a served subnet"),
        ("dhcp:\n  ranges:\n    - range: 10.9.0.100,10.9.0.150,255.255.255.0\n    - range: 10.9.0.200,10.9.0.250,255.255.255.0\n", "overlaps"),
        ("dhcp:\n  ranges:\n    - range: nonsense\n", "--dhcp-range nonsense"),
    ])
    func badRangesAreRefused(yaml: String, needle: String) throws {
        let r = try check(yaml)
        #expect(r.status == 1, "\(r.output)")
        #expect(r.output.contains("bootpolicy check: ") && r.output.contains(needle), "wanted '\(needle)':\n\(r.output)")
    }

    @Test func aNetmaskOnlyTheServerKnowsIsAWarning() throws {
        let r = try check("dhcp:\n  ranges:\n    - range: 10.123.45.10,10.123.45.20\n")
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("warning: dhcp.ranges 10.123.45.10,10.123.45.20: no interface here is in its network"), "\(r.output)")
    }
}
