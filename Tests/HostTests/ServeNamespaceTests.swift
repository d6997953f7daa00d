import Foundation
import Protocols
import Testing
import TestSupport

/// The whole server inside a namespace pair: a PXE client's DHCP exchange, then the file and the
/// script the policy generated for it, fetched by TFTP with curl from that client's address.
@Suite(.serialized, .requires(NetnsPair.requirement))
struct ServeNamespaceTests {
    static let root = ServerProcess.packageRoot

    func fixtureHex(_ name: String) throws -> String {
        let url = Self.root.appendingPathComponent("fixtures/requests/\(name).json")
        return try #require(Fixture.load(from: url).raw)
    }

    @Test func razorChainOverProxyDHCPAndTFTP() throws {
        // The recorded iPXE request carries chaddr 52:54:00:77:00:01: give the client that MAC so
        // the server can tie its TFTP request (by ARP) to the DHCP decision.
        let net = try NetnsPair(tag: "srv", subnet: 79, clientMAC: "52:54:00:77:00:01")
        defer { net.teardown() }
        let tftpRoot = FileManager.default.temporaryDirectory.appendingPathComponent("bp-ns-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tftpRoot, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: tftpRoot) }
        let loader = Data((0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        try loader.write(to: tftpRoot.appendingPathComponent("undionly.kpxe"))

        let server = ServerProcess(["serve", "--interface", net.serverIf, "--tftp-root", tftpRoot.path,
                                    "--policy", Self.root.appendingPathComponent("examples/razor.lua").path,
                                    "--policy", "arch-aware"])
        server.process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        server.process.arguments = ["netns", "exec", net.server, ServerProcess.binary.path] + (server.process.arguments ?? [])
        defer { server.stop() }
        try server.startReady()

        // iPXE's DISCOVER (option 175): an OFFER naming bootstrap.ipxe on this server.
        let replyHex = try net.dhcpExchange(hex: fixtureHex("qemu-ipxe-bios-discover"))
        try #require(!replyHex.isEmpty, "no OFFER:\n\(server.text)")
        let offer = try DHCPMessage(bytes: Array(Data(hexString: replyHex)))
        #expect(offer.messageType == .offer)
        #expect(offer.bootFile == "bootstrap.ipxe")
        #expect(offer.siaddr.description == net.serverAddress)
        #expect(offer.yiaddr.description == "0.0.0.0")

        // The same client fetches it by TFTP: the script generated at DHCP time, for this MAC.
        let script = try net.inClient(["curl", "-sS", "--max-time", "10", "tftp://\(net.serverAddress)/bootstrap.ipxe"])
        #expect(script.output.hasPrefix("#!ipxe\n"), "\(script.output)\n\(server.text)")
        #expect(script.output.contains("chain http://razor:8150/api/microkernel/bootstrap?nic_max=4"))

        // A file from the root, byte for byte.
        let out = tftpRoot.appendingPathComponent("got")
        let file = try net.inClient(["curl", "-sS", "--max-time", "10", "-o", out.path, "tftp://\(net.serverAddress)/undionly.kpxe"])
        #expect(file.status == 0, "\(file.output)")
        #expect(try Data(contentsOf: out) == loader)

        // A plain DHCP client (no PXEClient) gets silence, as from dnsmasq.
        let plain = try net.dhcpExchange(hex: fixtureHex("pxe-bios-discover").replacingOccurrences(of: "505845436c69656e74", with: "4d53465420352e3030"), wait: 1)
        #expect(plain.isEmpty, "answered a non-PXE client")

        // An HTTP hook learns what the client's DHCP said: arch-aware names the arch (bios)
        // although the URL does not carry it.
        // Its own MAC without a token counts (the neighbour table says the request came from it).
        let http = try net.inClient(["curl", "-sS", "--max-time", "5", "http://\(net.serverAddress):8080/boot.ipxe?mac=52-54-00-77-00-01"])
        #expect(http.output.contains("(bios)"), "\(http.output)")
        // Naming another machine without that machine's token gets the requester its own
        // script, never the other's.
        let other = try net.inClient(["curl", "-sS", "--max-time", "5", "http://\(net.serverAddress):8080/boot.ipxe?mac=52-54-00-77-00-99"])
        #expect(other.output.contains("52:54:00:77:00:01") && !other.output.contains("52:54:00:77:00:99"), "\(other.output)")
        // A forged DHCP request (another machine's chaddr, sent from this client's address)
        // does not make the address that machine's: the kernel's neighbour entry decides.
        _ = try net.dhcpExchange(hex: fixtureHex("qemu-ipxe-bios-discover").replacingOccurrences(of: "525400770001", with: "525400770099"), wait: 0.5)
        let forged = try net.inClient(["curl", "-sS", "--max-time", "5", "http://\(net.serverAddress):8080/boot.ipxe"])
        #expect(forged.output.contains("52:54:00:77:00:01") && !forged.output.contains("52:54:00:77:00:99"), "\(forged.output)")

        // The operator sees the client's timeline.
        let clients = try net.inClient(["curl", "-sS", "--max-time", "5", "http://\(net.serverAddress):8080/api/clients"]).output
        #expect(clients.contains("\"mac\" : \"52:54:00:77:00:01\""), "\(clients)")
        #expect(clients.contains("bootstrap.ipxe"))
    }
}

extension ServeNamespaceTests {
    @Test func recordListensWithoutAnswering() throws {
        let net = try NetnsPair(tag: "rec", subnet: 80)
        defer { net.teardown() }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("bp-rec-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        let recorder = ServerProcess(["netns", "exec", net.server, ServerProcess.binary.path, "record",
                                      "--interface", net.serverIf, "--out", out.path, "--count", "2", "--duration", "20"])
        recorder.process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        try recorder.start()
        defer { recorder.stop() }
        try #require(recorder.waitFor("recording DHCP and DHCPv6 client requests"), "\(recorder.text)")
        // Nobody answers: record never does.
        #expect(try net.dhcpExchange(hex: fixtureHex("ovmf-pxe-discover"), wait: 1).isEmpty)
        _ = try net.dhcpExchange(hex: fixtureHex("ovmf-pxe-discover"), wait: 0.2)  // a retry: not distinct
        _ = try net.dhcpExchange(hex: fixtureHex("qemu-ipxe-bios-discover"), wait: 0.2)
        #expect(recorder.waitFor("2 fixtures written", timeout: 10), "\(recorder.text)")
        let files = try FileManager.default.contentsOfDirectory(atPath: out.path).sorted()
        #expect(files == ["recorded-ipxe-bios-discover-525400770001.json", "recorded-uefi-efi-x64-discover-525400770002.json"], "\(files)")
        // The recording is byte-identical to what was sent.
        let recorded = try Fixture.load(from: out.appendingPathComponent(files[1]))
        #expect(recorded.raw == (try fixtureHex("ovmf-pxe-discover")))
        #expect(recorded.interface == net.serverIf)
    }
}

extension ServeNamespaceTests {
    /// DHCPv6 too: OVMF's recorded Solicit, multicast to ff02::1:2 from the client's link-local
    /// address, becomes a `family: ipv6` fixture holding exactly those bytes.
    @Test func recordTakesDHCPv6Solicits() throws {
        let net = try NetnsPair(tag: "rec6", subnet: 81)
        defer { net.teardown() }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("bp-rec6-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        let recorder = ServerProcess(["netns", "exec", net.server, ServerProcess.binary.path, "record",
                                      "--interface", net.serverIf, "--out", out.path, "--count", "1", "--duration", "20"])
        recorder.process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        try recorder.start()
        defer { recorder.stop() }
        try #require(recorder.waitFor("recording DHCP and DHCPv6 client requests"), "\(recorder.text)")
        let hex = try String(contentsOf: ServerProcess.packageRoot.appendingPathComponent("fixtures/lab/v6/ovmf-pxe6.solicit.hex"),
                             encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        // Sent every 0.5 s for at most 8 s: the link-local address must finish DAD first.
        let send = try net.inClient(["python3", "-c", """
            import binascii, socket, sys, time
            s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"\(net.clientIf)")
            sent = 0
            for _ in range(16):
                try:
                    s.sendto(binascii.unhexlify(sys.argv[1]), ("ff02::1:2%\(net.clientIf)", 547)); sent += 1
                except OSError as e:
                    print("not yet:", e)
                time.sleep(0.5)
            print("sent", sent)
            """, hex], timeout: 30)
        #expect(send.status == 0, "\(send.output)")
        #expect(recorder.waitFor("1 fixtures written", timeout: 10), "\(recorder.text)\n\(send.output)")
        let files = try FileManager.default.contentsOfDirectory(atPath: out.path).sorted()
        #expect(files == ["recorded-v6-uefi-efi-x64-solicit-525400790002.json"], "\(files)")
        let recorded = try Fixture.load(from: out.appendingPathComponent(try #require(files.first)))
        #expect(recorded.family == .ipv6 && recorded.raw == hex && recorded.serverPort == 547)
        #expect(recorded.source?.hasPrefix("fe80::") == true, "\(recorded.source ?? "-")")
        #expect(try recorded.bootRequest().arch == "efi-x64")
    }
}

extension ServeNamespaceTests {
    /// A DHCPv6 client's TFTP request comes from the address the site server gave it, which
    /// only the kernel's IPv6 neighbour table ties to a MAC: the transfer is that machine's.
    @Test func aTFTPTransferOverIPv6IsKnownByItsMAC() throws {
        let mac = "52:54:00:81:00:10"
        let net = try NetnsPair(tag: "tftp6", subnet: 82, clientMAC: mac)
        defer { net.teardown() }
        for (ns, ifname, a) in [(net.server, net.serverIf, "fd82::1/64"), (net.client, net.clientIf, "fd82::10/64")] {
            let r = try runTool("/usr/sbin/ip", ["-n", ns, "addr", "add", a, "dev", ifname, "nodad"])
            #expect(r.status == 0, "\(r.output)")
        }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("bp-tftp6-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        try Data("ipxe over v6\n".utf8).write(to: root.appendingPathComponent("ipxe.efi"))
        let server = ServerProcess(["netns", "exec", net.server, ServerProcess.binary.path, "serve", "--interface", net.serverIf,
                                    "--no-dhcp", "--dhcp6", "--dhcp6-port", "0", "--dhcp6-port", "0", "--tftp-root", root.path,
                                    "--policy", "arch-aware", "--user", "root"])
        server.process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        try server.start()
        defer { server.stop() }
        try #require(server.waitFor("serving: tftp fd82::1:69"), "\(server.text)")
        let got = try net.inClient(["tftp", "-6", "fd82::1", "-m", "binary", "-c", "get", "ipxe.efi", "/dev/stdout"], timeout: 20)
        #expect(got.output.contains("ipxe over v6"), "\(got.output)")
        #expect(server.waitFor("mac=\(mac)", timeout: 10), "the transfer was not tied to the client's MAC:\n\(server.text)")
        let clients = try net.inClient(["curl", "-sS", "--max-time", "5", "http://\(net.serverAddress):8080/api/clients"]).output
        #expect(clients.contains("\"mac\" : \"\(mac)\""), "\(clients)")
    }
}

extension Data {
    init(hexString: String) {
        var bytes: [UInt8] = []
        var it = hexString.makeIterator()
        while let a = it.next(), let b = it.next() { bytes.append(UInt8(String([a, b]), radix: 16) ?? 0) }
        self.init(bytes)
    }
}
