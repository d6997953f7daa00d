import Foundation
import Testing
@testable import Protocols

@Suite struct IPv6AddressTests {
    @Test func parsesAndPrintsRFC5952Text() throws {
        let a = try #require(IPv6Address("fd77:0:0:0:0:0:0:1"))
        #expect(a.description == "fd77::1")
        #expect(a.bracketed == "[fd77::1]")
        #expect(IPv6Address("[fd77::1]") == a)
        #expect(IPv6Address(bytes: a.bytes) == a)
        #expect(IPv6Address("::1") == .loopback && IPv6Address.loopback.isLoopback)
        #expect(IPv6Address.allDHCPAgents.description == "ff02::1:2" && IPv6Address.allDHCPAgents.isMulticast)
        for bad in ["", "fd77::1::2", "192.168.0.1", "fe80::1%eth0", "fd77::g", "[fd77::1"] {
            #expect(IPv6Address(bad) == nil, "\(bad)")
        }
    }

    @Test func eui64GivesBackTheMAC() throws {
        let ll = try #require(IPv6Address("fe80::5054:ff:fe77:2"))
        #expect(ll.isLinkLocal)
        #expect(ll.eui64MAC == [0x52, 0x54, 0x00, 0x77, 0x00, 0x02])
        #expect(IPv6Address("fe80::1234:5678:9abc:def0")?.eui64MAC == nil)
        #expect(IPv6Address("fd77::1")?.isLinkLocal == false)
    }

    @Test func prefixesAndOffsets() throws {
        let net = try #require(IPv6Address("fd77::"))
        #expect(IPv6Address("fd77::1:2")!.isIn(net, prefixLength: 64))
        #expect(!IPv6Address("fd78::1")!.isIn(net, prefixLength: 64))
        #expect(IPv6Address("fd77::ffff:ffff:ffff:ffff")!.adding(1) == IPv6Address("fd77:0:0:1::"))
    }
}

@Suite struct DHCPv6MessageTests {
    static let duidLL: [UInt8] = [0, 3, 0, 1, 0x52, 0x54, 0x00, 0x77, 0x00, 0x02]
    static let duidUUID: [UInt8] = [0, 4] + (0..<16).map { UInt8($0) }

    /// A Solicit as UEFI sends one: client id, IA_NA, ORO, elapsed time, arch 7, NII 3.16,
    /// vendor class PXEClient.
    static func solicit(duid: [UInt8] = duidUUID, vendor: String = "PXEClient:Arch:00007:UNDI:003016") -> DHCPv6Message {
        var o = DHCPv6Options()
        o.append(DHCPv6OptionCode.clientID, duid)
        o.append(DHCPv6OptionCode.iaNA, DHCPv6IANA(iaid: 0x0077_0002).bytes)
        o.append(DHCPv6OptionCode.optionRequest, [0, 59, 0, 60, 0, 23, 0, 24])
        o.append(DHCPv6OptionCode.elapsedTime, [0, 0])
        o.append(DHCPv6OptionCode.clientArchitecture, [0, 7])
        o.append(DHCPv6OptionCode.networkInterfaceID, [1, 3, 16])
        o.append(DHCPv6OptionCode.vendorClass, DHCPv6Options.vendorClassValue(enterprise: 343, [Array(vendor.utf8)]))
        return DHCPv6Message(type: .solicit, transactionID: 0xabcdef, options: o)
    }

    @Test func aSolicitRoundTripsAndReadsItsOptions() throws {
        let m = Self.solicit()
        let bytes = m.bytes
        #expect(bytes.prefix(4) == [1, 0xab, 0xcd, 0xef])
        let p = try DHCPv6Packet(bytes: bytes)
        #expect(p.relays.isEmpty && p.message == m)
        #expect(p.bytes == bytes)
        let o = p.message.options
        #expect(o.clientDUID?.typeName == "uuid")
        #expect(o.clientDUID?.uuidBytes == Array(Self.duidUUID[2...]))
        #expect(o.requestedOptions == [59, 60, 23, 24])
        #expect(o.clientArchitectures?.map(\.code) == [7])
        #expect(o.networkInterfaceID.map { "\($0.type).\($0.major).\($0.minor)" } == "1.3.16")
        #expect(o.vendorClass?.enterprise == 343)
        #expect(o.vendorClass.map { String(decoding: $0.data[0], as: UTF8.self) } == "PXEClient:Arch:00007:UNDI:003016")
        #expect(o.iaNAs.map(\.iaid) == [0x0077_0002])
        #expect(o.elapsedTime == 0)
    }

