import Foundation
import Logging
import NIOCore
import Testing
@testable import Protocols

/// Full DHCP: ranges, the pool, and the responder as the server's core runs it.
@Suite struct DHCPRangeTests {
    @Test func parsesDnsmasqSpellings() throws {
        let a = try DHCPRange.parse("192.168.77.100,192.168.77.150,255.255.255.0,12h")
        #expect(a.start == IPv4Address(192, 168, 77, 100) && a.end == IPv4Address(192, 168, 77, 150))
        #expect(a.prefixLength == 24 && a.leaseTime == 43_200)
        let b = try DHCPRange.parse("10.0.0.10, 10.0.0.20, 2m")
        #expect(b.prefixLength == nil && b.leaseTime == 120)
        #expect(try DHCPRange.parse("10.0.0.10,10.0.0.20,/16,infinite").leaseTime == DHCPRange.infinite)
        #expect(try DHCPRange.parse("10.0.0.10,10.0.0.20").leaseTime == DHCPRange.defaultLease)
    }

    @Test(arguments: ["10.0.0.1", "10.0.0.1,10.0.0.x", "10.0.0.1,10.0.0.2,255.0.255.0", "10.0.0.1,10.0.0.2,1y",
                      "10.0.0.1,10.0.0.2,255.255.255.0,1h,extra", "10.0.0.1,10.0.0.2,/33"])
    func refusesMalformed(text: String) {
        #expect(throws: DHCPRangeError.self) { try DHCPRange.parse(text) }
    }

    @Test func checksTheRangeAgainstItsSubnet() throws {
        let net = try #require(IPv4Network("192.168.77.0/24"))
        #expect(throws: DHCPRangeError.self) { try DHCPRange(start: IPv4Address(192, 168, 77, 50), end: IPv4Address(192, 168, 77, 10), subnet: net) }
        #expect(throws: DHCPRangeError.self) { try DHCPRange(start: IPv4Address(192, 168, 77, 50), end: IPv4Address(192, 168, 78, 10), subnet: net) }
        #expect(throws: DHCPRangeError.self) { try DHCPRange(start: IPv4Address(192, 168, 77, 10), end: IPv4Address(192, 168, 77, 20), subnet: net, leaseTime: 5) }
        let r = try DHCPRange(start: IPv4Address(192, 168, 77, 0), end: IPv4Address(192, 168, 77, 255), subnet: net)
        #expect(!r.isAssignable(IPv4Address(192, 168, 77, 0)) && !r.isAssignable(IPv4Address(192, 168, 77, 255)))
        #expect(r.isAssignable(IPv4Address(192, 168, 77, 1)) && r.broadcastAddress == IPv4Address(192, 168, 77, 255))
    }
}

/// A journal that counts what it was given, and can be made to fail its waits.
final class RecordingJournal: LeaseJournal, @unchecked Sendable {
    private let lock = NSLock()
    private var items: [Lease] = []
    var failing = false
    func record(_ lease: Lease) -> UInt64 { lock.withLock { items.append(lease); return UInt64(items.count) } }
    func awaitDurable(through mark: UInt64) -> Bool { lock.withLock { !failing } }
    var location: String { "test" }
    var leases: [Lease] { lock.withLock { items } }
}

/// Decides the same for every request.
struct FixedDecider: BootDecider {
    let decision: BootDecision?
    func decide(_ request: BootRequest) -> BootDecision? { decision }
}

/// Answers "in use" for the addresses it is told.
struct FixedProbe: AddressProbe {
    let used: Set<IPv4Address>
    func inUse(_ address: IPv4Address) -> Bool { used.contains(address) }
}

