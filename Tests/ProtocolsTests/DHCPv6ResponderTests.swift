import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing
@testable import Protocols

/// DHCPv6 answers to the Solicits real firmware sent (recorded by fixtures/lab/v6/record.sh):
/// OVMF 2022.11's PXEv6 and HTTPv6 boot, OVMF's own Ip6Dxe Solicit, and iPXE.
enum V6 {
    static func fixture(_ name: String) throws -> [UInt8] {
        let url = Bundle.module.resourceURL!.appendingPathComponent("Fixtures/dhcpv6/\(name).solicit.hex")
        let hex = try String(contentsOf: url, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        return try #require(Hex.decode(hex))
    }
    static func packet(_ name: String) throws -> DHCPv6Packet { try DHCPv6Packet(bytes: fixture(name)) }

    static let serverDUID = DUID(bytes: [0, 3, 0, 1, 0x52, 0x54, 0, 0x77, 0, 0xfe])!
    static let server = IPv6Address("fd77::2")!
    static let client = IPv6Address("fe80::5054:ff:fe79:2")!
    static func arrival(port: Int = 547) -> DHCPv6Responder.Arrival {
        .init(port: port, interface: "boot0", source: client, sourcePort: port == 547 ? 546 : 4011, serverAddress: server)
    }
    static func range() throws -> DHCPv6Range {
        try DHCPv6Range(start: IPv6Address("fd77::100")!, end: IPv6Address("fd77::102")!, prefixLength: 64, leaseTime: 600)
    }
    static let ipxeEFI = BootDecision(filename: "ipxe.efi", policy: "test")
}

@Suite struct DHCPv6ResponderTests {
    let bootOnly = DHCPv6Responder(serverDUID: V6.serverDUID)

    func answer(_ r: DHCPv6Responder, _ p: DHCPv6Packet, _ decision: BootDecision? = V6.ipxeEFI, port: Int = 547,
                now: Date = Date()) -> Result<DHCPv6Responder.Reply, DHCPv6Responder.Silence> {
        switch r.screen(p, arrival: V6.arrival(port: port)) {
        case let .failure(why): return .failure(why)
        case let .success(s): return r.answer(s, arrival: V6.arrival(port: port), decision: decision, now: now).result
        }
    }

    @Test func ovmfPXEGetsABootOnlyAdvertiseThenItsFileOn4011() throws {
        let solicit = try V6.packet("ovmf-pxe6")
        #expect(solicit.message.type == .solicit && solicit.message.options.clientArchitectures?.first?.code == 7)
        let advertise = try answer(bootOnly, solicit).get()
        let o = advertise.packet.message.options
        #expect(advertise.packet.message.type == .advertise && advertise.packet.message.transactionID == solicit.message.transactionID)
        #expect(o.serverDUID == V6.serverDUID && o[code: DHCPv6OptionCode.clientID] == solicit.message.options[code: DHCPv6OptionCode.clientID])
        #expect(o.bootFileURL == "tftp://[fd77::2]/ipxe.efi")
        // EDK2 classifies the offer by this vendor class, and drops any Advertise with a
        // non-Success status: no IA_NA (we give no address) and no status at all.
        #expect(o.vendorClass?.enterprise == 343 && o.vendorClass?.data.first == Array("PXEClient".utf8))
        #expect(!o.contains(DHCPv6OptionCode.iaNA) && !o.contains(DHCPv6OptionCode.statusCode))
        #expect(advertise.destination == V6.client && advertise.destinationPort == 546)

        // EDK2's follow-up: a Request to port 4011 with our Server ID and the Advertise's xid.
        var request = solicit.message
        request.type = .request
        request.options.append(DHCPv6OptionCode.serverID, V6.serverDUID.bytes)
        let reply = try answer(bootOnly, DHCPv6Packet(message: request), port: 4011).get()
        #expect(reply.packet.message.type == .reply && reply.packet.message.options.bootFileURL == "tftp://[fd77::2]/ipxe.efi")
        #expect(reply.destinationPort == 4011 && reply.packet.message.transactionID == request.transactionID)
        // Anything else on 4011 is not ours to answer.
        #expect(answer(bootOnly, solicit, port: 4011) == .failure(.unsupportedMessageType))
    }

