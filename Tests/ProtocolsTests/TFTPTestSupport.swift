import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
@testable import Protocols

/// Shared pieces of the TFTP tests: a temp root with boot-sized files, a server on 127.0.0.1
/// with an ephemeral port, a bounded process runner, a NIO TFTP client and a lossy UDP relay.
enum TFTPTestSupport {
    static let sizes: [(name: String, size: Int)] = [
        ("zero.bin", 0), ("b511.bin", 511), ("b512.bin", 512), ("k70.bin", 70 * 1024),
        ("m10.bin", 10 * 1024 * 1024), ("m100.bin", 100 * 1024 * 1024),
    ]

    /// One shared root per test process (100 MB is written once).
    static let sharedRoot: String = {
        // Fixed and deterministic: reused across runs so 100 MB is written once per machine.
        let root = NSTemporaryDirectory() + "bp-tftp-testroot"
        try! FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        for (name, size) in sizes { writePseudoRandom(path: root + "/" + name, size: size, seed: UInt64(size) &+ 7) }
        try! "#!ipxe\necho hello\r\nchain http://x/y\n".write(toFile: root + "/text.ipxe", atomically: true, encoding: .utf8)
        try! FileManager.default.createDirectory(atPath: root + "/sub", withIntermediateDirectories: true)
        writePseudoRandom(path: root + "/sub/inner.bin", size: 1000, seed: 1)
        try? FileManager.default.createSymbolicLink(atPath: root + "/escape", withDestinationPath: "/etc/passwd")
        try? FileManager.default.createSymbolicLink(atPath: root + "/inside-link", withDestinationPath: root + "/b511.bin")
        _ = mkfifo(root + "/fifo", 0o644)
        _ = mknod(root + "/nulldev", S_IFCHR | 0o666, makedev(1, 3))
        return root
    }()

    static func makedev(_ major: UInt32, _ minor: UInt32) -> dev_t {
        dev_t((major & 0xfff) << 8 | (minor & 0xff))
    }

    static func writePseudoRandom(path: String, size: Int, seed: UInt64) {
        if let attrs = try? FileManager.default.attributesOfItem(atPath: path), (attrs[.size] as? Int) == size { return }
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let handle = FileHandle(forWritingAtPath: path)!
        defer { try? handle.close() }
        var state = seed | 1
        var remaining = size
        // Whole 64-bit words per step: byte-by-byte, the debug build took many seconds for the
        // 110 MB root, and every TFTP test waits on this initializer.
        var words = [UInt64](repeating: 0, count: 1 << 17)
        while remaining > 0 {
            for i in words.indices {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17
                words[i] = state.littleEndian
            }
            let n = min(remaining, words.count * 8)
            words.withUnsafeBytes { handle.write(Data(bytes: $0.baseAddress!, count: n)) }
            remaining -= n
        }
    }

