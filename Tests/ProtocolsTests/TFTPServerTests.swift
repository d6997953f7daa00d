import Foundation
import Metrics
import ServiceLifecycle
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
import TestSupport
@testable import Protocols

/// The server over real sockets on 127.0.0.1 with the test client: errors, options, windows,
/// duplicate ACKs, rollover, policy hooks. Real third-party clients are in TFTPClientsTests.
@Suite struct TFTPServerTests {
    typealias Support = TFTPTestSupport
    let root = TFTPTestSupport.sharedRoot

    func o(_ name: String, _ value: String) -> TFTPOption { TFTPOption(name: name, value: value) }

    func expectServes(_ port: Int, _ file: String = "b511.bin") async throws {
        let result = try await TFTPTestClient.get(port: port, file: file)
        #expect(result.error == nil)
        #expect(result.hash == Support.fnv(file: root + "/" + file))
    }

    @Test func plainTransferWithoutOptions() async throws {
        try await Support.withServer { server, port in
            let result = try await TFTPTestClient.get(port: port, file: "k70.bin")
            #expect(result.optionAck == nil)
            #expect(result.byteCount == 70 * 1024)
            #expect(result.hash == Support.fnv(file: root + "/k70.bin"))
            #expect(result.serverPort != port, "transfer runs on its own TID")
        }
    }

    @Test(arguments: [("zero.bin", 1, 0), ("b512.bin", 2, 0), ("b511.bin", 1, 511), ("k70.bin", 141, 0)])
    func lastBlockIsShortOrEmpty(file: String, blocks: Int, lastLength: Int) async throws {
        try await Support.withServer { _, port in
            let result = try await TFTPTestClient.get(port: port, file: file)
            #expect(result.blocks == blocks)
            #expect(result.lastPayloadLength == lastLength)
        }
    }

    @Test func negotiatesOptions() async throws {
        try await Support.withServer { _, port in
            let result = try await TFTPTestClient.get(port: port, file: "m10.bin", options: [
                o("blksize", "1468"), o("tsize", "0"), o("timeout", "2"), o("windowsize", "8"), o("multicast", ""),
            ], keepBytes: false)
            #expect(result.optionAck == [o("blksize", "1468"), o("tsize", "10485760"), o("timeout", "2"), o("windowsize", "8")])
            #expect(result.hash == Support.fnv(file: root + "/m10.bin"))
            let big = try await TFTPTestClient.get(port: port, file: "k70.bin", options: [o("blksize", "100000")])
            #expect(big.optionAck == [o("blksize", "65464")])
            #expect(big.bytes.count == 70 * 1024)
        }
    }

    /// The benchmark client's memcmp check (instead of a hash) catches a wrong byte.
    @Test func clientComparisonSeesEveryByte() async throws {
        let content = try [UInt8](Data(contentsOf: URL(fileURLWithPath: root + "/k70.bin")))
        var altered = content
        altered[70 * 1024 - 1] ^= 1
        try await Support.withServer { _, port in
            let options = [o("blksize", "1468"), o("windowsize", "8")]
            let same = try await TFTPTestClient.get(port: port, file: "k70.bin", options: options, keepBytes: false, compareWith: content)
            #expect(!same.mismatch && same.byteCount == content.count)
            let differs = try await TFTPTestClient.get(port: port, file: "k70.bin", options: options, keepBytes: false, compareWith: altered)
            #expect(differs.mismatch)
            let shorter = try await TFTPTestClient.get(port: port, file: "k70.bin", keepBytes: false, compareWith: Array(content.prefix(1000)))
            #expect(shorter.mismatch)
        }
    }

    /// The benchmark's epoll load client: many downloads at once, lock-step and windowed, and it
    /// counts a download whose bytes differ or run short as failed.
    @Test func loadClientDownloadsAndChecksEveryByte() async throws {
        let content = try [UInt8](Data(contentsOf: URL(fileURLWithPath: root + "/k70.bin")))
        var altered = content
        altered[70 * 1024 - 1] ^= 1
        try await Support.withServer { _, port in
            for windowSize in [nil, 8] {
                let good = await TFTPLoadClient.run(port: port, file: "k70.bin", count: 50, blockSize: 1468, windowSize: windowSize,
                                                    expected: content, timeout: 1, retries: 5)
                #expect(good.failed == 0, "\(good.reasons)")
                let bad = await TFTPLoadClient.run(port: port, file: "k70.bin", count: 3, blockSize: 1468, windowSize: windowSize,
                                                   expected: altered, timeout: 1, retries: 5)
                #expect(bad.failed == 3 && bad.reasons.allSatisfy { $0.contains("differ") }, "\(bad.reasons)")
                let longer = await TFTPLoadClient.run(port: port, file: "k70.bin", count: 2, blockSize: 1468, windowSize: windowSize,
                                                      expected: content + [0], timeout: 1, retries: 5)
                #expect(longer.failed == 2, "\(longer.reasons)")
            }
            let missing = await TFTPLoadClient.run(port: port, file: "nope.bin", count: 2, blockSize: 512, windowSize: nil,
                                                   expected: content, timeout: 1, retries: 2)
            #expect(missing.failed == 2 && missing.reasons.allSatisfy { $0.hasPrefix("ERROR 1") }, "\(missing.reasons)")
        }
    }