    @Test func aDecisionsOptionsBecomeDHCPv6OptionsButNotTheServersOwn() throws {
        let params = DHCPv6Options.bootFileParametersValue(["8", "console=ttyS0"])
        let d = BootDecision(filename: "ipxe.efi", options: [60: params, 23: IPv6Address("fd77::53")!.bytes, 2: [9, 9], 59: Array("x".utf8)])
        let o = try answer(bootOnly, try V6.packet("ovmf-pxe6"), d).get().packet.message.options
        #expect(o.bootFileParameters == ["8", "console=ttyS0"] && o[code: 23] == IPv6Address("fd77::53")!.bytes)
        #expect(o.serverDUID == V6.serverDUID && o.all(DHCPv6OptionCode.bootFileURL) == [Array("tftp://[fd77::2]/ipxe.efi".utf8)])
    }

    @Test func ovmfHTTPBootGetsItsURLAndTheHTTPClientClass() throws {
        let solicit = try V6.packet("ovmf-http6")
        #expect(solicit.message.options.clientArchitectures?.first?.code == 16)
        let url = "http://[fd77::2]:8080/ipxe.efi"
        let advertise = try answer(bootOnly, solicit, BootDecision(filename: url)).get()
        let o = advertise.packet.message.options
        #expect(o.bootFileURL == url && o.vendorClass?.data.first == Array("HTTPClient".utf8))
    }

    @Test func nonNetbootSolicitsAreLeftToTheSiteServer() throws {
        let ip6dxe = try V6.packet("ovmf-ip6")
        #expect(!DHCPv6Responder.isNetboot(ip6dxe.message))
        #expect(answer(bootOnly, ip6dxe) == .failure(.notNetboot))
        // A policy that ignores, none that decides, a bare name with nowhere to point it.
        let pxe = try V6.packet("ovmf-pxe6")
        #expect(answer(bootOnly, pxe, BootDecision(ignore: true)) == .failure(.ignoredByPolicy))
        #expect(answer(bootOnly, pxe, nil) == .failure(.noDecision))
        let noAddress = DHCPv6Responder.Arrival(port: 547, source: V6.client, serverAddress: nil)
        let s = try bootOnly.screen(pxe, arrival: noAddress).get()
        #expect(throws: DHCPv6Responder.Silence.noServerAddress) { try bootOnly.answer(s, arrival: noAddress, decision: V6.ipxeEFI).result.get() }
        // next-server (an IPv6 one) names the TFTP host; a URL is kept as it is.
        #expect(try bootOnly.answer(s, arrival: noAddress, decision: BootDecision(filename: "/x.efi", nextServer: "fd77::9")).result.get()
            .bootFileURL == "tftp://[fd77::9]/x.efi")
    }

    @Test func messagesForOtherServersOrFromServersAreDropped() throws {
        let solicit = try V6.packet("ovmf-pxe6")
        var named = solicit.message
        named.options.append(DHCPv6OptionCode.serverID, [0, 3, 0, 1, 1, 2, 3, 4, 5, 6])
        #expect(answer(bootOnly, DHCPv6Packet(message: named)) == .failure(.badMessage))
        named.type = .request
        #expect(answer(bootOnly, DHCPv6Packet(message: named)) == .failure(.notForUs))
        var advertise = solicit.message
        advertise.type = .advertise
        #expect(answer(bootOnly, DHCPv6Packet(message: advertise)) == .failure(.serverMessage))
        var anonymous = solicit.message
        anonymous.options.remove(DHCPv6OptionCode.clientID)
        #expect(answer(bootOnly, DHCPv6Packet(message: anonymous)) == .failure(.badMessage))
        var renew = solicit.message
        renew.type = .renew
        renew.options.append(DHCPv6OptionCode.serverID, V6.serverDUID.bytes)
        #expect(answer(bootOnly, DHCPv6Packet(message: renew)) == .failure(.unsupportedMessageType))
    }

