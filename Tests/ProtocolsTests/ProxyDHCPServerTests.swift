import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NIOPosix
import Testing
@testable import Protocols

/// Records events in memory.
final class EventLog: BootEventSink, @unchecked Sendable {
    private let lock = NSLock()
    private var items: [BootEvent] = []
    func record(_ event: BootEvent) { lock.withLock { items.append(event) } }
    var events: [BootEvent] { lock.withLock { items } }
}

@Suite(.serialized) struct ProxyDHCPServerTests {
    static let quiet: Logger = {
        var logger = Logger(label: "test.proxydhcp")
        logger.logLevel = .critical
        return logger
    }()

    // MARK: handler in an EmbeddedChannel

    @Test func handlerRepliesAndCounts() throws {
        let events = EventLog()
        let core = ProxyDHCPServer.Core(responder: ProxyDHCPResponder(), decider: StaticBootDecider(), events: events, logger: Self.quiet)
        let handler = ProxyDHCPServer.Handler(core: core, port: 67, interface: "bp0", serverAddress: IPv4Address(192, 168, 77, 1), devices: [:])
        let channel = EmbeddedChannel(handler: handler)
        defer { _ = try? channel.finish() }
        let client = try SocketAddress(ipAddress: "0.0.0.0", port: 68)

        func send(_ bytes: [UInt8]) throws {
            try channel.writeInbound(AddressedEnvelope(remoteAddress: client, data: ByteBuffer(bytes: bytes)))
        }
        try send(Build.discover(arch: 0).bytes)
        let out = try #require(try channel.readOutbound(as: AddressedEnvelope<ByteBuffer>.self))
        #expect(out.remoteAddress == (try SocketAddress(ipAddress: "255.255.255.255", port: 68)))
        let reply = try DHCPMessage(bytes: Array(out.data.readableBytesView))
        #expect(reply.messageType == .offer && reply.bootFile == "undionly.kpxe" && reply.siaddr == IPv4Address(192, 168, 77, 1))

        try send(Build.discover(arch: 0, extra: [(175, [19, 1, 1])]).bytes)
        let ipxe = try #require(try channel.readOutbound(as: AddressedEnvelope<ByteBuffer>.self))
        #expect(try DHCPMessage(bytes: Array(ipxe.data.readableBytesView)).bootFile == "bootstrap.ipxe")

        try send([1, 2, 3])
        try send(Build.discover(vendorClass: "MSFT 5.0").bytes)
        #expect(try channel.readOutbound(as: AddressedEnvelope<ByteBuffer>.self) == nil)
        let stats = core.statistics
        #expect(stats.received == 4 && stats.answered == 2 && stats.malformed == 1 && stats.silenced[.notPXE] == 1)
        #expect(stats.accountedFor == stats.received)
        #expect(events.events.count == 2)
        let first = try #require(events.events.first)
        #expect(first.stage == .dhcp && first.arch == "bios" && first.firmware == "bios" && first.file == "undionly.kpxe")
        #expect(first.summary == "PXE(bp0:67) \(first.mac) DISCOVER arch=bios firmware=bios -> undionly.kpxe", "\(first.summary)")
        #expect(first.fields == ["arch": "bios", "firmware": "bios", "outcome": "answered", "port": "67", "file": "undionly.kpxe",
                                 "type": "discover"].merging(first.policy.map { ["policy": $0] } ?? [:]) { a, _ in a })
        #expect(events.events.last?.summary.hasSuffix("firmware=ipxe -> bootstrap.ipxe") == true, "\(events.events.last?.summary ?? "")")
    }

    // MARK: real sockets on loopback

    /// Starts a server on 127.0.0.1 on two ports the kernel picks (67-like, and 4011-like by
    /// `pxePortIndex`), as it reported them.
    static func startLoopbackServer(decider: BootDecider = StaticBootDecider()) async throws -> (ProxyDHCPServer, Int, Int) {
        let running = ServerRunningSignal()
        let server = ProxyDHCPServer(
            configuration: .init(bindAddress: "127.0.0.1", ports: [0, 0], pxePortIndex: 1),
            decider: decider, logger: quiet, onServerRunning: running.callback)
        try await server.start()
        let bound = try #require(await running.wait(timeout: .seconds(1)), "start() returned before onServerRunning")
        try #require(bound.count == 2 && bound == server.listening, "\(bound) / \(server.listening)")
        return (server, bound[0].port, bound[1].port)
    }

    /// Two port-0 sockets get two real ports, distinct (no SO_REUSEADDR sharing).
    @Test func portZeroSocketsGetDistinctRealPorts() async throws {
        let (server, port67, port4011) = try await Self.startLoopbackServer()
        #expect(port67 != 0 && port4011 != 0 && port67 != port4011)
        await server.shutdown()
    }

    @Test func answersOverRealLoopbackSockets() async throws {
        let (server, port67, port4011) = try await Self.startLoopbackServer()
        #expect(server.boundAddresses == ["127.0.0.1:\(port67)", "127.0.0.1:\(port4011)"])
        let client = try UDPProbe(bind: "127.0.0.1", port: 0)
        client.send(Build.discover(arch: 0).bytes, to: .loopback, port: port67)
        let offer = try #require(client.receive(timeout: 3, limit: 1).first)
        let message = try DHCPMessage(bytes: offer.bytes)
        #expect(message.messageType == .offer)
        #expect(message.serverIdentifier == .loopback)
        #expect(offer.sourcePort == port67)

        var request = Build.discover(arch: 7)
        request.messageType = .request
        request.ciaddr = .loopback
        client.send(request.bytes, to: .loopback, port: port4011)
        let ack = try #require(client.receive(timeout: 3, limit: 1).first)
        #expect(try DHCPMessage(bytes: ack.bytes).messageType == .ack)
        #expect(ack.sourcePort == port4011)
        await server.shutdown()
    }

    /// Each socket's thread is named for its port and, on a kernel that takes custom slices
    /// (6.12+), runs with the short slice ReceiveThread asks for: read back from
    /// /proc/self/task/TID/{comm,sched}, where ps and the scheduler see them.
    @Test func receiveThreadsAreNamedAndAskForAShortSlice() async throws {
        let (server, port67, port4011) = try await Self.startLoopbackServer()
        func task(named name: String) -> String? {
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
            for tid in tasks {
                let comm = (try? String(contentsOfFile: "/proc/self/task/\(tid)/comm", encoding: .utf8)) ?? ""
                if comm.trimmingCharacters(in: .whitespacesAndNewlines) == name { return tid }
            }
            return nil
        }
        var found: [String] = []
        // The threads name themselves once running: bounded wait, 2 s.
        for _ in 0..<100 {
            found = ["bp-dhcp-\(port67)", "bp-dhcp-\(port4011)"].compactMap(task(named:))
            if found.count == 2 { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        // "se.slice : N" of each thread, where the kernel reports it.
        let slices = found.compactMap { tid -> String? in
            let sched = (try? String(contentsOfFile: "/proc/self/task/\(tid)/sched", encoding: .utf8)) ?? ""
            let line = sched.split(separator: "\n").first { $0.hasPrefix("se.slice") }
            return line?.split(separator: ":").last?.trimmingCharacters(in: .whitespaces)
        }
        await server.shutdown()

        #expect(found.count == 2, "one named thread per socket")
        let (major, minor) = SchedulerSliceTests.kernel()
        if major > 6 || (major == 6 && minor >= 12) {
            #expect(slices == Array(repeating: String(ProxyDHCPServer.ReceiveThread.requestedSlice), count: 2))
        }
    }

    /// A decider whose decisions all changed durable state: `durable` says whether the commit
    /// they wait for succeeds. Counts the waits.
    final class HoldingDecider: BootDecider, @unchecked Sendable {
        let durable: Bool
        private let lock = NSLock()
        private var waits: [UInt64] = []
        private var next: UInt64 = 0
        init(durable: Bool) { self.durable = durable }
        func decide(_ request: BootRequest) -> BootDecision? { StaticBootDecider().decide(request) }
        func decideHoldingCommit(_ request: BootRequest, datagram: ByteBuffer) -> (decision: BootDecision?, commit: UInt64) {
            (decide(request), lock.withLock { next += 1; return next })
        }
        func awaitCommit(through commit: UInt64) -> Bool {
            lock.withLock { waits.append(commit) }
            return durable
        }
        var waited: [UInt64] { lock.withLock { waits } }
    }

    /// A reply whose decision changed durable state leaves only once that is committed; when it
    /// cannot be, the reply is withheld and counted, never sent.
    @Test(arguments: [true, false]) func repliesWaitForTheirCommit(durable: Bool) async throws {
        let decider = HoldingDecider(durable: durable)
        let (server, port67, _) = try await Self.startLoopbackServer(decider: decider)
        let client = try UDPProbe(bind: "127.0.0.1", port: 0)
        client.send(Build.discover(arch: 0).bytes, to: .loopback, port: port67)
        let replies = client.receive(timeout: durable ? 3 : 0.5, limit: 1)
        let stats = server.statistics
        await server.shutdown()
        #expect(decider.waited == [1], "one wait, for the decision's commit")
        if durable {
            #expect(replies.count == 1)
            #expect(stats.answered == 1)
        } else {
            #expect(replies.isEmpty, "a reply was sent though its state is not durable")
            #expect(stats.answered == 0)
            #expect(stats.silenced[.stateNotDurable] == 1)
        }
    }

    /// A decider that takes `delay` per decision and notes which thread made it.
    final class SlowDecider: BootDecider, @unchecked Sendable {
        let delay: useconds_t
        private let lock = NSLock()
        private var threads: [UInt: Int] = [:]
        init(delay: useconds_t) { self.delay = delay }
        func decide(_ request: BootRequest) -> BootDecision? {
            usleep(delay)
            lock.withLock { threads[UInt(pthread_self()), default: 0] += 1 }
            return StaticBootDecider().decide(request)
        }
        var decisionsByThread: [Int] { lock.withLock { Array(threads.values).sorted() } }
    }

    /// A burst that outruns one thread: 600 DISCOVERs from distinct clients, sent at once to a
    /// server whose decisions take 300 µs. The first thread finds a backlog, takes it in
    /// batches and wakes a helper; every client gets exactly its own OFFER, and more than one
    /// thread decided. With one thread per socket the same burst is answered by one thread.
    @Test(arguments: [1, 3]) func aBurstIsAnsweredInBatchesAndShared(threads: Int) async throws {
        let decider = SlowDecider(delay: 300)
        let server = ProxyDHCPServer(
            configuration: .init(bindAddress: "127.0.0.1", ports: [0], threadsPerSocket: threads),
            decider: decider, logger: Self.quiet)
        try await server.start()
        let base = try #require(server.listening.first?.port)
        let client = try UDPProbe(bind: "127.0.0.1", port: 0)
        let total = 600
        func mac(_ n: Int) -> [UInt8] { [0x52, 0x54, 0x00, 0x77, UInt8(n >> 8), UInt8(n & 0xFF)] }
        for n in 0..<total {
            var discover = Build.discover(arch: 0, xid: 0xB000_0000 + UInt32(n))
            discover.chaddr = mac(n) + [UInt8](repeating: 0, count: 10)
            client.send(discover.bytes, to: .loopback, port: base)
        }
        // Bounded: 600 × 300 µs is 0.18 s of decisions on one thread.
        let replies = client.receive(timeout: 20, limit: total).compactMap { try? DHCPMessage(bytes: $0.bytes) }
        await server.shutdown()

        #expect(replies.count == total)
        #expect(Set(replies.map(\.xid)).count == total, "each client answered once")
        let mismatched = replies.filter { Array($0.chaddr.prefix(6)) != mac(Int($0.xid - 0xB000_0000)) }
        #expect(mismatched.isEmpty, "a reply carries the client of its own request")
        #expect(replies.allSatisfy { $0.messageType == .offer && $0.bootFile == "undionly.kpxe" })
        let stats = server.statistics
        #expect(stats.answered == total && stats.received == total)
        #expect(stats.backlogged > total / 2, "most of the burst was read in batches: \(stats.backlogged)")
        let byThread = decider.decisionsByThread
        if threads == 1 {
            #expect(byThread.count == 1 && stats.helperWakeups == 0)
        } else {
            #expect(byThread.count >= 2, "helpers took part: \(byThread)")
            #expect(stats.helperWakeups >= 1)
        }
    }

    /// A datagram longer than a receive slot arrives cut: it is dropped and counted as
    /// malformed, not answered from its first 9 KB. The next one is answered.
    @Test func anOversizedDatagramIsDroppedAndCounted() async throws {
        let (server, port67, _) = try await Self.startLoopbackServer()
        let client = try UDPProbe(bind: "127.0.0.1", port: 0)
        // A valid DISCOVER, then padding past the slot: parsed whole it would be answered.
        let padded = Build.discover(arch: 0, xid: 0xB16).bytes + [UInt8](repeating: 0, count: ProxyDHCPServer.ReceiveThread.slotSize)
        client.send(padded, to: .loopback, port: port67)
        client.send(Build.discover(arch: 0, xid: 0x5A11).bytes, to: .loopback, port: port67)
        let replies = client.receive(timeout: 1, limit: 2).compactMap { try? DHCPMessage(bytes: $0.bytes) }
        let stats = server.statistics
        await server.shutdown()
        #expect(replies.map(\.xid) == [0x5A11])
        #expect(stats.received == 2 && stats.malformed == 1 && stats.answered == 1)
    }

    /// A reply too long for the client is never sent, and counted as such, not as an answer.
    @Test func aReplyTooLargeIsNotSentAndNotCountedAsAnswered() async throws {
        let (server, port67, _) = try await Self.startLoopbackServer()
        let client = try UDPProbe(bind: "127.0.0.1", port: 0)
        var relayed = Build.discover(arch: 0, xid: 0xB16)
        relayed.giaddr = IPv4Address(10, 9, 8, 1)
        relayed.options.set(82, Array(repeating: 1, count: 8_000))
        client.send(relayed.bytes, to: .loopback, port: port67)
        client.send(Build.discover(arch: 0, xid: 0x5A11).bytes, to: .loopback, port: port67)
        let replies = client.receive(timeout: 1, limit: 2).compactMap { try? DHCPMessage(bytes: $0.bytes) }
        let stats = server.statistics
        await server.shutdown()
        #expect(replies.map(\.xid) == [0x5A11])
        #expect(stats.received == 2 && stats.answered == 1 && stats.silenced[.replyTooLarge] == 1, "\(stats)")
        #expect(stats.accountedFor == stats.received)
    }

    /// 10,000 random and mutated packets: the server keeps answering, and every packet is
    /// accounted for as answered, malformed or silenced.
    @Test func survivesFuzzing() async throws {
        let (server, port67, port4011) = try await Self.startLoopbackServer()
        let client = try UDPProbe(bind: "127.0.0.1", port: 0)
        let seeds = try Captures.allPayloads() + [Build.discover().bytes, Build.discover(arch: 7).bytes]
        var rng = SystemRandomNumberGenerator()
        let total = 10_000
        for n in 0..<total {
            var bytes: [UInt8]
            switch n % 3 {
            case 0: bytes = (0..<Int.random(in: 0...600, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            case 1:
                bytes = seeds[Int.random(in: 0..<seeds.count, using: &rng)]
                for _ in 0..<Int.random(in: 1...8, using: &rng) where !bytes.isEmpty {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            default:
                bytes = seeds[Int.random(in: 0..<seeds.count, using: &rng)]
                bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &rng)))
            }
            client.send(bytes, to: .loopback, port: n % 2 == 0 ? port67 : port4011)
            if n % 100 == 99 {
                // Pace the sender so the kernel never drops a datagram: wait (bounded) until
                // the server has read what we sent, and drain the replies.
                let deadline = Date().addingTimeInterval(2)
                while server.statistics.received < n + 1 && Date() < deadline { try await Task.sleep(nanoseconds: 2_000_000) }
                _ = client.receive(timeout: 0.001, limit: 200)
                if server.statistics.received < n + 1 {
                    Issue.record("server stopped reading after \(server.statistics.received) of \(n + 1) packets")
                    break
                }
            }
        }
        let stats = server.statistics
        #expect(stats.received == total)
        #expect(stats.accountedFor == stats.received)
        #expect(stats.malformed > 1000)
        #expect(stats.silenced.values.reduce(0, +) > 0)
        // Still alive.
        _ = client.receive(timeout: 0.2, limit: 10_000)
        client.send(Build.discover(arch: 0, xid: 0xCAFE).bytes, to: .loopback, port: port67)
        let alive = client.receive(timeout: 3, limit: 50).compactMap { try? DHCPMessage(bytes: $0.bytes) }
        #expect(alive.contains { $0.xid == 0xCAFE && $0.messageType == .offer })
        print("fuzz: \(stats)")
        await server.shutdown()
    }

    /// `run()` (the swift-service-lifecycle entry point) serves until cancelled, then closes
    /// its sockets.
    @Test func runServesUntilCancelledAndReleasesPorts() async throws {
        let running = ServerRunningSignal()
        let configuration = ProxyDHCPServer.Configuration(bindAddress: "127.0.0.1", ports: [0])
        let server = ProxyDHCPServer(configuration: configuration, decider: StaticBootDecider(), logger: Self.quiet,
                                     onServerRunning: running.callback)
        let task = Task { try await server.run() }
        let base = try #require(await running.wait()?.first?.port, "run() did not report bound")
        #expect(server.boundAddresses == ["127.0.0.1:\(base)"])
        let client = try UDPProbe(bind: "127.0.0.1", port: 0)
        client.send(Build.discover().bytes, to: .loopback, port: base)
        #expect(client.receive(timeout: 3, limit: 1).count == 1)
        task.cancel()
        try await task.value
        // Closed: nobody answers any more.
        client.send(Build.discover().bytes, to: .loopback, port: base)
        #expect(client.receive(timeout: 0.5, limit: 1).isEmpty)
    }
}