    @Test func unknownOptionsOnlyMeanNoOACK() async throws {
        try await Support.withServer { _, port in
            let result = try await TFTPTestClient.get(port: port, file: "b511.bin", options: [o("rollover", "0")])
            #expect(result.optionAck == nil)
            #expect(result.byteCount == 511)
        }
    }

    @Test func netasciiConvertsAndAnnouncesConvertedSize() async throws {
        try await Support.withServer { _, port in
            let result = try await TFTPTestClient.get(port: port, file: "text.ipxe", mode: .netascii, options: [o("tsize", "0")])
            let expected = Array("#!ipxe\r\necho hello\r\0\r\nchain http://x/y\r\n".utf8)
            #expect(result.bytes == expected)
            #expect(result.optionAck == [o("tsize", String(expected.count))])
        }
    }

    @Test func blockNumbersRollOver() async throws {
        // 10 MiB in 128-byte blocks is 81,921 blocks: the block number wraps past 65535.
        try await Support.withServer { _, port in
            let result = try await TFTPTestClient.get(port: port, file: "m10.bin", options: [o("blksize", "128"), o("windowsize", "64")],
                                                      keepBytes: false)
            #expect(result.blocks == 10 * 1024 * 1024 / 128 + 1)
            #expect(result.hash == Support.fnv(file: root + "/m10.bin"))
        }
    }

    @Test(arguments: [
        ("../etc/passwd", UInt16(2)), ("/../../etc/passwd", 2), ("/etc/passwd", 1), ("escape", 2), ("sub", 2), ("fifo", 2),
        ("missing.bin", 1),
    ])
    func refusesWithTheRightError(file: String, code: UInt16) async throws {
        try await refuses(file, with: code)
    }

    /// A device node in the root (made by mknod, which needs root) is refused too.
    @Test(.requires(.root(for: "mknod of the test root's device node")))
    func refusesADeviceNode() async throws {
        try #require(FileManager.default.fileExists(atPath: root + "/nulldev"), "mknod \(root)/nulldev failed as root")
        try await refuses("nulldev", with: 2)
    }

    func refuses(_ file: String, with code: UInt16) async throws {
        try await Support.withServer { _, port in
            let result = try await TFTPTestClient.get(port: port, file: file)
            #expect(result.error?.code == code, "\(file)")
            #expect(result.bytes.isEmpty)
            try await expectServes(port)
        }
    }

    @Test(arguments: [[("blksize", "4")], [("blksize", "lots")], [("timeout", "0")], [("timeout", "300")], [("windowsize", "0")],
                      [("tsize", "-")]])
    func refusesNonsenseOptionsWithError8(_ options: [(String, String)]) async throws {
        try await Support.withServer { _, port in
            let result = try await TFTPTestClient.get(port: port, file: "b511.bin", options: options.map { o($0.0, $0.1) })
            #expect(result.error?.code == 8)
            try await expectServes(port)
        }
    }

    @Test func refusesWritesAndOddModes() async throws {
        try await Support.withServer { _, port in
            let reply = try await RawExchange.send([0, 2] + Array("up.bin\0octet\0".utf8), to: port)
            #expect(reply.first.map(errorCode) == 2)
            let mail = try await RawExchange.send([0, 1] + Array("b511.bin\0mail\0".utf8), to: port)
            #expect(mail.first.map(errorCode) == 4)
            let odd = try await RawExchange.send([0, 1] + Array("b511.bin\0binary\0".utf8), to: port)
            #expect(odd.first.map(errorCode) == 4)
            try await expectServes(port)
        }
    }