    @Test func statefulIPXEGetsAnAddressAndItsBootFile() throws {
        let pool = DHCPv6LeasePool(ranges: [try V6.range()])
        let r = DHCPv6Responder(serverDUID: V6.serverDUID, pool: pool)
        let solicit = try V6.packet("ipxe6")
        #expect(solicit.message.options.userClasses == ["iPXE"])
        let advertise = try answer(r, solicit, BootDecision(filename: "http://[fd77::2]:8080/boot.ipxe")).get()
        let o = advertise.packet.message.options
        let ia = try #require(o.iaNAs.first)
        #expect(ia.iaid == solicit.message.options.iaNAs.first?.iaid && ia.addresses.first?.address == IPv6Address("fd77::100"))
        #expect(ia.t1 == 300 && ia.t2 == 480 && ia.addresses.first?.validLifetime == 600)
        #expect(o.bootFileURL == "http://[fd77::2]:8080/boot.ipxe")
        // A plain address offer with a boot file (EDK2 "DhcpOnly"): no PXEClient class.
        #expect(o.vendorClass == nil && !o.contains(DHCPv6OptionCode.statusCode))
        #expect(pool.count == 0, "an Advertise binds nothing")

        var request = solicit.message
        request.type = .request
        request.options.append(DHCPv6OptionCode.serverID, V6.serverDUID.bytes)
        request.options.set(DHCPv6OptionCode.iaNA, ia.bytes)
        let reply = try answer(r, DHCPv6Packet(message: request)).get()
        #expect(reply.packet.message.type == .reply && reply.address == IPv6Address("fd77::100"))
        let key = Lease6.key(duid: solicit.message.options[code: 1]!, iaid: ia.iaid)
        #expect(pool.lease(of: key)?.address == IPv6Address("fd77::100"))

        // Another client gets the next address; the first keeps its own on Renew.
        var other = solicit.message
        other.options.set(DHCPv6OptionCode.clientID, [0, 3, 0, 1, 2, 2, 2, 2, 2, 2])
        #expect(try answer(r, DHCPv6Packet(message: other)).get().packet.message.options.iaNAs.first?.addresses.first?.address == IPv6Address("fd77::101"))
        request.type = .renew
        #expect(try answer(r, DHCPv6Packet(message: request)).get().address == IPv6Address("fd77::100"))

        // Release frees it; Decline quarantines it from everyone.
        request.type = .release
        let released = try answer(r, DHCPv6Packet(message: request)).get()
        #expect(released.packet.message.options.status?.code == 0 && pool.lease(of: key) == nil)
        request.type = .decline
        _ = try answer(r, DHCPv6Packet(message: request)).get()
        #expect(try answer(r, DHCPv6Packet(message: other)).get().packet.message.options.iaNAs.first?.addresses.first?.address != IPv6Address("fd77::100"))
    }

