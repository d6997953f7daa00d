import Foundation
import Protocols
import Testing

/// `bootpolicy leases list|show|release` against a real server with full DHCP on loopback:
/// what a DORA leased is listed and shown, a read token cannot release it, a write token can.
@Suite struct LeasesCommandTests {
    func run(_ args: [String], token: String, server: ControlAPITests.Server) throws -> (status: Int32, output: String) {
        let file = server.dir.appendingPathComponent("token-\(token.prefix(1))")
        try token.write(to: file, atomically: true, encoding: .utf8)
        let p = ServerProcess(["leases"] + args + ["--server", server.base, "--token-file", file.path])
        let status = try p.runToEnd(timeout: 30)
        return (status, p.text)
    }

    @Test func listShowAndRelease() throws {
        let server = try ControlAPITests.Server(extra: ["--dhcp-range", "127.78.0.10,127.78.0.12,/8,1h", "--no-ping"])
        let mac: [UInt8] = [0x52, 0x54, 0x00, 0x78, 0x00, 0x01]
        var d = DHCPMessage(op: .request, xid: 0x1E05, flags: 0x8000, chaddr: mac)
        d.messageType = .discover
        let offer = try #require(ServeStateTests.exchange(port: server.dhcpPort, d))
        var r = DHCPMessage(op: .request, xid: 0x1E06, flags: 0x8000, chaddr: mac)
        r.messageType = .request
        r.options.set(50, offer.yiaddr.bytes)
        r.options.set(54, [127, 0, 0, 1])
        r.options.set(12, Array("rack1-node1".utf8))
        let ack = try #require(ServeStateTests.exchange(port: server.dhcpPort, r))
        #expect(ack.messageType == .ack && ack.yiaddr.description == "127.78.0.10")

        let list = try run(["list"], token: ControlAPITests.readToken, server: server)
        #expect(list.status == 0, "\(list.output)")
        #expect(list.output.contains("range 127.78.0.10-127.78.0.12 (subnet 127.0.0.0/8, lease 3600 s): 1 of 3 addresses in use"), "\(list.output)")
        let row = list.output.split(separator: "\n").first { $0.hasPrefix("127.78.0.10 ") }
        #expect(row?.contains("52:54:00:78:00:01") == true && row?.contains("bound") == true && row?.contains("rack1-node1") == true, "\(list.output)")

        let json = try run(["list", "--json", "--active"], token: ControlAPITests.readToken, server: server)
        let lines = json.output.split(separator: "\n").filter { $0.hasPrefix("{") }
        #expect(lines.count == 2 && lines[0].hasPrefix("{\"range\":") && lines[1].contains("\"address\":\"127.78.0.10\""), "\(json.output)")

        let show = try run(["show", "127.78.0.10"], token: ControlAPITests.readToken, server: server)
        #expect(show.status == 0 && show.output.contains("\"hostname\":\"rack1-node1\""), "\(show.output)")
        let missing = try run(["show", "127.78.0.11"], token: ControlAPITests.readToken, server: server)
        #expect(missing.status == 1 && missing.output.contains("bootpolicy leases: 404: no lease record for 127.78.0.11"), "\(missing.output)")
        let bad = try run(["show", "nope"], token: ControlAPITests.readToken, server: server)
        #expect(bad.status != 0 && bad.output.contains("not an IPv4 address"), "\(bad.output)")

        let denied = try run(["release", "127.78.0.10"], token: ControlAPITests.readToken, server: server)
        #expect(denied.status == 1 && denied.output.contains("bootpolicy leases: 403"), "\(denied.output)")
        let released = try run(["release", "127.78.0.10"], token: ControlAPITests.writeToken, server: server)
        #expect(released.status == 0 && released.output.contains("released 127.78.0.10"), "\(released.output)")
        let after = try run(["list", "--active"], token: ControlAPITests.readToken, server: server)
        #expect(after.output.contains("0 of 3 addresses in use") && !after.output.contains("52:54:00:78:00:01"), "\(after.output)")
    }
}