@Suite struct LeasePoolTests {
    static func range(_ first: UInt8 = 10, _ last: UInt8 = 12, lease: UInt32 = 600) throws -> DHCPRange {
        try DHCPRange(start: IPv4Address(192, 168, 77, first), end: IPv4Address(192, 168, 77, last),
                      subnet: IPv4Network("192.168.77.0/24")!, leaseTime: lease)
    }
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    @Test func hands_out_in_order_and_the_same_address_again() throws {
        let r = try Self.range()
        let pool = LeasePool(ranges: [r])
        let a = try pool.offer(client: "c1", mac: "m1", in: r, now: Self.t0).get()
        #expect(a == IPv4Address(192, 168, 77, 10))
        // Offered again to the same client, not to another one.
        #expect(try pool.offer(client: "c1", mac: "m1", in: r, now: Self.t0).get() == a)
        #expect(try pool.offer(client: "c2", mac: "m2", in: r, now: Self.t0).get() == IPv4Address(192, 168, 77, 11))
        _ = try pool.bind(client: "c1", mac: "m1", hostname: "one", address: a, in: r, now: Self.t0).get()
        // Released, then back: the client gets its last address even though others are free.
        pool.release(client: "c1", address: a, now: Self.t0)
        #expect(try pool.offer(client: "c1", mac: "m1", in: r, now: Self.t0.addingTimeInterval(1)).get() == a)
    }

    @Test func runs_dry_then_has_room_when_a_lease_ends() throws {
        let r = try Self.range(10, 11)
        let pool = LeasePool(ranges: [r])
        for (i, c) in ["a", "b"].enumerated() {
            let address = try pool.offer(client: c, mac: c, in: r, now: Self.t0).get()
            #expect(address == IPv4Address(192, 168, 77, UInt8(10 + i)))
            _ = try pool.bind(client: c, mac: c, hostname: nil, address: address, in: r, now: Self.t0).get()
        }
        #expect(pool.offer(client: "c", mac: "c", in: r, now: Self.t0) == .failure(.exhausted))
        pool.release(client: "a", address: IPv4Address(192, 168, 77, 10), now: Self.t0)
        #expect(try pool.offer(client: "c", mac: "c", in: r, now: Self.t0).get() == IPv4Address(192, 168, 77, 10))
        _ = try pool.bind(client: "c", mac: "c", hostname: nil, address: IPv4Address(192, 168, 77, 10), in: r,
                          now: Self.t0.addingTimeInterval(590)).get()
        // b's lease runs out after 600 s: its address is free for d then.
        #expect(try pool.offer(client: "d", mac: "d", in: r, now: Self.t0.addingTimeInterval(601)).get() == IPv4Address(192, 168, 77, 11))
    }

