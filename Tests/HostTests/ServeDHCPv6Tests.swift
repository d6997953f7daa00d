import Foundation
import Protocols
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `serve --dhcp6` end to end on ::1: the Solicits OVMF and iPXE really sent, answered by the
/// real server, and the URLs it hands out fetched with real clients (tftp-hpa over IPv6, curl).
@Suite(.serialized) struct ServeDHCPv6Tests {
    static func solicit(_ name: String) throws -> [UInt8] {
        let url = ServerProcess.packageRoot.appendingPathComponent("fixtures/lab/v6/\(name).solicit.hex")
        return try #require(Hex.decode(try String(contentsOf: url, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
    }

    /// Sends `bytes` to [::1]:port, retrying (UDP) until a reply with the same transaction id.
    static func exchange(_ bytes: [UInt8], port: Int, tries: Int = 10) -> DHCPv6Packet? {
        let fd = socket(AF_INET6, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var tv = timeval(tv_sec: 0, tv_usec: 300_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var to = sockaddr_in6()
        to.sin6_family = sa_family_t(AF_INET6)
        to.sin6_port = in_port_t(UInt16(port).bigEndian)
        withUnsafeMutableBytes(of: &to.sin6_addr) { $0[15] = 1 }
        guard let sent = try? DHCPv6Packet(bytes: bytes) else { return nil }
        var buffer = [UInt8](repeating: 0, count: 2048)
        for _ in 0..<tries {
            _ = bytes.withUnsafeBytes { b in
                withUnsafePointer(to: &to) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, b.baseAddress, b.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
            }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n > 0, let reply = try? DHCPv6Packet(bytes: Array(buffer[..<n])),
               reply.message.transactionID == sent.message.transactionID { return reply }
        }
        return nil
    }

    @Test func bootOnlyAnswersAndTheURLsItGivesAreServedOverIPv6() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-v6-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        // One fixed port: with 0 the IPv4 and IPv6 listeners would each get their own, and the
        // URLs policies build name one port.
        let httpPort = freePort()
        let binary = (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try Data(binary).write(to: dir.appendingPathComponent("ipxe.efi"))
        let server = ServerProcess(["serve", "--listen", "127.0.0.1", "--no-dhcp", "--dhcp6", "--dhcp6-listen", "::1",
                                    "--dhcp6-port", "0", "--dhcp6-port", "0", "--tftp-root", dir.path, "--tftp-port", "0",
                                    "--http-root", dir.path, "--http-port", "\(httpPort)", "--policy", "arch-aware"])
        defer { server.stop() }
        let ready = try server.startReady()
        let v6 = ready.listeners.filter { $0.service == "dhcpv6" }
        #expect(v6.count == 2 && v6.allSatisfy { $0.host == "::1" }, "\(ready.listeners)")
        let port = try #require(v6.first?.port)
        let tftp = try #require(ready.listeners.first { $0.service == "tftp" && $0.host == "::1" }?.port, "no TFTP on ::1: \(ready.listeners)")
        let http = try #require(ready.listeners.first { $0.service == "http" && $0.host == "::1" }?.port, "no HTTP on ::1")

        // OVMF PXEv6: a boot-only Advertise whose tftp:// URL a real TFTP client can fetch.
        let advertise = try #require(Self.exchange(try Self.solicit("ovmf-pxe6"), port: port), "no Advertise:\n\(server.text)")
        #expect(advertise.message.type == .advertise && !advertise.message.options.contains(DHCPv6OptionCode.iaNA))
        #expect(advertise.message.options.bootFileURL == "tftp://[::1]/ipxe.efi")
        let got = dir.appendingPathComponent("got.efi").path
        let t = try runTool("/usr/bin/tftp", ["-6", "::1", "\(tftp)", "-m", "binary", "-c", "get", "ipxe.efi", got])
        #expect(t.status == 0 && (try? Data(contentsOf: URL(fileURLWithPath: got))) == Data(binary), "tftp -6: \(t.output)")

        // EDK2's follow-up on the 4011 role port.
        var request = try DHCPv6Packet(bytes: try Self.solicit("ovmf-pxe6")).message
        request.type = .request
        request.options.append(DHCPv6OptionCode.serverID, try #require(advertise.message.options[code: DHCPv6OptionCode.serverID]))
        let reply = try #require(Self.exchange(request.bytes, port: v6[1].port))
        #expect(reply.message.type == .reply && reply.message.options.bootFileURL == "tftp://[::1]/ipxe.efi")

        // HTTPv6 boot: a bracketed http:// URL on our IPv6 listener, fetched by curl.
        let http6 = try #require(Self.exchange(try Self.solicit("ovmf-pxe6.http"), port: port))
        let url = try #require(http6.message.options.bootFileURL)
        #expect(http == httpPort)
        #expect(url == "http://[::1]:\(http)/ipxe.efi" && http6.message.options.vendorClass?.data.first == Array("HTTPClient".utf8))
        let c = try runTool("/usr/bin/curl", ["-sg", "-m", "10", "-o", got, "-w", "%{http_code}", url])
        #expect(c.output == "200" && (try? Data(contentsOf: URL(fileURLWithPath: got))) == Data(binary), "curl: \(c.output)")

        // A plain address Solicit and garbage: counted, unanswered.
        #expect(Self.exchange(try Self.solicit("ovmf-pxe6.none"), port: port, tries: 2) == nil)
        let metrics = try runTool("/usr/bin/curl", ["-s", "-m", "10", "http://127.0.0.1:\(http)/metrics"]).output
        #expect(metrics.contains(#"bootpolicy_dhcp6_dropped_total{reason="not_netboot"} 2"#), "\(metrics.split(separator: "\n").filter { $0.contains("dhcp6") })")
        #expect(metrics.contains(#"bootpolicy_dhcp6_replies_total{type="advertise"} 2"#))
        #expect(server.text.contains("DHCPv6(-) solicit 52:54:00:79:00:02 arch=efi-x64 firmware=uefi -> ADVERTISE"), "\(server.text)")
        // The decision journal keeps the DHCPv6 message itself, under the client's MAC.
        var journal = ""
        for _ in 0..<50 {
            journal = try runTool("/usr/bin/curl", ["-s", "-m", "10", "http://127.0.0.1:\(http)/api/v1/clients/52:54:00:79:00:02/decisions"]).output
            if journal.contains("solicit efi-x64 uefi") { break }
            Thread.sleep(forTimeInterval: 0.1)  // the journal writes off the answer's path
        }
        #expect(journal.contains("\"summary\":\"solicit efi-x64 uefi\"") && journal.contains("\"family\":\"ipv6\""), "\(journal)")
    }

    @Test func aDHCPv6ListenerNeedsAnAddress() throws {
        let p = ServerProcess(["serve", "--listen", "127.0.0.1", "--no-dhcp", "--no-tftp", "--no-http", "--dhcp6"])
        #expect(try p.runToEnd(timeout: 30) != 0)
        #expect(p.text.contains("--dhcp6-listen"), "\(p.text)")
        let bad = ServerProcess(["serve", "--listen", "127.0.0.1", "--no-dhcp", "--no-tftp", "--no-http", "--dhcp6",
                                 "--dhcp6-listen", "::1", "--dhcp-range", "fe80::1,fe80::9"])
        #expect(try bad.runToEnd(timeout: 30) != 0)
        #expect(bad.text.contains("dhcp6.ranges fe80::1,fe80::9"), "\(bad.text)")
    }

    /// A relayed, rapid-commit Solicit: the Reply binds an address at once.
    static func rapidSolicit(client n: Int) -> [UInt8] {
        var m = DHCPv6Message(type: .solicit, transactionID: UInt32(n & 0xff_ffff))
        m.options.append(DHCPv6OptionCode.clientID, [0, 3, 0, 1, 0x02, 0x66, UInt8(n >> 24 & 0xff), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)])
        m.options.append(DHCPv6OptionCode.iaNA, DHCPv6IANA(iaid: 1).bytes)
        m.options.append(DHCPv6OptionCode.rapidCommit, [])
        let relay = DHCPv6RelayMessage(type: .relayForward, hopCount: 0, linkAddress: IPv6Address("fd77::1")!,
                                       peerAddress: IPv6Address("fe80::66:\(n & 0xffff)")!, options: DHCPv6Options())
        return DHCPv6Packet(relays: [relay], message: m).bytes
    }

    /// Durability measured: stateful DHCPv6 under load, killed with -9, three times; every
    /// binding a client was sent a Reply for must be listed when the server comes back.
    @Test func noRepliedBindingIsLostToKill9() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-v6-kill-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let state = dir.appendingPathComponent("state.db").path
        let extra = ["--dhcp6", "--dhcp6-listen", "::1", "--dhcp6-port", "0", "--dhcp-range", "fd77::1:0,fd77::f:ffff,64,1h"]
        final class Got: @unchecked Sendable {
            let lock = NSLock()
            var bound: [String] = []
            var stop = false
        }
        var all: [String] = []
        func listed(_ server: ControlAPITests.Server) throws -> Set<String> {
            let body = try ControlAPITests().call(server, "GET", "/api/v1/leases?active=true", token: ControlAPITests.readToken).body
            let json = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
            let leases = try #require((json["dhcp6"] as? [String: Any])?["leases"] as? [[String: Any]], "no dhcp6 in \(body.prefix(300))")
            return Set(leases.compactMap { l in (l["address"] as? String).flatMap { a in (l["client_id"] as? String).map { a + " " + $0 } } })
        }
        for round in 0..<3 {
            let server = try ControlAPITests.Server(state: state, extra: extra)
            let have = try listed(server)
            let missing = all.filter { !have.contains($0) }
            #expect(missing.isEmpty, "round \(round): \(missing.count) of \(all.count) replied bindings lost, e.g. \(missing.prefix(3))")
            let port = try Self.dhcp6Port(server)
            let got = Got()
            let workers = (0..<4).map { w in
                TestPostgres.Worker {
                    for n in 0..<20_000 {
                        if got.lock.withLock({ got.stop }) { return }
                        let id = round << 20 | w << 16 | n
                        guard let reply = Self.exchange(Self.rapidSolicit(client: id), port: port, tries: 1),
                              reply.message.type == .reply, let ia = reply.message.options.iaNAs.first,
                              let address = ia.addresses.first?.address else { continue }
                        let duid = reply.message.options[code: DHCPv6OptionCode.clientID] ?? []
                        got.lock.withLock { got.bound.append("\(address) \(Lease6.key(duid: duid, iaid: ia.iaid))") }
                    }
                }
            }
            Thread.sleep(forTimeInterval: 1.5)
            server.process.signal(SIGKILL)
            server.process.process.waitUntilExit()
            got.lock.withLock { got.stop = true }
            #expect(workers.allSatisfy { $0.join(timeout: 30) })
            let bound = got.lock.withLock { got.bound }
            #expect(bound.count > 50, "round \(round): only \(bound.count) Replies before the kill: no load")
            all += bound
            print("dhcpv6 durability: round \(round): \(bound.count) Replies before kill -9, \(all.count) in all")
        }
        let server = try ControlAPITests.Server(state: state, extra: extra)
        let have = try listed(server)
        let missing = all.filter { !have.contains($0) }
        #expect(missing.isEmpty, "\(missing.count) of \(all.count) replied bindings lost, e.g. \(missing.prefix(3))")
        #expect(Set(all.map { $0.split(separator: " ")[0] }).count == all.count, "an address bound to two clients across the kills")
        print("dhcpv6 durability: \(all.count) replied bindings over 3 kill -9s, \(missing.count) lost")
    }

    static func dhcp6Port(_ server: ControlAPITests.Server) throws -> Int {
        // The "serving: dhcpv6 PORT,PORT on [::1]" line (READY=1 was read by Server already).
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if let line = server.process.text.split(separator: "\n").first(where: { $0.contains("serving: dhcpv6") }),
               let ports = line.split(separator: " ").drop(while: { $0 != "dhcpv6" }).first(where: { $0.first?.isNumber == true }),
               let first = ports.split(separator: ",").first, let port = Int(first) { return port }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw ServerProcessError("no 'serving: dhcpv6' line:\n\(server.process.text)")
    }
}