    @Test func statefulEdgeCases() throws {
        let pool = DHCPv6LeasePool(ranges: [try V6.range()])
        let r = DHCPv6Responder(serverDUID: V6.serverDUID, pool: pool)
        let plain = try V6.packet("ovmf-ip6")
        // Not netboot: an address, no boot file, and the policy is not needed.
        let advertise = try answer(r, plain, nil).get()
        #expect(advertise.packet.message.options.iaNAs.first?.addresses.count == 1 && advertise.bootFileURL == nil)

        // Rapid commit: a Reply that binds at once.
        var rapid = plain.message
        rapid.options.append(DHCPv6OptionCode.rapidCommit, [])
        let reply = try answer(r, DHCPv6Packet(message: rapid), nil).get()
        #expect(reply.packet.message.type == .reply && reply.packet.message.options.contains(DHCPv6OptionCode.rapidCommit) && pool.count == 1)

        // Exhausted: three addresses, then NoAddrsAvail in the IA.
        for id: UInt8 in 1...3 {
            var m = rapid
            m.options.set(DHCPv6OptionCode.clientID, [0, 3, 0, 1, id, id, id, id, id, id])
            _ = try answer(r, DHCPv6Packet(message: m), nil).get()
        }
        var late = plain.message
        late.options.set(DHCPv6OptionCode.clientID, [0, 3, 0, 1, 9, 9, 9, 9, 9, 9])
        let dry = try answer(r, DHCPv6Packet(message: late), nil).get()
        let ia = try #require(dry.packet.message.options.iaNAs.first)
        #expect(ia.addresses.isEmpty && ia.options.status?.code == DHCPv6Status.noAddrsAvail.rawValue)

        // Confirm: on link or not.
        var confirm = plain.message
        confirm.type = .confirm
        confirm.options.set(DHCPv6OptionCode.iaNA, DHCPv6IANA(iaid: 1, options: DHCPv6Options([DHCPv6Option(
            code: DHCPv6OptionCode.iaAddress, value: DHCPv6IAAddress(address: IPv6Address("fd77::5")!, preferredLifetime: 0, validLifetime: 0).bytes)])).bytes)
        #expect(try answer(r, DHCPv6Packet(message: confirm), nil).get().packet.message.options.status?.code == 0)
        confirm.options.set(DHCPv6OptionCode.iaNA, DHCPv6IANA(iaid: 1, options: DHCPv6Options([DHCPv6Option(
            code: DHCPv6OptionCode.iaAddress, value: DHCPv6IAAddress(address: IPv6Address("fd99::5")!, preferredLifetime: 0, validLifetime: 0).bytes)])).bytes)
        #expect(try answer(r, DHCPv6Packet(message: confirm), nil).get().packet.message.options.status?.code == DHCPv6Status.notOnLink.rawValue)
    }

    /// A Solicit flood from made-up DUIDs: offers past their hold are dropped, the table stays
    /// bounded, and a real client is offered an address again once the hold is over.
    @Test func offersFromAFloodAreBoundedAndExpire() throws {
        let range = try DHCPv6Range(start: IPv6Address("fd77::1:0")!, end: IPv6Address("fd77::f:ffff")!, leaseTime: 600)
        let pool = DHCPv6LeasePool(ranges: [range], offerHold: 60)
        let t0 = Date(timeIntervalSince1970: 1_900_000_000)
        for n in 0..<(DHCPv6LeasePool.maximumOffers + 10) {
            _ = pool.offer(client: "flood-\(n)", in: range, now: t0.addingTimeInterval(Double(n) / 10_000))
        }
        #expect(pool.offerCount == DHCPv6LeasePool.maximumOffers)
        #expect(pool.offer(client: "real", in: range, now: t0.addingTimeInterval(7)) == .failure(.exhausted))
        // Past the hold: the flood's offers go, the real client is served, the table shrinks.
        #expect((try? pool.offer(client: "real", in: range, now: t0.addingTimeInterval(120)).get()) != nil)
        #expect(pool.offerCount == 1, "\(pool.offerCount)")
    }

