import Testing
@testable import Protocols

@Suite struct ProxyDHCPResponderTests {
    let us = IPv4Address(192, 168, 77, 1)
    let responder = ProxyDHCPResponder()
    var decision: BootDecision { BootDecision(filename: "undionly.kpxe", nextServer: "192.168.77.1", policy: "test") }

    func arrival(_ port: Int = 67, source: IPv4Address = .any, sourcePort: Int = 68) -> ProxyDHCPResponder.Arrival {
        .init(port: port, serverAddress: us, interface: "bp0", source: source, sourcePort: sourcePort)
    }

    func reply(_ m: DHCPMessage, _ a: ProxyDHCPResponder.Arrival? = nil, decision: BootDecision? = nil) throws -> ProxyDHCPResponder.Reply {
        try responder.reply(to: m, arrival: a ?? arrival(), decision: decision ?? self.decision).get()
    }

    func silence(_ m: DHCPMessage, _ a: ProxyDHCPResponder.Arrival? = nil,
                 using d: BootDecision? = BootDecision(filename: "undionly.kpxe")) -> ProxyDHCPResponder.Silence? {
        if case let .failure(reason) = responder.reply(to: m, arrival: a ?? arrival(), decision: d) { return reason }
        return nil
    }

    @Test func biosDiscoverGetsOfferLikeDnsmasq() throws {
        let r = try reply(Build.discover(arch: 0))
        let m = r.message
        #expect(r.destination == .broadcast && r.destinationPort == 68 && r.broadcast)
        #expect(m.op == .reply && m.messageType == .offer && m.xid == 0x1234_5678)
        #expect(m.yiaddr == .any && m.ciaddr == .any && m.broadcast)
        #expect(m.siaddr == us && m.bootFile == "undionly.kpxe" && m.serverName == "")
        #expect(m.options.map(\.code) == [53, 54, 60, 97, 43])
        #expect(m.serverIdentifier == us && m.vendorClass == "PXEClient")
        #expect(m.options[code: 97] == [0] + Array(0..<16))
        // Byte for byte what dnsmasq 2.90 sends with --pxe-prompt=PXE,0 (seen in the lab).
        #expect(m.options[code: 43] == [6, 1, 8, 10, 4, 0, 0x50, 0x58, 0x45, 255])
        #expect(m.bytes.count == 300)
    }

    /// A boot file name longer than the BOOTP `file` field (127 bytes and its NUL) is never
    /// cut: it goes whole in option 67 and the field stays empty; the same for `sname`/66.
    @Test func longBootFileNamesGoWholeInOptions() throws {
        let exact = String(repeating: "a", count: 127)
        let fits = try reply(Build.discover(arch: 0), decision: BootDecision(filename: exact)).message
        #expect(fits.bootFile == exact && fits.options[code: 67] == nil)
        let long = "http://boot.example:8080/" + String(repeating: "x", count: 180) + "/ipxe.efi"
        let m = try reply(Build.discover(arch: 7), decision: BootDecision(filename: long, serverName: String(repeating: "s", count: 70))).message
        #expect(m.bootFile == "" && m.options[code: 67] == Array(long.utf8), "\(m.bootFile)")
        #expect(m.serverName == "" && m.options[code: 66] == Array(String(repeating: "s", count: 70).utf8))
        // The encoded reply decodes to the same whole name.
        let back = try DHCPMessage(bytes: m.bytes)
        #expect(back.options[code: 67].map { String(decoding: $0, as: UTF8.self) } == long)
    }

    @Test func efiDiscoverOn67HasNoMenuAndPointsAtUs() throws {
        for arch: UInt16 in [6, 7, 9, 11] {
            let m = try reply(Build.discover(arch: arch), decision: BootDecision(filename: "ipxe.efi")).message
            #expect(m.options[code: 43] == nil, "arch \(arch)")
            #expect(m.siaddr == us)  // redirect to 4011 even without a next server
            #expect(m.bootFile == "ipxe.efi")
        }
    }

    @Test func port4011RequestGetsAckWithMenu() throws {
        var request = Build.discover(arch: 7)
        request.messageType = .request
        request.ciaddr = IPv4Address(192, 168, 77, 50)
        request.broadcast = false
        let r = try reply(request, arrival(4011, source: IPv4Address(192, 168, 77, 50), sourcePort: 68))
        #expect(r.message.messageType == .ack)
        #expect(r.message.options[code: 43] != nil)
        #expect(r.message.ciaddr == IPv4Address(192, 168, 77, 50) && !r.message.broadcast)
        #expect(r.destination == IPv4Address(192, 168, 77, 50) && r.destinationPort == 68 && !r.broadcast)
        // Unicast back to the port the client used.
        let r2 = try reply(request, arrival(4011, source: IPv4Address(192, 168, 77, 50), sourcePort: 4011))
        #expect(r2.destinationPort == 4011)
        // Without ciaddr: broadcast.
        request.ciaddr = .any
        let r3 = try reply(request, arrival(4011))
        #expect(r3.broadcast && r3.message.broadcast)
    }

