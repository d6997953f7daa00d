import Foundation
import Protocols
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Durability measured: full DHCP under load, killed with -9 mid-flight, four times over. Every
/// lease a client was ACKed before the kill must be in the store when the server comes back
/// (the ACK leaves only after the commit), and no address may then be another client's.
@Suite(.serialized) struct LeaseDurabilityTests {
    final class Acks: @unchecked Sendable {
        let lock = NSLock()
        var got: [(mac: String, address: String)] = []
        var stop = false
    }

    /// "address mac" of every active lease the server lists.
    func held(_ server: ControlAPITests.Server) throws -> Set<String> {
        let body = try ControlAPITests().call(server, "GET", "/api/v1/leases?active=true", token: ControlAPITests.readToken).body
        let json = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
        let leases = try #require(json["leases"] as? [[String: Any]])
        return Set(leases.compactMap { l in (l["address"] as? String).flatMap { a in (l["mac"] as? String).map { a + " " + $0 } } })
    }

    @Test func noAcknowledgedLeaseIsLostToKill9() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-lease-kill-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let state = dir.appendingPathComponent("state.db").path
        let extra = ["--dhcp-range", "127.77.0.1,127.77.255.254,/8,1h", "--no-ping"]
        var all: [(mac: String, address: String)] = []
        for round in 0..<4 {
            let server = try ControlAPITests.Server(state: state, extra: extra)
            // What the previous rounds were ACKed is all there, and nothing else holds it.
            let listed = try held(server)
            let missing = all.filter { !listed.contains($0.address + " " + $0.mac) }
            #expect(missing.isEmpty, "round \(round): \(missing.count) of \(all.count) acknowledged leases lost, e.g. \(missing.prefix(3))")
            // Load from 4 threads, new machines each round, until the kill.
            let acks = Acks()
            let port = server.dhcpPort
            let workers = (0..<4).map { worker in
                TestPostgres.Worker {
                    for n in 0..<5_000 {
                        if acks.lock.withLock({ acks.stop }) { return }
                        let mac: [UInt8] = [0x02, 0x88, UInt8(round), UInt8(worker), UInt8(n >> 8), UInt8(n & 0xff)]
                        var d = DHCPMessage(op: .request, xid: UInt32(round << 24 | worker << 16 | n), flags: 0x8000, chaddr: mac)
                        d.messageType = .discover
                        guard let offer = ServeStateTests.exchange(port: port, d), offer.messageType == .offer else { continue }
                        var r = DHCPMessage(op: .request, xid: d.xid ^ 0x8000_0000, flags: 0x8000, chaddr: mac)
                        r.messageType = .request
                        r.options.set(50, offer.yiaddr.bytes)
                        r.options.set(54, [127, 0, 0, 1])
                        guard let ack = ServeStateTests.exchange(port: port, r), ack.messageType == .ack else { continue }
                        let text = mac.map { String(format: "%02x", $0) }.joined(separator: ":")
                        acks.lock.withLock { acks.got.append((text, ack.yiaddr.description)) }
                    }
                }
            }
            Thread.sleep(forTimeInterval: 1.5)
            server.process.signal(SIGKILL)
            server.process.process.waitUntilExit()
            acks.lock.withLock { acks.stop = true }
            #expect(workers.allSatisfy { $0.join(timeout: 30) })
            let got = acks.lock.withLock { acks.got }
            #expect(got.count > 50, "round \(round): only \(got.count) ACKs before the kill: no load")
            all += got
            print("lease durability: round \(round): \(got.count) ACKs before kill -9, \(all.count) in all")
        }
        let server = try ControlAPITests.Server(state: state, extra: extra)
        let listed = try held(server)
        let missing = all.filter { !listed.contains($0.address + " " + $0.mac) }
        #expect(missing.isEmpty, "\(missing.count) of \(all.count) acknowledged leases lost, e.g. \(missing.prefix(3))")
        #expect(Set(all.map(\.address)).count == all.count, "an address ACKed to two clients across the kills")
        print("lease durability: \(all.count) acknowledged leases over 4 kill -9s, \(missing.count) lost")
    }
}