    @Test func aRelayedSolicitIsAnsweredThroughItsRelays() throws {
        let inner = try V6.packet("ovmf-pxe6").message
        let relay = DHCPv6RelayMessage(type: .relayForward, hopCount: 0, linkAddress: IPv6Address("fd77::1")!,
                                       peerAddress: V6.client, options: DHCPv6Options([
                                           DHCPv6Option(code: DHCPv6OptionCode.interfaceID, value: Array("swp7".utf8)),
                                           DHCPv6Option(code: DHCPv6OptionCode.remoteID, value: [0, 0, 0, 9, 1, 2])]))
        let packet = DHCPv6Packet(relays: [relay], message: inner)
        let arrival = DHCPv6Responder.Arrival(port: 547, source: IPv6Address("fd77::1")!, sourcePort: 547, serverAddress: V6.server)
        let s = try bootOnly.screen(packet, arrival: arrival).get()
        let reply = try bootOnly.answer(s, arrival: arrival, decision: V6.ipxeEFI).result.get()
        let back = try DHCPv6Packet(bytes: reply.bytes)
        #expect(back.relays.count == 1 && back.relays[0].type == .relayReply && back.relays[0].peerAddress == V6.client)
        #expect(back.relays[0].options[code: DHCPv6OptionCode.interfaceID] == Array("swp7".utf8))
        #expect(!back.relays[0].options.contains(DHCPv6OptionCode.remoteID))
        #expect(back.message.type == .advertise && back.message.options.bootFileURL == "tftp://[fd77::2]/ipxe.efi")
        #expect(reply.destination == IPv6Address("fd77::1") && reply.destinationPort == 547)
        // The policy sees the relay's view.
        let request = BootRequest(dhcpv6: packet, source: arrival.source, interface: nil, serverPort: 547)
        #expect(request.relay?.giaddr == "fd77::1" && request.relay?.circuitID == "swp7" && request.mac == "52:54:00:79:00:02")
    }

    @Test func rangesParseAsDnsmasqSpellsThem() throws {
        let r = try #require(try DHCPv6Range.parse("fd77::100,fd77::1ff,64,12h"))
        #expect(r.start == IPv6Address("fd77::100") && r.size == 256 && r.prefixLength == 64 && r.leaseTime == 43_200)
        #expect(try DHCPv6Range.parse("fd77::100,fd77::1ff")?.leaseTime == DHCPRange.defaultLease)
        #expect(try DHCPv6Range.parse("192.168.77.10,192.168.77.20") == nil)
        #expect(throws: DHCPRangeError.self) { try DHCPv6Range.parse("fd77::1ff,fd77::100") }
        #expect(throws: DHCPRangeError.self) { try DHCPv6Range.parse("fe80::1,fe80::9") }
        #expect(throws: DHCPRangeError.self) { try DHCPv6Range.parse("fd77::1,fd78::1") }
        #expect(throws: DHCPRangeError.self) { try DHCPv6Range.parse("fd77::1,fd77::ff:ffff:ffff") }
    }
}

/// The server over real sockets on ::1.
@Suite(.serialized) struct DHCPv6ServerTests {
    static let quiet: Logger = {
        var l = Logger(label: "test.dhcpv6")
        l.logLevel = .critical
        return l
    }()

    /// [::1]:`port`.
    static func loopback(port: Int) -> sockaddr_in6 {
        var to = sockaddr_in6()
        to.sin6_family = sa_family_t(AF_INET6)
        to.sin6_port = in_port_t(UInt16(port).bigEndian)
        withUnsafeMutableBytes(of: &to.sin6_addr) { $0[15] = 1 }
        return to
    }

    /// sendto(2) of `bytes` from `fd`: what it returned.
    @discardableResult
    static func send(_ bytes: [UInt8], from fd: CInt, to: sockaddr_in6) -> Int {
        var to = to
        return bytes.withUnsafeBytes { b in
            withUnsafePointer(to: &to) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, b.baseAddress, b.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        }
    }

    /// A server on [::1] (one port the kernel picks) answering with `ipxe.efi`, started, and a
    /// client socket with the server's address: for the tests that send their own datagrams.
    static func startedServer(_ responder: DHCPv6Responder) async throws -> (server: DHCPv6Server, fd: CInt, to: sockaddr_in6) {
        let server = DHCPv6Server(configuration: .init(bindAddress: "::1", ports: [0], responder: responder),
                                  decider: FixedDecider(decision: BootDecision(filename: "ipxe.efi")), logger: quiet)
        try await server.start()
        let port = try #require(server.listening.first?.port)
        let fd = socket(AF_INET6, Int32(SOCK_DGRAM.rawValue), 0)
        return (server, fd, loopback(port: port))
    }