    @Test func never_binds_one_address_to_two_clients() throws {
        let r = try Self.range()
        let pool = LeasePool(ranges: [r])
        let a = IPv4Address(192, 168, 77, 10)
        _ = try pool.bind(client: "a", mac: "a", hostname: nil, address: a, in: r, now: Self.t0).get()
        #expect(throws: LeasePool.Failure.heldByAnother) { try pool.bind(client: "b", mac: "b", hostname: nil, address: a, in: r, now: Self.t0).get() }
        #expect(throws: LeasePool.Failure.notAssignable) {
            try pool.bind(client: "b", mac: "b", hostname: nil, address: IPv4Address(192, 168, 77, 200), in: r, now: Self.t0).get()
        }
        // A client moving to another address gives the old one back (one address per subnet).
        _ = try pool.bind(client: "a", mac: "a", hostname: nil, address: IPv4Address(192, 168, 77, 11), in: r, now: Self.t0).get()
        #expect(pool.lease(at: a)?.state == .released)
    }

    @Test func a_decline_quarantines_only_what_the_client_was_given() throws {
        let r = try Self.range()
        let journal = RecordingJournal()
        let pool = LeasePool(ranges: [r], settings: .init(declineQuarantine: 300), journal: journal)
        let a = try pool.offer(client: "a", mac: "a", in: r, now: Self.t0).get()
        // A storm from another client for every address changes nothing.
        for n in 0..<50 { #expect(pool.decline(client: "x\(n)", address: IPv4Address(192, 168, 77, UInt8(10 + n % 3)), now: Self.t0) == 0) }
        #expect(journal.leases.isEmpty)
        #expect(pool.decline(client: "a", address: a, now: Self.t0) != 0)
        #expect(pool.lease(at: a)?.state == .declined)
        // Nobody is offered it during the quarantine, and then it is free again.
        #expect(try pool.offer(client: "a", mac: "a", in: r, now: Self.t0.addingTimeInterval(1)).get() != a)
        #expect(throws: LeasePool.Failure.heldByAnother) {
            try pool.bind(client: "z", mac: "z", hostname: nil, address: a, in: r, now: Self.t0.addingTimeInterval(299)).get()
        }
        #expect(try pool.bind(client: "z", mac: "z", hostname: nil, address: a, in: r, now: Self.t0.addingTimeInterval(301)).get().lease.address == a)
    }

    @Test func reservations_by_mac_and_by_policy() throws {
        let r = try Self.range()
        let reserved = IPv4Address(192, 168, 77, 5)  // outside the dynamic range, inside the subnet
        let pool = LeasePool(ranges: [r], settings: .init(reservations: ["52:54:00:00:00:01": reserved]))
        #expect(try pool.offer(client: "a", mac: "52:54:00:00:00:01", in: r, now: Self.t0).get() == reserved)
        // Nobody else may take a reserved address, even asking for it.
        #expect(throws: LeasePool.Failure.notAssignable) { try pool.bind(client: "b", mac: "b", hostname: nil, address: reserved, in: r, now: Self.t0).get() }
        #expect(try pool.bind(client: "a", mac: "52:54:00:00:00:01", hostname: nil, address: reserved, in: r, now: Self.t0).get().lease.address == reserved)
        // A policy's pin (an inventory): honoured when free and in the subnet, else ignored.
        let pin = IPv4Address(192, 168, 77, 7)
        #expect(try pool.offer(client: "c", mac: "c", in: r, pinned: pin, now: Self.t0).get() == pin)
        #expect(try pool.offer(client: "d", mac: "d", in: r, pinned: IPv4Address(10, 0, 0, 1), now: Self.t0).get() == IPv4Address(192, 168, 77, 10))
        #expect(try pool.offer(client: "e", mac: "e", in: r, pinned: pin, now: Self.t0).get() != pin)
    }

    @Test func a_probe_that_answers_skips_and_quarantines_the_address() throws {
        let r = try Self.range()
        let pool = LeasePool(ranges: [r], probe: FixedProbe(used: [IPv4Address(192, 168, 77, 10)]))
        #expect(try pool.offer(client: "a", mac: "a", in: r, now: Self.t0).get() == IPv4Address(192, 168, 77, 11))
        #expect(pool.lease(at: IPv4Address(192, 168, 77, 10))?.state == .declined)
    }

    @Test func offers_never_taken_come_back_after_their_hold() throws {
        let r = try Self.range(10, 12)
        let pool = LeasePool(ranges: [r], settings: .init(offerHold: 60))
        for c in ["a", "b", "c"] { _ = try pool.offer(client: c, mac: c, in: r, now: Self.t0).get() }
        #expect(pool.offer(client: "d", mac: "d", in: r, now: Self.t0.addingTimeInterval(30)) == .failure(.exhausted))
        #expect(try pool.offer(client: "d", mac: "d", in: r, now: Self.t0.addingTimeInterval(61)).get() == IPv4Address(192, 168, 77, 10))
    }

    /// A /16 used in steady state: 10,000 clients bound, 5,000 released, 5,000 new ones get
    /// exactly the released addresses, each once (the scan's spare list, not a scan each).
    @Test func a_large_range_in_steady_use() throws {
        let r = try DHCPRange(start: IPv4Address(10, 0, 0, 1), end: IPv4Address(10, 0, 39, 16), subnet: IPv4Network("10.0.0.0/16")!)
        #expect(r.size == 10_000)
        let pool = LeasePool(ranges: [r])
        var held: [IPv4Address] = []
        for n in 0..<10_000 {
            let a = try pool.offer(client: "c\(n)", mac: "m\(n)", in: r, now: Self.t0).get()
            held.append(try pool.bind(client: "c\(n)", mac: "m\(n)", hostname: nil, address: a, in: r, now: Self.t0).get().lease.address)
        }
        #expect(Set(held).count == 10_000)
        for n in stride(from: 0, to: 10_000, by: 2) { pool.release(client: "c\(n)", address: held[n], now: Self.t0) }
        var second: Set<IPv4Address> = []
        for n in 0..<5_000 {
            let a = try pool.offer(client: "n\(n)", mac: "n\(n)", in: r, now: Self.t0.addingTimeInterval(1)).get()
            _ = try pool.bind(client: "n\(n)", mac: "n\(n)", hostname: nil, address: a, in: r, now: Self.t0.addingTimeInterval(1)).get()
            second.insert(a)
        }
        #expect(second == Set(stride(from: 0, to: 10_000, by: 2).map { held[$0] }))
        #expect(pool.offer(client: "late", mac: "late", in: r, now: Self.t0.addingTimeInterval(2)) == .failure(.exhausted))
    }

    @Test func starts_from_loaded_leases() throws {
        let r = try Self.range()
        let held = Lease(address: IPv4Address(192, 168, 77, 10), client: "a", mac: "a", expires: Self.t0.addingTimeInterval(100))
        let pool = LeasePool(ranges: [r], loaded: [held])
        #expect(try pool.offer(client: "b", mac: "b", in: r, now: Self.t0).get() == IPv4Address(192, 168, 77, 11))
        #expect(try pool.offer(client: "a", mac: "a", in: r, now: Self.t0).get() == held.address)
    }
}