    @Test func garbageGetsSilenceAndTheServerKeepsServing() async throws {
        try await Support.withServer { _, port in
            for garbage: [UInt8] in [[], [0], [0, 9, 1], [0, 1, 0x61], [0, 4, 0, 1], [0, 3, 0, 1, 1], [0xff, 0xff], Array(repeating: 0x41, count: 1400)] {
                let reply = try await RawExchange.send(garbage, to: port, silence: .milliseconds(100))
                #expect(reply.isEmpty, "\(garbage.prefix(4))")
            }
            try await expectServes(port)
        }
    }

    @Test func clientRejectingTheOACKEndsCleanly() async throws {
        let events = RecordingSink()
        // The ERROR must reach the transfer before it gives up on its OACK. With the suite's
        // 500 ms timeout that window is ~3 s, and once on a loaded CI machine the client's
        // event loop took longer to read the OACK: the transfer ended in "timeout" first.
        try await Support.withServer(events: events, configure: { $0.defaultTimeout = .seconds(5) }) { server, port in
            let exchange = try await RawExchange.open(to: port)
            defer { exchange.close() }
            try await exchange.send([0, 1] + Array("b511.bin\0octet\0blksize\01024\0".utf8))
            let oack = try #require(await exchange.receive())
            #expect(oack.bytes.prefix(2) == [0, 6])
            try await exchange.send([0, 5, 0, 8] + Array("no thanks\0".utf8), to: oack.port)
            try await waitUntil { server.activeTransfers == 0 }
            #expect(events.events.last?.fields["outcome"] == "option_refused")
            try await expectServes(port)
        }
    }

    @Test func duplicateAckNeverResendsInLockStep() async throws {
        try await Support.withServer(configure: { $0.defaultTimeout = .seconds(15) }) { _, port in
            let exchange = try await RawExchange.open(to: port)
            defer { exchange.close() }
            try await exchange.send([0, 1] + Array("k70.bin\0octet\0".utf8))
            let first = try #require(await exchange.receive())
            #expect(first.bytes.prefix(4) == [0, 3, 0, 1])
            try await exchange.send([0, 4, 0, 1], to: first.port)
            try await exchange.send([0, 4, 0, 1], to: first.port)
            try await exchange.send([0, 4, 0, 1], to: first.port)
            let second = try #require(await exchange.receive())
            #expect(second.bytes.prefix(4) == [0, 3, 0, 2])
            // Well inside the retransmission timeout: no second copy of block 2.
            #expect(await exchange.receive(wait: .milliseconds(400)) == nil)
        }
    }