    /// Sends `bytes` from a fresh socket on [::1] and returns the first reply within `timeout`.
    static func exchange(_ bytes: [UInt8], port: Int, timeout: Int = 2000) throws -> [UInt8]? {
        let fd = socket(AF_INET6, Int32(SOCK_DGRAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd) }
        #expect(send(bytes, from: fd, to: loopback(port: port)) == bytes.count)
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, Int32(timeout)) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 2048)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n > 0 ? Array(buffer[..<n]) : nil
    }

    @Test func answersOverRealSocketsAndCountsEverything() async throws {
        let responder = DHCPv6Responder(serverDUID: V6.serverDUID, pool: DHCPv6LeasePool(ranges: [try DHCPv6Range(
            start: IPv6Address("fd77::100")!, end: IPv6Address("fd77::1ff")!)]))
        let events = EventLog()
        let server = DHCPv6Server(configuration: .init(bindAddress: "::1", ports: [0, 0], responder: responder),
                                  decider: FixedDecider(decision: BootDecision(filename: "ipxe.efi", policy: "fixed")),
                                  events: events, logger: Self.quiet)
        try await server.start()
        let ports = server.listening.map(\.port)
        #expect(ports.count == 2 && !ports.contains(0))

        // On ::1 nothing serves a range (no link address in one): boot-only answers, with
        // our bound address as the TFTP host.
        let advertise = try #require(try Self.exchange(try V6.fixture("ovmf-pxe6"), port: ports[0]))
        let a = try DHCPv6Packet(bytes: advertise).message
        #expect(a.type == .advertise && a.options.bootFileURL == "tftp://[::1]/ipxe.efi")
        var request = try V6.packet("ovmf-pxe6").message
        request.type = .request
        request.options.append(DHCPv6OptionCode.serverID, V6.serverDUID.bytes)
        let reply = try #require(try Self.exchange(request.bytes, port: ports[1]))
        #expect(try DHCPv6Packet(bytes: reply).message.type == .reply)

        #expect(try Self.exchange([1, 2], port: ports[0], timeout: 300) == nil)
        #expect(try Self.exchange(try V6.fixture("ovmf-ip6"), port: ports[0], timeout: 300) == nil)
        await server.shutdown()
        let stats = server.statistics
        #expect(stats.received == 4 && stats.answered == 2 && stats.malformed == 1 && stats.silenced[.notNetboot] == 1, "\(stats)")
        #expect(stats.accountedFor == stats.received)
        #expect(events.events.count == 2 && events.events.first?.mac == "52:54:00:79:00:02")
    }

    /// Hostile input: relays nested past HOP_COUNT_LIMIT, truncated headers, options longer
    /// than the packet, and 10,000 mutations of the recorded Solicits. Every datagram is counted
    /// exactly once, none crashes the server, and it still answers a real Solicit afterwards.
    @Test func malformedAndMutatedPacketsAreDroppedAndCounted() async throws {
        let (server, fd, to) = try await Self.startedServer(DHCPv6Responder(
            serverDUID: V6.serverDUID, pool: DHCPv6LeasePool(ranges: [try V6.range()])))
        defer { close(fd) }
        func send(_ bytes: [UInt8]) { Self.send(bytes, from: fd, to: to) }
        let solicit = try V6.fixture("ovmf-pxe6")
        var inner = solicit
        for _ in 0..<9 {  // nine relays: one past the limit
            inner = DHCPv6RelayMessage(type: .relayForward, hopCount: 0, linkAddress: .any, peerAddress: V6.client,
                                       options: DHCPv6Options([DHCPv6Option(code: DHCPv6OptionCode.relayMessage, value: inner)])).bytes
        }
        var hostile: [[UInt8]] = [inner, [1], [1, 2, 3], [12] + [UInt8](repeating: 0, count: 20), Array(solicit.prefix(7)),
                                  Array(solicit.prefix(4)) + [0, 1, 0xff, 0xff, 1, 2], [99, 0, 0, 1]]
        var rng = SystemRandomNumberGenerator()
        let seeds = [solicit, try V6.fixture("ovmf-http6"), try V6.fixture("ipxe6"), try V6.fixture("ovmf-ip6")]
        for i in 0..<10_000 {
            var m = seeds[i % seeds.count]
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: m[Int.random(in: 0..<m.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                case 1: m = Array(m.prefix(Int.random(in: 0..<m.count, using: &rng)))
                default: m.insert(UInt8.random(in: 0...255, using: &rng), at: Int.random(in: 0...m.count, using: &rng))
                }
                if m.isEmpty { m = [0] }
            }
            hostile.append(m)
        }
        for (i, h) in hostile.enumerated() {
            send(h)
            if i % 200 == 199 {
                // A burst, then (bounded) until the server has read it: a loaded test machine
                // must not turn kernel buffer drops into a failure of what is tested here.
                for _ in 0..<200 where server.statistics.received < i + 1 { try await Task.sleep(for: .milliseconds(10)) }
            }
        }
        // Bounded wait until every datagram is accounted for.
        var stats = server.statistics
        for _ in 0..<100 {
            stats = server.statistics
            if stats.received == hostile.count { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(stats.received == hostile.count, "received \(stats.received) of \(hostile.count) (loopback drops?)")
        #expect(stats.accountedFor == stats.received, "\(stats)")
        #expect(stats.malformed >= 7, "\(stats)")
        #expect(try Self.exchange(solicit, port: Int(UInt16(bigEndian: to.sin6_port))).flatMap { try DHCPv6Packet(bytes: $0).message.type } == .advertise)
        print("dhcpv6 hostile input: \(hostile.count) sent, \(stats.malformed) malformed, \(stats.answered) answered, silenced \(stats.silenced.map { "\($0.key.rawValue)=\($0.value)" }.sorted().joined(separator: " "))")
        await server.shutdown()
    }

    /// A burst queued before the server reads it is taken in batches (recvmmsg) and answered
    /// with one sendmmsg a batch: every Solicit gets its own Advertise, to its sender's port.
    @Test func aBurstIsAnsweredInFull() async throws {
        let (server, fd, to) = try await Self.startedServer(DHCPv6Responder(serverDUID: V6.serverDUID))
        defer { close(fd) }
        let count = 100
        var solicit = try V6.packet("ovmf-pxe6").message
        for xid in 1...count {
            solicit.transactionID = UInt32(xid)
            let bytes = solicit.bytes
            #expect(Self.send(bytes, from: fd, to: to) == bytes.count)
        }
        var answered = Set<UInt32>()
        var buffer = [UInt8](repeating: 0, count: 2048)
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while answered.count < count, poll(&p, 1, 2000) == 1 {
            let n = recv(fd, &buffer, buffer.count, 0)
            guard n > 0, let m = try? DHCPv6Packet(bytes: Array(buffer[..<n])).message, m.type == .advertise else { continue }
            answered.insert(m.transactionID)
        }
        #expect(answered == Set((1...count).map { UInt32($0) }))
        await server.shutdown()
        let stats = server.statistics
        #expect(stats.received == count && stats.answered == count, "\(stats)")
    }

    @Test func aPortInUseIsABindErrorNamingIt() async throws {
        let responder = DHCPv6Responder(serverDUID: V6.serverDUID)
        let first = DHCPv6Server(configuration: .init(bindAddress: "::1", ports: [0], responder: responder),
                                 decider: FixedDecider(decision: nil), logger: Self.quiet)
        try await first.start()
        let port = try #require(first.listening.first?.port)
        let second = DHCPv6Server(configuration: .init(bindAddress: "::1", ports: [port], responder: responder),
                                  decider: FixedDecider(decision: nil), logger: Self.quiet)
        // SO_REUSEADDR lets two UDP sockets share a port on Linux only if both set it; the
        // first (port 0) did not.
        do {
            try await second.start()
            Issue.record("the second bind of [::1]:\(port) succeeded")
            await second.shutdown()
        } catch let error as ListenerBindError {
            #expect(error.description.contains("\(port)") && error.errno == EADDRINUSE, "\(error)")
        }
        await first.shutdown()
    }
}