/// The responder as the server runs it: whole messages through `ProxyDHCPServer.Core`.
@Suite struct FullDHCPResponderTests {
    static let us = IPv4Address(192, 168, 77, 1)
    static let quiet: Logger = {
        var l = Logger(label: "test.full")
        l.logLevel = .critical
        return l
    }()

    final class Rig {
        let journal = RecordingJournal()
        let pool: LeasePool
        let core: ProxyDHCPServer.Core
        init(decision: BootDecision? = BootDecision(filename: "undionly.kpxe"), range: DHCPRange? = nil, proxy: Bool = true) throws {
            var r = try range ?? LeasePoolTests.range(10, 12, lease: 600)
            r.routers = [FullDHCPResponderTests.us]
            r.dnsServers = [IPv4Address(192, 168, 77, 2)]
            r.domain = "lab.test"
            pool = LeasePool(ranges: [r], journal: journal)
            core = ProxyDHCPServer.Core(responder: ProxyDHCPResponder(), decider: FixedDecider(decision: decision),
                                        events: NoEventSink(), logger: FullDHCPResponderTests.quiet,
                                        full: FullDHCPResponder(pool: pool), proxy: proxy)
        }
        /// One exchange; the lease mark the reply must wait for goes to `mark`.
        func send(_ m: DHCPMessage, arrivalAddress: IPv4Address = FullDHCPResponderTests.us, mark: inout UInt64) -> ProxyDHCPResponder.Reply? {
            var commit: UInt64 = 0
            return core.process(ByteBuffer(bytes: m.bytes), source: .any, sourcePort: 68, port: 67, interface: "bp0",
                                serverAddress: arrivalAddress, holding: &commit, lease: &mark)
        }
        func send(_ m: DHCPMessage, arrivalAddress: IPv4Address = FullDHCPResponderTests.us) -> ProxyDHCPResponder.Reply? {
            var mark: UInt64 = 0
            return send(m, arrivalAddress: arrivalAddress, mark: &mark)
        }
    }

    static func message(_ type: DHCPMessageType, mac: UInt8 = 1, ciaddr: IPv4Address = .any, giaddr: IPv4Address = .any,
                        options: [(UInt8, [UInt8])] = [], broadcast: Bool = true) -> DHCPMessage {
        var m = DHCPMessage(op: .request, xid: 0x77, flags: broadcast ? 0x8000 : 0, ciaddr: ciaddr, giaddr: giaddr,
                            chaddr: [0x52, 0x54, 0, 0, 0, mac])
        m.messageType = type
        m.options.set(55, [1, 3, 6, 15, 51, 54, 58, 59])
        for (c, v) in options { m.options.set(c, v) }
        return m
    }