    @Test func staleAckRestartsTheWindow() async throws {
        // A long retransmission timeout: on a loaded machine a 2 s timer can fire between two
        // steps of this test and resend the OACK or a window, which is not what it is about.
        try await Support.withServer(configure: { $0.defaultTimeout = .seconds(15) }) { _, port in
            let exchange = try await RawExchange.open(to: port)
            defer { exchange.close() }
            try await exchange.send([0, 1] + Array("k70.bin\0octet\0windowsize\04\0".utf8))
            let oack = try #require(await exchange.receive())
            try await exchange.send([0, 4, 0, 0], to: oack.port)
            var blocks: [UInt8] = []
            for _ in 0..<4 { blocks.append(try #require(await exchange.receive()).bytes[3]) }
            #expect(blocks == [1, 2, 3, 4])
            // Blocks 3 and 4 "lost": ACK 2 restarts at 3.
            try await exchange.send([0, 4, 0, 2], to: oack.port)
            blocks = []
            for _ in 0..<4 { blocks.append(try #require(await exchange.receive()).bytes[3]) }
            #expect(blocks == [3, 4, 5, 6])
            // The same ACK again is stale (base is 3 now): it restarts the window once more...
            try await exchange.send([0, 4, 0, 2], to: oack.port)
            blocks = []
            for _ in 0..<4 { blocks.append(try #require(await exchange.receive()).bytes[3]) }
            #expect(blocks == [3, 4, 5, 6])
            // ...but repeats of it do not, so duplicated ACKs cannot multiply the traffic.
            try await exchange.send([0, 4, 0, 2], to: oack.port)
            try await exchange.send([0, 4, 0, 2], to: oack.port)
            #expect(await exchange.receive(wait: .milliseconds(400)) == nil)
        }
    }

    @Test func retransmitsOnTimeoutThenGivesUp() async throws {
        let events = RecordingSink()
        try await Support.withServer(events: events, configure: { $0.defaultTimeout = .milliseconds(100); $0.maxRetries = 2 }) { server, port in
            let exchange = try await RawExchange.open(to: port)
            defer { exchange.close() }
            try await exchange.send([0, 1] + Array("k70.bin\0octet\0".utf8))
            var copies = 0
            // A generous gap: the 100 ms timers run on an event-loop group that other tests'
            // 100 MB transfers keep busy; after the last retry nothing more may come at all.
            while let packet = await exchange.receive(wait: .seconds(3)) {
                #expect(packet.bytes.prefix(4) == [0, 3, 0, 1])
                copies += 1
            }
            #expect(copies == 3)
            try await waitUntil { server.activeTransfers == 0 }
            #expect(events.events.last?.fields["outcome"] == "timeout")
        }
    }

    /// Holds one transfer open (its RRQ answered, never ACKed), then asks for another from the
    /// same address. The stalled transfer must outlive the rest of the test even if this task
    /// resumes late, or the second request finds a free slot: a long timeout; stop() ends it.
    func secondWhileOneStalls(
        _ configure: (inout TFTPServer.Configuration) -> Void
    ) async throws -> (second: TFTPTestClient.Result, active: Int) {
        try await Support.withServer(configure: { configure(&$0); $0.defaultTimeout = .seconds(30) }) { server, port in
            let stalled = try await RawExchange.open(to: port)
            defer { stalled.close() }
            try await stalled.send([0, 1] + Array("k70.bin\0octet\0".utf8))
            _ = try #require(await stalled.receive())
            let second = try await TFTPTestClient.get(port: port, file: "b511.bin")
            let active = server.activeTransfers
            server.stop()
            return (second, active)
        }
    }

    @Test func busyBeyondMaxConcurrentTransfers() async throws {
        let (second, _) = try await secondWhileOneStalls { $0.maxConcurrentTransfers = 1 }
        #expect(second.error?.code == 0)
        #expect(second.error?.message.contains("busy") == true)
    }

    /// One address cannot take every slot with RRQs it never ACKs (issue 19, item 7): past its
    /// share it is told busy, while the server still has room for other clients.
    @Test func oneAddressGetsAShareOfTheSlots() async throws {
        let (second, active) = try await secondWhileOneStalls { $0.maxConcurrentTransfers = 10; $0.maxTransfersPerClient = 1 }
        #expect(second.error?.code == 0)
        #expect(second.error?.message.contains("1 transfers from 127.0.0.1 already") == true, "\(String(describing: second.error))")
        #expect(active == 1, "only the stalled transfer holds a slot")
    }

    @Test func deciderServesGeneratedRemappedAndRefused() async throws {
        let events = RecordingSink()
        let decider = ScriptedDecider()
        try await Support.withServer(decider: decider, events: events, macLookup: { ip in ip == "127.0.0.1" ? "52:54:00:12:34:56" : nil }) { _, port in
            let generated = try await TFTPTestClient.get(port: port, file: "/bootstrap.ipxe", options: [o("tsize", "0")])
            #expect(String(decoding: generated.bytes, as: UTF8.self) == "#!ipxe\nchain http://boot/52:54:00:12:34:56\n")
            #expect(generated.optionAck == [o("tsize", String(generated.bytes.count))])
            let remapped = try await TFTPTestClient.get(port: port, file: "kernel")
            #expect(remapped.hash == Support.fnv(file: root + "/k70.bin"))
            let refused = try await TFTPTestClient.get(port: port, file: "secret.bin")
            #expect(refused.error?.code == 2)
            #expect(refused.error?.message == "not for you")
            let escape = try await TFTPTestClient.get(port: port, file: "sneaky")
            #expect(escape.error?.code == 2, "a remapped path is confined too")
        }
        let request = try #require(decider.requests.first)
        #expect(request.kind == .tftp)
        #expect(request.mac == "52:54:00:12:34:56")
        #expect(request.clientAddress == "127.0.0.1")
        #expect(request.path == "/bootstrap.ipxe")
        try await waitUntil { events.events.count >= 4 }
        let outcomes = events.events.map { $0.fields["outcome"] ?? "" }
        #expect(outcomes.sorted() == ["access_violation", "ok", "ok", "refused"])
        #expect(events.events.allSatisfy { $0.stage == .tftp && $0.mac == "52:54:00:12:34:56" })
        #expect(events.events.contains { $0.fields["file"] == "kernel -> k70.bin" && $0.fields["bytes"] == "71680" })
    }

    func errorCode(_ packet: RawExchange.Packet) -> UInt16? {
        guard packet.bytes.count >= 4, packet.bytes[1] == 5 else { return nil }
        return UInt16(packet.bytes[2]) << 8 | UInt16(packet.bytes[3])
    }
}

/// Polls for up to 10 s: long enough for a loaded CI machine, bounded so a failure still ends.
func waitUntil(_ condition: () -> Bool) async throws {
    for _ in 0..<1000 where !condition() { try await Task.sleep(for: .milliseconds(10)) }
    #expect(condition())
}

final class RecordingSink: BootEventSink {
    private let box = NIOLockedValueBox<[BootEvent]>([])
    func record(_ event: BootEvent) { box.withLockedValue { $0.append(event) } }
    var events: [BootEvent] { box.withLockedValue { $0 } }
}

final class ScriptedDecider: BootDecider {
    private let box = NIOLockedValueBox<[BootRequest]>([])
    var requests: [BootRequest] { box.withLockedValue { $0 } }
    func decide(_ request: BootRequest) -> BootDecision? {
        box.withLockedValue { $0.append(request) }
        switch request.path {
        case "/bootstrap.ipxe": return BootDecision(content: Array("#!ipxe\nchain http://boot/\(request.mac)\n".utf8), policy: "gen")
        case "kernel": return BootDecision(path: "k70.bin", policy: "remap")
        case "secret.bin": return BootDecision(refuse: "not for you", policy: "deny")
        case "sneaky": return BootDecision(path: "../../etc/passwd")
        default: return nil
        }
    }
}

/// Hand-made datagrams for the cases a well-behaved client never produces.
final class RawExchange: @unchecked Sendable {
    struct Packet: Equatable { var bytes: [UInt8]; var port: Int }
    let channel: Channel
    let serverPort: Int
    let inbox: NIOLockedValueBox<[Packet]>

    private init(channel: Channel, serverPort: Int, inbox: NIOLockedValueBox<[Packet]>) {
        self.channel = channel
        self.serverPort = serverPort
        self.inbox = inbox
    }

    static func open(to port: Int) async throws -> RawExchange {
        let inbox = NIOLockedValueBox<[Packet]>([])
        let channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Collector(inbox: inbox)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return RawExchange(channel: channel, serverPort: port, inbox: inbox)
    }

    /// Sends one datagram and collects what comes back. A reply is expected unless `silence`
    /// is given: then the first wait is that short one too, since nothing should arrive.
    static func send(_ bytes: [UInt8], to port: Int, silence: TimeAmount? = nil) async throws -> [Packet] {
        let exchange = try await open(to: port)
        defer { exchange.close() }
        try await exchange.send(bytes)
        var packets: [Packet] = []
        guard let first = await exchange.receive(wait: silence ?? .seconds(10)) else { return [] }
        packets.append(first)
        while let packet = await exchange.receive(wait: silence ?? .milliseconds(300)) { packets.append(packet) }
        return packets
    }

    func send(_ bytes: [UInt8], to port: Int? = nil) async throws {
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: port ?? serverPort)
        try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: ByteBuffer(bytes: bytes)))
    }

    /// Waits for the next datagram. The default is long because it only runs out when a test is
    /// already failing; on a loaded 2-core CI machine 2 s was once not enough for a first reply.
    /// The inbox is looked at once more after the deadline: when the test's task resumes late
    /// (a busy machine), what arrived meanwhile still counts.
    func receive(wait: TimeAmount = .seconds(10)) async -> Packet? {
        let deadline = NIODeadline.now() + wait
        while true {
            let packet = inbox.withLockedValue { $0.isEmpty ? nil : $0.removeFirst() }
            if let packet { return packet }
            if NIODeadline.now() >= deadline { return nil }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    func close() { channel.close(promise: nil) }

    final class Collector: ChannelInboundHandler {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let inbox: NIOLockedValueBox<[Packet]>
        init(inbox: NIOLockedValueBox<[Packet]>) { self.inbox = inbox }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = unwrapInboundIn(data)
            inbox.withLockedValue { $0.append(Packet(bytes: Array(envelope.data.readableBytesView), port: envelope.remoteAddress.port ?? 0)) }
        }
    }
}

/// Counts what the server reports, by label and dimensions ("label{k=v}").
final class RecordingMetrics: MetricsFactory, @unchecked Sendable {
    final class Handler: CounterHandler, FloatingPointCounterHandler, RecorderHandler, TimerHandler, MeterHandler, @unchecked Sendable {
        let box = NIOLockedValueBox<Int64>(0)
        func increment(by amount: Int64) { box.withLockedValue { $0 += amount } }
        func increment(by amount: Double) { box.withLockedValue { $0 += Int64(amount) } }
        func reset() { box.withLockedValue { $0 = 0 } }
        func record(_ value: Int64) {}
        func record(_ value: Double) {}
        func recordNanoseconds(_ duration: Int64) {}
        func set(_ value: Int64) {}
        func set(_ value: Double) {}
        func decrement(by: Double) {}
    }
    private let handlers = NIOLockedValueBox<[String: Handler]>([:])

    private func handler(_ label: String, _ dimensions: [(String, String)]) -> Handler {
        let key = label + (dimensions.isEmpty ? "" : "{" + dimensions.map { "\($0.0)=\($0.1)" }.joined(separator: ",") + "}")
        return handlers.withLockedValue { all in
            if let existing = all[key] { return existing }
            let created = Handler()
            all[key] = created
            return created
        }
    }

    func value(_ key: String) -> Int64 { handlers.withLockedValue { $0[key]?.box.withLockedValue { $0 } ?? 0 } }

    func makeCounter(label: String, dimensions: [(String, String)]) -> CounterHandler { handler(label, dimensions) }
    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> FloatingPointCounterHandler { handler(label, dimensions) }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> RecorderHandler { handler(label, dimensions) }
    func makeTimer(label: String, dimensions: [(String, String)]) -> TimerHandler { handler(label, dimensions) }
    func makeMeter(label: String, dimensions: [(String, String)]) -> MeterHandler { handler(label, dimensions) }
    func destroyCounter(_ handler: CounterHandler) {}
    func destroyFloatingPointCounter(_ handler: FloatingPointCounterHandler) {}
    func destroyRecorder(_ handler: RecorderHandler) {}
    func destroyTimer(_ handler: TimerHandler) {}
    func destroyMeter(_ handler: MeterHandler) {}
}

@Suite struct TFTPServerMetricsAndLifecycleTests {
    typealias Support = TFTPTestSupport

    @Test func countsTransfersBytesAndDrops() async throws {
        let metrics = RecordingMetrics()
        try await Support.withServer(metrics: metrics) { server, port in
            _ = try await TFTPTestClient.get(port: port, file: "k70.bin")
            _ = try await TFTPTestClient.get(port: port, file: "missing.bin")
            _ = try await RawExchange.send([0, 9, 1], to: port, silence: .milliseconds(50))
            _ = try await RawExchange.send([0, 1, 0x61], to: port, silence: .milliseconds(50))
            _ = try await RawExchange.send([0, 4, 0, 1], to: port, silence: .milliseconds(50))
            // Counted on the server's event loop: wait for the last of them, not a fixed time.
            try await waitUntil {
                server.activeTransfers == 0 && metrics.value("bootpolicy_tftp_transfers_total{outcome=ok}") == 1
                    && metrics.value("bootpolicy_tftp_dropped_total{reason=unexpected_opcode}") == 1
            }
        }
        #expect(metrics.value("bootpolicy_tftp_transfers_total{outcome=ok}") == 1)
        #expect(metrics.value("bootpolicy_tftp_transfers_total{outcome=not_found}") == 1)
        #expect(metrics.value("bootpolicy_tftp_bytes_total") == 70 * 1024)
        #expect(metrics.value("bootpolicy_tftp_dropped_total{reason=unknown_opcode}") == 1)
        #expect(metrics.value("bootpolicy_tftp_dropped_total{reason=unterminated}") == 1)
        #expect(metrics.value("bootpolicy_tftp_dropped_total{reason=unexpected_opcode}") == 1)
    }

    @Test func gracefulShutdownThroughAServiceGroup() async throws {
        let server = try TFTPServer(configuration: .init(root: Support.sharedRoot, host: "127.0.0.1", port: 0), logger: Support.quietLogger)
        let group = ServiceGroup(services: [server], logger: Support.quietLogger)
        let task = Task { try await group.run() }
        try await waitUntil { server.localAddress != nil }
        let port = try #require(server.localAddress?.port)
        #expect(try await TFTPTestClient.get(port: port, file: "b511.bin").byteCount == 511)
        await group.triggerGracefulShutdown()
        try await task.value
        #expect(server.localAddress == nil || server.activeTransfers == 0)
        let after = try await TFTPTestClient.get(port: port, file: "b511.bin", timeout: .milliseconds(100), retries: 2)
        #expect(after.timedOut || after.error != nil, "nothing answers after shutdown")
    }
}