    static func fnv(_ bytes: some Sequence<UInt8>, into hash: inout UInt64) {
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100000001b3 }
    }

    static func fnv(file path: String) -> UInt64 {
        var hash: UInt64 = 0xcbf29ce484222325
        let handle = FileHandle(forReadingAtPath: path)!
        defer { try? handle.close() }
        while let data = try? handle.read(upToCount: 1 << 20), !data.isEmpty { fnv(data, into: &hash) }
        return hash
    }

    static let quietLogger: Logger = {
        var logger = Logger(label: "bp.tftp.test")
        logger.logLevel = ProcessInfo.processInfo.environment["BP_TFTP_LOG"] == nil ? .critical : .trace
        return logger
    }()

    /// Runs a server on 127.0.0.1 with an ephemeral port for the duration of `body`.
    static func withServer<T>(
        root: String = sharedRoot, decider: any BootDecider = NoDecider(), events: any BootEventSink = NoEventSink(),
        macLookup: @escaping @Sendable (String) -> String? = { _ in nil }, metrics: (any MetricsFactory)? = nil,
        configure: (inout TFTPServer.Configuration) -> Void = { _ in },
        _ body: (TFTPServer, Int) async throws -> T
    ) async throws -> T {
        var configuration = TFTPServer.Configuration(root: root, host: "127.0.0.1", port: 0, defaultTimeout: .milliseconds(500))
        configure(&configuration)
        let running = ServerRunningSignal()
        let server = try TFTPServer(configuration: configuration, decider: decider, events: events, macLookup: macLookup, logger: quietLogger,
                                     metricsFactory: metrics, onServerRunning: running.callback)
        let task = Task { try await server.run() }
        guard let port = await running.wait()?.first?.port else {
            server.stop(); task.cancel(); throw TestFailure("server did not bind")
        }
        do {
            let result = try await body(server, port)
            server.stop()
            try await task.value
            return result
        } catch {
            server.stop()
            _ = try? await task.value
            throw error
        }
    }

    struct TestFailure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    struct ProcessResult {
        var status: Int32
        var output: String
        var timedOut: Bool
    }

    static func which(_ name: String) -> String? {
        for dir in ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"] where FileManager.default.isExecutableFile(atPath: dir + "/" + name) {
            return dir + "/" + name
        }
        return nil
    }

    /// Runs a program with a hard time limit; kills only that process (by its pid) on timeout.
    static func run(_ executable: String, _ arguments: [String], timeout: Duration = .seconds(120), poll: Duration = .milliseconds(20)) async throws -> ProcessResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let outputURL = URL(fileURLWithPath: NSTemporaryDirectory() + "bp-tftp-out-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: outputURL.path, contents: nil)
        let output = try FileHandle(forWritingTo: outputURL)
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var timedOut = false
        while process.isRunning {
            if clock.now > deadline { timedOut = true; kill(process.processIdentifier, SIGKILL); break }
            try await Task.sleep(for: poll)
        }
        process.waitUntilExit()
        try? output.close()
        let text = (try? String(contentsOf: outputURL, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(at: outputURL)
        return ProcessResult(status: process.terminationStatus, output: text, timedOut: timedOut)
    }
}

/// A TFTP client on NIO for the tests: lock-step or windowed (RFC 7440 receiver), options,
/// retransmits its last packet on a timeout, keeps or hashes what it receives and records
/// every packet the server sent.
final class TFTPTestClient {
    struct Result: Sendable {
        var bytes: [UInt8]
        var byteCount: Int
        var hash: UInt64
        var error: (code: UInt16, message: String)?
        var optionAck: [TFTPOption]?
        var lastPayloadLength: Int?
        var blocks: Int
        var serverPort: Int?
        var timedOut: Bool
        /// With `compareWith`: some byte differed from the expected content (or ran past it).
        var mismatch = false
    }

    static func get(
        port: Int, file: String, mode: TFTPMode = .octet, options: [TFTPOption] = [], keepBytes: Bool = true,
        timeout: TimeAmount = .milliseconds(300), retries: Int = 20, host: String = "127.0.0.1",
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, compareWith expected: [UInt8]? = nil
    ) async throws -> Result {
        let server = try SocketAddress(ipAddress: host, port: port)
        let request = TFTPPacket.readRequest(TFTPRequest(filename: file, mode: mode, options: options))
        let promise = group.next().makePromise(of: Result.self)
        let smallBlocks = (options.first { $0.name == "blksize" }.flatMap { Int($0.value) } ?? 512) <= 4096
        let channel = try await DatagramBootstrap(group: group)
            // A window arrives as a burst: with blocks up to 4 KB, read up to 16 datagrams per
            // recvmmsg(2) (NIO splits the receive buffer evenly between them).
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: smallBlocks ? 16 * 4100 : 65536))
            .channelOption(.datagramVectorReadMessageCount, value: smallBlocks ? 16 : 0)
            .channelOption(.socketOption(.so_rcvbuf), value: 4 << 20)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        Handler(server: server, request: request, keepBytes: keepBytes, timeout: timeout, retries: retries, promise: promise,
                                expected: expected))
                }
            }
            .bind(host: host, port: 0).get()
        channel.pipeline.fireUserInboundEventTriggered(Handler.Start())
        defer { channel.close(promise: nil) }
        return try await promise.futureResult.get()
    }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        typealias OutboundOut = AddressedEnvelope<ByteBuffer>
        struct Start {}

        let server: SocketAddress
        let request: TFTPPacket
        let keepBytes: Bool
        let timeout: TimeAmount
        let retries: Int
        let promise: EventLoopPromise<Result>
        var peer: SocketAddress?
        var blockSize = 512
        var windowSize = 1
        var expected: UInt16 = 1
        var inWindow = 0
        var gapAckedAt: UInt16?
        var result = Result(bytes: [], byteCount: 0, hash: 0xcbf29ce484222325, blocks: 0, timedOut: false)
        var last: TFTPPacket
        var timer: Scheduled<Void>?
        var tries = 0
        var done = false
        /// Benchmarks: compare every byte with this (memcmp) instead of hashing it byte by byte,
        /// so the load generator costs far less CPU than the servers it measures.
        let expectedContent: [UInt8]?

        init(server: SocketAddress, request: TFTPPacket, keepBytes: Bool, timeout: TimeAmount, retries: Int, promise: EventLoopPromise<Result>,
             expected: [UInt8]? = nil) {
            self.expectedContent = expected
            self.server = server
            self.request = request
            self.keepBytes = keepBytes
            self.timeout = timeout
            self.retries = retries
            self.promise = promise
            self.last = request
            if case .readRequest(let r) = request {
                for o in r.options {
                    if o.name == "blksize" { blockSize = Int(o.value) ?? 512 }
                }
            }
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            guard event is Start else { return }
            send(request, to: server, context: context)
        }

        func send(_ packet: TFTPPacket, to address: SocketAddress, context: ChannelHandlerContext) {
            last = packet
            var buffer = context.channel.allocator.buffer(capacity: 600)
            packet.encode(into: &buffer)
            context.writeAndFlush(wrapOutboundOut(AddressedEnvelope(remoteAddress: address, data: buffer)), promise: nil)
            rearm(context: context)
        }

        var deadline = NIODeadline.now()

        /// Moves the deadline; a timer is scheduled only when none is pending (cheap per packet).
        func rearm(context: ChannelHandlerContext) {
            deadline = .now() + timeout
            guard timer == nil else { return }
            schedule(context: context)
        }

        func schedule(context: ChannelHandlerContext) {
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            let ctx = NIOLoopBound(context, eventLoop: context.eventLoop)
            timer = context.eventLoop.scheduleTask(deadline: deadline) { bound.value.fired(context: ctx.value) }
        }

        func fired(context: ChannelHandlerContext) {
            timer = nil
            guard !done else { return }
            if NIODeadline.now() < deadline { return schedule(context: context) }
            tries += 1
            if tries > retries { result.timedOut = true; finish(); return }
            send(last, to: peer ?? server, context: context)
        }

        func finish() {
            guard !done else { return }
            done = true
            timer?.cancel()
            promise.succeed(result)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !done else { return }
            let envelope = unwrapInboundIn(data)
            if let peer, envelope.remoteAddress != peer { return }
            guard let packet = try? TFTPPacket(decoding: envelope.data) else { return }
            if peer == nil { peer = envelope.remoteAddress; result.serverPort = envelope.remoteAddress.port }
            tries = 0
            switch packet {
            case .error(let code, let message):
                result.error = (code.rawValue, message)
                finish()
            case .optionAck(let options):
                guard result.optionAck == nil else { return send(.ack(block: 0), to: envelope.remoteAddress, context: context) }
                result.optionAck = options
                for o in options {
                    if o.name == "blksize" { blockSize = Int(o.value)! }
                    if o.name == "windowsize" { windowSize = Int(o.value)! }
                }
                send(.ack(block: 0), to: envelope.remoteAddress, context: context)
            case .data(let block, let payload):
                if block == expected {
                    result.blocks += 1
                    result.byteCount += payload.readableBytes
                    if let expected = expectedContent {
                        let offset = result.byteCount - payload.readableBytes
                        if offset + payload.readableBytes > expected.count {
                            result.mismatch = true
                        } else {
                            payload.withUnsafeReadableBytes { got in
                                expected.withUnsafeBytes { want in
                                    if got.count > 0, memcmp(got.baseAddress!, want.baseAddress! + offset, got.count) != 0 { result.mismatch = true }
                                }
                            }
                        }
                    } else {
                        payload.withUnsafeReadableBytes { TFTPTestSupport.fnv($0, into: &result.hash) }
                    }
                    if keepBytes { result.bytes.append(contentsOf: payload.readableBytesView) }
                    expected &+= 1
                    inWindow += 1
                    let final = payload.readableBytes < blockSize
                    if final || inWindow >= windowSize {
                        inWindow = 0
                        send(.ack(block: block), to: envelope.remoteAddress, context: context)
                    } else {
                        rearm(context: context)
                    }
                    if final { result.lastPayloadLength = payload.readableBytes; finish() }
                } else if windowSize == 1 {
                    // Lock-step: a repeated block means our ACK was lost.
                    if block == expected &- 1 { send(.ack(block: block), to: envelope.remoteAddress, context: context) }
                } else if gapAckedAt != expected {
                    // RFC 7440: a gap; acknowledge the last block in order, once per gap.
                    gapAckedAt = expected
                    inWindow = 0
                    send(.ack(block: expected &- 1), to: envelope.remoteAddress, context: context)
                }
            default:
                return
            }
        }
    }
}