    static func u32(_ m: DHCPMessage, _ code: UInt8) -> UInt32? {
        guard let v = m.options[code: code], v.count == 4 else { return nil }
        return v.reduce(0) { $0 << 8 | UInt32($1) }
    }

    @Test func dora_then_renew_then_init_reboot() throws {
        let rig = try Rig()
        let offer = try #require(rig.send(Self.message(.discover)))
        #expect(offer.message.messageType == .offer && offer.message.yiaddr == IPv4Address(192, 168, 77, 10))
        #expect(offer.broadcast && offer.destination == .broadcast && offer.destinationPort == 68)
        #expect(offer.message.bootFile == "undionly.kpxe" && offer.message.siaddr == Self.us)
        #expect(offer.message.options[code: 1] == [255, 255, 255, 0] && offer.message.options[code: 3] == Self.us.bytes)
        #expect(Self.u32(offer.message, 51) == 600 && Self.u32(offer.message, 58) == 300 && Self.u32(offer.message, 59) == 525)
        #expect(offer.message.options[code: 15] == Array("lab.test".utf8) && offer.message.options[code: 54] == Self.us.bytes)
        #expect(offer.message.options[code: 43] == nil, "no PXE menu in full mode")
        #expect(rig.journal.leases.isEmpty, "an offer is not journaled")

        var mark: UInt64 = 0
        let ack = try #require(rig.send(Self.message(.request, options: [(50, offer.message.yiaddr.bytes), (54, Self.us.bytes)]), mark: &mark))
        #expect(ack.message.messageType == .ack && ack.message.yiaddr == offer.message.yiaddr && mark == 1)
        #expect(rig.journal.leases.last?.address == offer.message.yiaddr && rig.journal.leases.last?.state == .bound)

        // RENEWING: unicast, ciaddr set, no option 50/54: ACKed to ciaddr.
        let renew = try #require(rig.send(Self.message(.request, ciaddr: offer.message.yiaddr, broadcast: false)))
        #expect(renew.message.messageType == .ack && renew.message.ciaddr == offer.message.yiaddr)
        #expect(renew.destination == offer.message.yiaddr && !renew.broadcast)

        // INIT-REBOOT for its own address: ACK; for an address it never had: silent.
        #expect(rig.send(Self.message(.request, options: [(50, offer.message.yiaddr.bytes)]))?.message.messageType == .ack)
        #expect(rig.send(Self.message(.request, mac: 9, options: [(50, IPv4Address(192, 168, 77, 12).bytes)])) == nil)
        #expect(rig.core.statistics.silenced[.noLeaseRecord] == 1)
    }

    @Test func naks_what_it_must() throws {
        let rig = try Rig()
        let a = try #require(rig.send(Self.message(.discover))).message.yiaddr
        _ = try #require(rig.send(Self.message(.request, options: [(50, a.bytes), (54, Self.us.bytes)])))
        // Another client asking for a's address, in each state.
        let selecting = try #require(rig.send(Self.message(.request, mac: 2, options: [(50, a.bytes), (54, Self.us.bytes)])))
        #expect(selecting.message.messageType == .nak && selecting.message.yiaddr == .any && selecting.broadcast)
        #expect(selecting.message.options[code: 51] == nil && selecting.message.options[code: 56] != nil)
        #expect(rig.send(Self.message(.request, mac: 2, options: [(50, a.bytes)]))?.message.messageType == .nak)
        #expect(rig.send(Self.message(.request, mac: 2, ciaddr: a, broadcast: false))?.message.messageType == .nak)
        // An address on another network (a laptop from elsewhere): NAK so it starts over.
        #expect(rig.send(Self.message(.request, mac: 3, options: [(50, [10, 9, 9, 9])]))?.message.messageType == .nak)
        // Inside the subnet but outside the range.
        #expect(rig.send(Self.message(.request, mac: 3, options: [(50, [192, 168, 77, 200]), (54, Self.us.bytes)]))?.message.messageType == .nak)
    }