    @Test func relayedRequestGoesToRelayWithOption82() throws {
        var request = Build.discover(arch: 0)
        request.giaddr = IPv4Address(10, 9, 8, 1)
        request.options.set(.relayAgentInfo, RelayAgentInfo(circuitID: [1, 2], remoteID: [3]))
        let r = try reply(request)
        #expect(r.destination == IPv4Address(10, 9, 8, 1) && r.destinationPort == 67 && !r.broadcast)
        #expect(r.message.giaddr == IPv4Address(10, 9, 8, 1))
        #expect(r.message.options.last?.code == 82)
        #expect(r.message.relayAgentInfo == RelayAgentInfo(circuitID: [1, 2], remoteID: [3]))
        // Relays must be unicast addresses.
        for bad in [IPv4Address(224, 0, 0, 1), IPv4Address(127, 0, 0, 1), IPv4Address(0, 1, 2, 3), IPv4Address.broadcast] {
            request.giaddr = bad
            #expect(throws: ProxyDHCPResponder.Silence.notForUs) { try responder.reply(to: request, arrival: arrival(), decision: decision).get() }
        }
        request.giaddr = IPv4Address(10, 9, 8, 1)
        // Relay filter.
        let filtered = ProxyDHCPResponder(relayNetworks: [IPv4Network("192.168.77.0/24")!])
        #expect(throws: ProxyDHCPResponder.Silence.notForUs) {
            try filtered.reply(to: request, arrival: arrival(), decision: decision).get()
        }
    }

    @Test func httpClientGetsURLAndVendorHTTPClient() throws {
        let request = Build.discover(arch: 16, vendorClass: "HTTPClient:Arch:00016:UNDI:003001")
        let m = try reply(request, decision: BootDecision(filename: "http://192.168.77.1/ipxe.efi")).message
        #expect(m.vendorClass == "HTTPClient")
        #expect(m.bootFile == "http://192.168.77.1/ipxe.efi")
    }

    @Test func decisionExtrasSnameAnd66_67() throws {
        let d = BootDecision(filename: "a.efi", nextServer: "10.0.0.9", serverName: "boot1",
                             options: [66: Array("10.0.0.9".utf8), 67: Array("a.efi".utf8), 53: [5]])
        let m = try reply(Build.discover(arch: 0), decision: d).message
        #expect(m.siaddr == IPv4Address(10, 0, 0, 9) && m.serverName == "boot1")
        #expect(m.tftpServerName == "10.0.0.9" && m.bootfileName == "a.efi")
        #expect(m.messageType == .offer)  // policy cannot override the framing options
    }

    @Test func silenceReasons() {
        #expect(silence(Build.discover(vendorClass: nil)) == .notPXE)
        #expect(silence(Build.discover(vendorClass: "MSFT 5.0")) == .notPXE)
        #expect(silence(Build.discover(arch: nil)) == .noArchitecture)
        var reply = Build.discover()
        reply.op = .reply
        #expect(silence(reply) == .serverMessage)
        reply.serverIdentifier = us
        #expect(silence(reply) == .ownReply)
        var request = Build.discover()
        request.messageType = .request
        #expect(silence(request) == .unsupportedMessageType)  // REQUEST on 67
        request.messageType = .inform
        #expect(silence(request, arrival(4011)) == .unsupportedMessageType)
        var bootItem = Build.discover()
        bootItem.messageType = .request
        var pxe = PXEVendorOptions()
        pxe.bootItem = .init(type: 0, layer: 0)
        bootItem.options.set(.pxeVendorOptions, pxe)
        #expect(silence(bootItem, arrival(4011)) == .bootServerRequest)
        var bootp = Build.discover()
        bootp.messageType = nil
        #expect(silence(bootp) == .unsupportedMessageType)
        #expect(silence(Build.discover()) == nil)
        #expect(silence(Build.discover(), using: BootDecision(ignore: true)) == .ignoredByPolicy)
        #expect(silence(Build.discover(), using: nil) == .noDecision)
        #expect(throws: ProxyDHCPResponder.Silence.noDecision) {
            try responder.reply(to: Build.discover(), arrival: arrival(), decision: nil).get()
        }
    }

    @Test func loopbackRepliesGoToTheSender() throws {
        let a = ProxyDHCPResponder.Arrival(port: 67, serverAddress: .loopback, source: .loopback, sourcePort: 40000)
        let r = try responder.reply(to: Build.discover(), arrival: a, decision: decision).get()
        #expect(r.destination == .loopback && r.destinationPort == 40000 && !r.broadcast)
    }

    @Test func ipv4Network() {
        let net = IPv4Network("192.168.77.9/24")!
        #expect(net.description == "192.168.77.0/24")
        #expect(net.contains(IPv4Address(192, 168, 77, 200)) && !net.contains(IPv4Address(192, 168, 78, 1)))
        #expect(IPv4Network("10.0.0.1")?.prefixLength == 32)
        #expect(IPv4Network("10.0.0.1/33") == nil)
    }

    // MARK: reply size (RFC 2131 §2, RFC 2132 §9.3 and §9.10)

    /// A DISCOVER from a client that sends no option 57: it accepts 576-byte datagrams.
    func plainDiscover() -> DHCPMessage {
        var m = Build.discover(arch: 0)
        m.options.remove(57)
        return m
    }

    @Test func repliesFitWhatTheClientAccepts() throws {
        // Without option 57: at most 548 DHCP bytes (576 less IP and UDP).
        #expect(ProxyDHCPResponder.replyLimit(for: plainDiscover()) == 548)
        var small = plainDiscover()
        small.options.set(57, [0, 200])  // below the legal minimum: 576 still holds
        #expect(ProxyDHCPResponder.replyLimit(for: small) == 548)
        var big = plainDiscover()
        big.options.set(57, [0x23, 0x28])  // 9000: capped at an Ethernet frame
        #expect(ProxyDHCPResponder.replyLimit(for: big) == 1472)

        // A policy's options that fit in 548 only by moving some into sname (unused here).
        let fits = BootDecision(filename: "undionly.kpxe", options: [224: Array(repeating: 0x61, count: 200), 225: Array(repeating: 0x62, count: 60)])
        let m = try reply(plainDiscover(), decision: fits).message
        #expect(m.overload == 2)
        let wire = m.bytes
        #expect(wire.count <= 548, "\(wire.count) bytes")
        let back = try DHCPMessage(bytes: wire)
        #expect(back.options[code: 224] == Array(repeating: 0x61, count: 200) && back.options[code: 225] == Array(repeating: 0x62, count: 60))
        #expect(back.bootFile == "undionly.kpxe" && back.messageType == .offer)

        // Nothing overloaded when it fits as it is.
        #expect(try reply(plainDiscover()).message.overload == nil)

        // The same client with option 57 = 1472 takes 1,000 bytes of options unoverloaded.
        let kilo = BootDecision(filename: "undionly.kpxe", options: [224: Array(repeating: 0x61, count: 1000)])
        let k = try reply(Build.discover(arch: 0), decision: kilo).message
        #expect(k.overload == nil && k.bytes.count <= 1444 && k.bytes.count > 1000)
        // ...but not without it.
        #expect(silence(plainDiscover(), using: kilo) == .replyTooLarge)
    }

    @Test func aReplyThatCannotFitIsRefusedNotCut() throws {
        // A policy's 64,500 bytes of options.
        let huge = BootDecision(filename: "undionly.kpxe", options: [224: Array(repeating: 7, count: 64_500)])
        #expect(silence(Build.discover(arch: 0), using: huge) == .replyTooLarge)
        // A relay's 8,000-byte option 82 (long options, RFC 3396) is echoed whole or not at all.
        var relayed = Build.discover(arch: 0)
        relayed.giaddr = IPv4Address(10, 9, 8, 1)
        relayed.options.set(82, Array(repeating: 1, count: 8_000))
        let parsed = try DHCPMessage(bytes: relayed.bytes)
        #expect(parsed.options[code: 82]?.count == 8_000)
        #expect(silence(parsed) == .replyTooLarge)
        // Where file holds the boot file and sname the server name, neither is overloaded.
        let named = BootDecision(filename: "undionly.kpxe", serverName: "boot-a",
                                 options: [224: Array(repeating: 0x61, count: 200), 225: Array(repeating: 0x62, count: 60)])
        #expect(silence(plainDiscover(), using: named) == .replyTooLarge)
    }
}