    @Test func aRelayedSolicitUnwrapsAndWrapsAgain() throws {
        var relayOptions = DHCPv6Options()
        relayOptions.append(DHCPv6OptionCode.interfaceID, Array("swp12".utf8))
        relayOptions.append(DHCPv6OptionCode.clientLinkLayerAddress, [0, 1, 0x52, 0x54, 0x00, 0x77, 0x00, 0x09])
        relayOptions.append(DHCPv6OptionCode.relayMessage, Self.solicit().bytes)
        let relay = DHCPv6RelayMessage(type: .relayForward, hopCount: 0, linkAddress: IPv6Address("fd77:1::1")!,
                                       peerAddress: IPv6Address("fe80::5054:ff:fe77:9")!, options: relayOptions)
        let p = try DHCPv6Packet(bytes: relay.bytes)
        #expect(p.relays.count == 1 && p.message == Self.solicit())
        #expect(p.relays[0].linkAddress.description == "fd77:1::1")
        let request = BootRequest(dhcpv6: p, source: IPv6Address("fd77:1::1"), interface: "eth0", serverPort: 547)
        #expect(request.mac == "52:54:00:77:00:09")  // option 79 wins
        #expect(request.relay?.giaddr == "fd77:1::1")
        #expect(request.relay?.circuitID == "swp12")
        #expect(request.clientAddress == "fe80::5054:ff:fe77:9")
        #expect(p.bytes == relay.bytes)
    }

    @Test func theBootRequestOfAUEFISolicit() throws {
        let p = DHCPv6Packet(message: Self.solicit())
        let r = BootRequest(dhcpv6: p, source: IPv6Address("fe80::5054:ff:fe77:2"), interface: "boot0", serverPort: 547)
        #expect(r.family == .ipv6 && r.kind == .dhcp)
        #expect(r.mac == "52:54:00:77:00:02")  // from the EUI-64 link-local address
        #expect(r.duid == Hex.encode(Self.duidUUID, separator: ":"))
        #expect(r.uuid == "00010203-0405-0607-0809-0a0b0c0d0e0f")
        #expect(r.arch == "efi-x64" && r.archCode == 7 && r.firmware == .uefi)
        #expect(r.messageType == "solicit")
        #expect(r.vendorClass == "PXEClient:Arch:00007:UNDI:003016")
        #expect(r.options6[61] == [0, 7] && r.options.isEmpty)

        let http = BootRequest(dhcpv6: DHCPv6Packet(message: Self.solicit(vendor: "HTTPClient:Arch:00016:UNDI:003016")),
                               source: nil, interface: nil, serverPort: 547)
        #expect(http.firmware == .httpBoot && http.mac == "")

        var ipxe = Self.solicit(duid: Self.duidLL)
        ipxe.options.append(DHCPv6OptionCode.userClass, DHCPv6Options.lengthPrefixedBytes([Array("iPXE".utf8)]))
        let i = BootRequest(dhcpv6: DHCPv6Packet(message: ipxe), source: IPv6Address("fd77::99"), interface: nil, serverPort: 547)
        #expect(i.firmware == .ipxe && i.isIPXE && i.userClass == ["iPXE"])
        #expect(i.mac == "52:54:00:77:00:02")  // from DUID-LL
    }

    @Test func malformedPacketsAreTypedErrors() {
        func error(_ bytes: [UInt8]) -> DHCPv6Error? {
            do { _ = try DHCPv6Packet(bytes: bytes); return nil } catch { return error }
        }
        #expect(error([]) == .truncated(field: "msg-type", needed: 1, available: 0))
        #expect(error([1, 0, 0]) == .truncated(field: "transaction-id", needed: 4, available: 3))
        #expect(error([99, 0, 0, 0]) == .unknownMessageType(99))
        #expect(error([1, 0, 0, 1, 0, 1, 0, 9, 1]) == .optionOverrun(code: 1, length: 9, available: 1, area: "message"))
        #expect(error([1, 0, 0, 1, 0, 1]) == .truncated(field: "message option header", needed: 4, available: 2))
        // A relay header cut short, a relay with no relay-msg, relays nested past the limit.
        #expect(error([12, 0] + [UInt8](repeating: 0, count: 20)) == .truncated(field: "relay header", needed: 34, available: 22))
        #expect(error([12, 0] + [UInt8](repeating: 0, count: 32)) == .relayWithoutMessage)
        var nested = Self.solicit().bytes
        for _ in 0...DHCPv6Packet.maximumRelayDepth {
            var o = DHCPv6Options()
            o.append(DHCPv6OptionCode.relayMessage, nested)
            nested = DHCPv6RelayMessage(type: .relayForward, hopCount: 0, linkAddress: .any, peerAddress: .any, options: o).bytes
        }
        #expect(error(nested) == .relayTooDeep(DHCPv6Packet.maximumRelayDepth + 1))
        // Malformed typed options read as absent, the packet still decodes.
        var o = DHCPv6Options()
        o.append(DHCPv6OptionCode.clientArchitecture, [0])
        o.append(DHCPv6OptionCode.vendorClass, [0, 0, 1, 87, 0, 9, 65])
        o.append(DHCPv6OptionCode.iaNA, [1, 2, 3])
        o.append(DHCPv6OptionCode.clientID, [0])
        let m = DHCPv6Message(type: .solicit, transactionID: 1, options: o)
        let p = try? DHCPv6Packet(bytes: m.bytes)
        #expect(p?.message.options.clientArchitectures == nil)
        #expect(p?.message.options.vendorClass == nil)
        #expect(p?.message.options.iaNAs.isEmpty == true)
        #expect(p?.message.options.clientDUID == nil)
    }