    /// Found by the fuzzer: a NAK echoing a long option 82 was sent over the client's 576 bytes.
    @Test func a_nak_that_cannot_fit_is_not_sent() throws {
        let rig = try Rig()
        var request = Self.message(.request, mac: 5, options: [(50, [10, 9, 9, 9])])
        request.options.set(82, [UInt8](repeating: 0x41, count: 200))
        request.options.set(81, [UInt8](repeating: 0x42, count: 250))  // not echoed
        #expect(rig.send(request)?.message.messageType == .nak, "a NAK with an option 82 that fits is sent")
        request.options.set(82, [UInt8](repeating: 0x41, count: 600))  // RFC 3396: split, joined on decode
        #expect(rig.send(request) == nil)
        #expect(rig.core.statistics.silenced[.replyTooLarge] == 1)
    }

    @Test func another_servers_offer_taken_frees_ours() throws {
        let rig = try Rig()
        let a = try #require(rig.send(Self.message(.discover))).message.yiaddr
        #expect(rig.send(Self.message(.request, options: [(50, a.bytes), (54, [192, 168, 77, 99])])) == nil)
        #expect(rig.core.statistics.silenced[.otherServerChosen] == 1)
        // Free again: another client asking for it (option 50) is offered it.
        #expect(rig.send(Self.message(.discover, mac: 2, options: [(50, a.bytes)]))?.message.yiaddr == a)
    }

    @Test func release_decline_and_inform() throws {
        let rig = try Rig()
        let a = try #require(rig.send(Self.message(.discover))).message.yiaddr
        _ = try #require(rig.send(Self.message(.request, options: [(50, a.bytes), (54, Self.us.bytes)])))
        #expect(rig.send(Self.message(.release, ciaddr: a, options: [(54, Self.us.bytes)])) == nil)
        #expect(rig.pool.lease(at: a)?.state == .released)
        #expect(rig.send(Self.message(.decline, options: [(50, a.bytes), (54, Self.us.bytes)])) == nil)
        #expect(rig.pool.lease(at: a)?.state == .declined)
        let stats = rig.core.statistics
        #expect(stats.silenced[.released] == 1 && stats.silenced[.declined] == 1)
        let inform = try #require(rig.send(Self.message(.inform, mac: 4, ciaddr: IPv4Address(192, 168, 77, 40), broadcast: false)))
        #expect(inform.message.messageType == .ack && inform.message.yiaddr == .any && inform.message.options[code: 51] == nil)
        #expect(inform.destination == IPv4Address(192, 168, 77, 40) && inform.message.options[code: 6] == [192, 168, 77, 2])
    }

    @Test func pool_exhaustion_is_silence_counted() throws {
        let rig = try Rig(range: LeasePoolTests.range(10, 10))
        let a = try #require(rig.send(Self.message(.discover))).message.yiaddr
        _ = try #require(rig.send(Self.message(.request, options: [(50, a.bytes), (54, Self.us.bytes)])))
        #expect(rig.send(Self.message(.discover, mac: 2)) == nil)
        #expect(rig.send(Self.message(.discover, mac: 3)) == nil)
        #expect(rig.core.statistics.silenced[.poolExhausted] == 2, "every one counted")
        // Logged once per range every 10 s: the second was not, and is owed to the next line.
        #expect(rig.core.exhaustionToSay(rig.pool.ranges[0]) == nil)
    }

    @Test func malformed_identifiers_are_dropped() throws {
        let cases: [(UInt8, [UInt8])] = [(61, [1]), (61, []), (50, [192, 168, 77]), (54, [1, 2, 3, 4, 5])]
        for (code, value) in cases {
            let rig = try Rig()
            #expect(rig.send(Self.message(.request, options: [(code, value)])) == nil)
            #expect(rig.send(Self.message(.discover, options: [(code, value)])) == nil)
            let stats = rig.core.statistics
            // An empty option may already fail decoding (malformed); either way, dropped and counted.
            #expect((stats.silenced[.badOption] ?? 0) + stats.malformed == 2, "option \(code) \(value): \(stats)")
            #expect(rig.journal.leases.isEmpty)
        }
    }

    @Test func relayed_requests_use_the_relays_subnet_and_echo_option_82() throws {
        let relayRange = try DHCPRange(start: IPv4Address(10, 20, 0, 100), end: IPv4Address(10, 20, 0, 110),
                                       subnet: IPv4Network("10.20.0.0/24")!)
        let rig = try Rig(range: relayRange)
        let agent: [UInt8] = [1, 4, 0x65, 0x74, 0x68, 0x30]
        let offer = try #require(rig.send(Self.message(.discover, giaddr: IPv4Address(10, 20, 0, 1), options: [(82, agent)])))
        #expect(offer.message.yiaddr == IPv4Address(10, 20, 0, 100))
        #expect(offer.destination == IPv4Address(10, 20, 0, 1) && offer.destinationPort == 67 && !offer.broadcast)
        #expect(offer.message.options[code: 82] == agent)
        // From a relay in no served subnet: not full DHCP; with --no-proxy not answered at all.
        let strict = try Rig(range: relayRange, proxy: false)
        #expect(strict.send(Self.message(.discover, giaddr: IPv4Address(10, 30, 0, 1))) == nil)
        #expect(strict.core.statistics.silenced[.notServed] == 1)
    }

    @Test func the_policy_pins_or_refuses() throws {
        let pinned = try Rig(decision: BootDecision(filename: "x.efi", address: "192.168.77.12"))
        #expect(pinned.send(Self.message(.discover))?.message.yiaddr == IPv4Address(192, 168, 77, 12))
        let refused = try Rig(decision: BootDecision(ignore: true))
        #expect(refused.send(Self.message(.discover)) == nil)
        #expect(refused.core.statistics.silenced[.ignoredByPolicy] == 1)
        // No policy decided: the client still gets an address, with no boot file.
        let plain = try Rig(decision: nil)
        let offer = try #require(plain.send(Self.message(.discover)))
        #expect(offer.message.bootFile.isEmpty && offer.message.siaddr == .any && offer.message.yiaddr == IPv4Address(192, 168, 77, 10))
    }

    @Test func an_ack_whose_lease_is_not_durable_is_withheld() throws {
        let rig = try Rig()
        let a = try #require(rig.send(Self.message(.discover))).message.yiaddr
        rig.journal.failing = true
        let reply = rig.core.process(ByteBuffer(bytes: Self.message(.request, options: [(50, a.bytes), (54, Self.us.bytes)]).bytes),
                                     source: .any, sourcePort: 68, port: 67, interface: "bp0", serverAddress: Self.us)
        #expect(reply == nil)
        #expect(rig.core.statistics.silenced[.stateNotDurable] == 1)
    }

    /// Over a real socket: DISCOVER/OFFER/REQUEST/ACK against the server on 127.0.0.1.
    @Test func dora_over_loopback() async throws {
        let range = try DHCPRange(start: IPv4Address(127, 77, 0, 10), end: IPv4Address(127, 77, 0, 20), subnet: IPv4Network("127.0.0.0/8")!)
        let pool = LeasePool(ranges: [range])
        let server = ProxyDHCPServer(configuration: .init(bindAddress: "127.0.0.1", ports: [0], fullDHCP: FullDHCPResponder(pool: pool)),
                                     decider: StaticBootDecider(), logger: Self.quiet)
        try await server.start()
        defer { Task { await server.shutdown() } }
        let port = try #require(server.listening.first?.port)
        let client = try UDPProbe(bind: "127.0.0.1", port: 0)
        client.send(Self.message(.discover, options: [(60, Array("MSFT 5.0".utf8))]).bytes, to: .loopback, port: port)
        let offer = try DHCPMessage(bytes: try #require(client.receive(timeout: 3, limit: 1).first).bytes)
        #expect(offer.messageType == .offer && offer.yiaddr == IPv4Address(127, 77, 0, 10))
        client.send(Self.message(.request, options: [(50, offer.yiaddr.bytes), (54, [127, 0, 0, 1])]).bytes, to: .loopback, port: port)
        let ack = try DHCPMessage(bytes: try #require(client.receive(timeout: 3, limit: 1).first).bytes)
        #expect(ack.messageType == .ack && ack.yiaddr == offer.yiaddr)
        #expect(pool.lease(at: offer.yiaddr)?.state == .bound)
    }
}