    @Test func anIANAWithAnAddressAndStatus() throws {
        var inner = DHCPv6Options()
        inner.append(DHCPv6OptionCode.iaAddress, DHCPv6IAAddress(address: IPv6Address("fd77::100")!, preferredLifetime: 300, validLifetime: 600).bytes)
        inner.append(DHCPv6OptionCode.statusCode, DHCPv6Options.statusValue(.success, "ok"))
        let ia = DHCPv6IANA(iaid: 7, t1: 150, t2: 240, options: inner)
        let back = try DHCPv6IANA(bytes: ia.bytes)
        #expect(back == ia)
        #expect(back.addresses.first?.address.description == "fd77::100")
        #expect(back.addresses.first?.validLifetime == 600)
        #expect(back.options.status?.code == 0 && back.options.status?.message == "ok")
    }

    /// The names policies and logs see: the case names, but for the three RFC spellings.
    @Test func messageTypeNames() {
        let special: [DHCPv6MessageType: String] = [.informationRequest: "information-request", .relayForward: "relay-forw",
                                                    .relayReply: "relay-repl"]
        for type in DHCPv6MessageType.allCases {
            #expect(type.name == special[type] ?? "\(type)")
        }
        #expect(DHCPv6MessageType.solicit.name == "solicit")
    }
}

/// A public DHCPv6 capture (tcpdump's test suite: an Arista switch's zero-touch provisioning,
/// RFC 5970 option 59), decoded and checked against what tcpdump itself prints for it.
@Suite struct DHCPv6CaptureTests {
    @Test func theTcpdumpRFC5970CaptureDecodesAsTcpdumpReadsIt() throws {
        let url = Bundle.module.resourceURL!.appendingPathComponent("Fixtures/captures/the-tcpdump-group_tcpdump__dhcpv4v6-rfc5970-rfc8572.pcap")
        let reader = try PcapReader(bytes: Array(try Data(contentsOf: url)))
        #expect(reader.datagrams.count == 4 && reader.datagrams6.count == 10, "\(reader.datagrams.count) + \(reader.datagrams6.count)")
        let packets = try reader.datagrams6.map { try DHCPv6Packet(bytes: $0.payload) }
        #expect(packets.map { $0.message.type.name } == ["solicit", "solicit", "advertise", "request", "reply", "solicit", "advertise",
                                                         "request", "reply", "information-request"])
        #expect(packets.map { String(format: "%06x", $0.message.transactionID) } == ["6aebe6", "aca407", "aca407", "5f98e6", "5f98e6",
                                                                                     "28792a", "654242", "becafa", "becafa", "0b5fcf"])
        // tcpdump: "(option-request opt_59 DNS-search-list DNS-server) (elapsed-time 754)
        // (IA_NA IAID:16842752 T1:3600 T2:5400)"
        let solicit = packets[5].message.options
        #expect(solicit.requestedOptions == [59, 24, 23] && solicit.elapsedTime == 754)
        let ia = try #require(solicit.iaNAs.first)
        #expect(ia.iaid == 16_842_752 && ia.t1 == 3600 && ia.t2 == 5400 && ia.addresses.isEmpty)
        #expect(solicit.clientDUID?.typeName == "llt" && solicit.clientDUID?.ethernetAddress == [0, 0, 1, 1, 0, 0])
        // "(IA_ADDR 1234:5678::4 pltime:18000 vltime:28800) ... (server-ID hwaddr/time type 1
        // time 701792110 42d361623810) (opt_59) ... (DNS-server 1234:5678::2)"
        let advertise = packets[6].message.options
        let address = try #require(advertise.iaNAs.first?.addresses.first)
        #expect(address.address == IPv6Address("1234:5678::4") && address.preferredLifetime == 18_000 && address.validLifetime == 28_800)
        #expect(advertise.serverDUID?.ethernetAddress == [0x42, 0xd3, 0x61, 0x62, 0x38, 0x10])
        #expect(advertise.bootFileURL == "my-startup-config")
        #expect(advertise[code: DHCPv6OptionCode.dnsServers] == IPv6Address("1234:5678::2")!.bytes)
        // "(client-ID hwaddr type 1 000044010000) ... (user-class)"
        let inf = packets[9].message.options
        #expect(inf.clientDUID?.typeName == "ll" && inf.clientDUID?.ethernetAddress == [0, 0, 0x44, 1, 0, 0])
        #expect(inf.contains(DHCPv6OptionCode.userClass))
        // As policies see it: the MAC from the DUID, what it asked for as options by code.
        let r = BootRequest(dhcpv6: packets[9], source: reader.datagrams6[9].source, interface: nil, serverPort: 547)
        #expect(r.mac == "00:00:44:01:00:00" && r.messageType == "information-request" && r.options6[6] == [0, 59, 0, 24, 0, 23])
        // Every message re-encodes to the bytes it came from.
        for (p, d) in zip(packets, reader.datagrams6) { #expect(p.bytes == d.payload) }
    }
}
