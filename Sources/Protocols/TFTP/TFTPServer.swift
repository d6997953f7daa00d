import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// A read-only TFTP server (RFC 1350 with the blksize, tsize, timeout and windowsize options of
/// RFC 2347, 2348, 2349 and 7440) as a swift-service-lifecycle `Service`.
///
/// Requests arrive on one UDP socket; every accepted read runs on its own connected ephemeral
/// socket. Before serving, each RRQ goes to the `BootDecider`: generated content, a remapped
/// path, a refusal, or nil for the file as asked. Writes are refused.
public final class TFTPServer: Service, Sendable {
    public struct Configuration: Sendable {
        /// Directory served; requests are confined to it (see `TFTPRoot`).
        public var root: String
        public var host: String
        public var port: Int
        /// Transfers beyond this get ERROR 0 "server busy".
        public var maxConcurrentTransfers: Int
        /// Transfers at once from one client address: RRQs that never ACK from one host must not
        /// take every slot (a PXE ROM or iPXE runs one transfer at a time). `serve` sets 8
        /// (`tftp.max_transfers_per_client`); unbounded here for load tests from one address.
        public var maxTransfersPerClient: Int
        /// Retransmission timeout when the client asks none (RFC 2349 timeout overrides it).
        public var defaultTimeout: TimeAmount
        /// Retransmissions of one window before the transfer is abandoned.
        public var maxRetries: Int
        /// Upper bound for blksize; further clamped to the receiving interface's MTU - 32.
        public var maxBlockSize: Int
        /// Upper bound for windowsize (RFC 7440).
        public var maxWindowSize: Int
        /// Threads that run transfers (see `TFTPTransferEngine`); requests are read on the
        /// event loop group.
        public var transferThreads: Int

        public init(
            root: String, host: String = "0.0.0.0", port: Int = 69, maxConcurrentTransfers: Int = 1024,
            maxTransfersPerClient: Int = .max,
            defaultTimeout: TimeAmount = .seconds(1), maxRetries: Int = 5, maxBlockSize: Int = 65464,
            maxWindowSize: Int = 64, transferThreads: Int = System.coreCount
        ) {
            self.root = root
            self.host = host
            self.port = port
            self.maxConcurrentTransfers = maxConcurrentTransfers
            self.maxTransfersPerClient = maxTransfersPerClient
            self.defaultTimeout = defaultTimeout
            self.maxRetries = maxRetries
            self.maxBlockSize = maxBlockSize
            self.maxWindowSize = maxWindowSize
            self.transferThreads = transferThreads
        }
    }

    public let configuration: Configuration
    static let listenerReceiveBuffer: SocketOptionValue = 4 << 20
    let root: TFTPRoot
    let decider: any BootDecider
    let events: any BootEventSink
    let macLookup: @Sendable (String) -> String?
    let logger: Logger
    let group: any EventLoopGroup
    let metrics: TFTPMetrics
    let engine: TFTPTransferEngine
    let onServerRunning: OnServerRunning?
    /// The listener's port once bound (the kernel's choice for a configured 0): what requests
    /// report as their server port.
    private let boundPort = Atomic<Int>(0)
    /// The bound port, or the configured one before `run` has bound.
    var servingPort: Int {
        let bound = boundPort.load(ordering: .relaxed)
        return bound != 0 ? bound : configuration.port
    }

    private struct State {
        var listener: Channel?
        var stopped = false
        /// A route refused a GSO write once: windows are sent packet by packet since.
        var segmentationRefused = false
        /// Client endpoints with a transfer admitted or running: a repeated RRQ from the same
        /// endpoint is a retransmission, not a new transfer.
        var active: Set<SocketAddress> = []
        /// Transfers admitted or running, by client IP address.
        var byAddress: [String: Int] = [:]

        mutating func admit(_ client: SocketAddress, ip: String) {
            active.insert(client)
            byAddress[ip, default: 0] += 1
        }

        mutating func release(_ client: SocketAddress, ip: String) {
            guard active.remove(client) != nil else { return }
            let left = byAddress[ip, default: 1] - 1
            byAddress[ip] = left > 0 ? left : nil
        }
    }
    private let state = NIOLockedValueBox(State())

    /// Throws if the root is not a directory. `metricsFactory` defaults to the bootstrapped
    /// `MetricsSystem.factory`.
    public init(
        configuration: Configuration, decider: any BootDecider = NoDecider(),
        events: any BootEventSink = NoEventSink(), macLookup: @escaping @Sendable (String) -> String? = { _ in nil },
        logger: Logger, eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        metricsFactory: (any MetricsFactory)? = nil, onServerRunning: OnServerRunning? = nil
    ) throws {
        self.onServerRunning = onServerRunning
        self.metrics = TFTPMetrics(factory: metricsFactory ?? MetricsSystem.factory)
        self.configuration = configuration
        self.root = try TFTPRoot(path: configuration.root)
        self.decider = decider
        self.events = events
        self.macLookup = macLookup
        self.logger = logger
        self.group = eventLoopGroup
        self.engine = TFTPTransferEngine(threads: configuration.transferThreads)
    }

    /// The bound address once `run()` has started listening (useful with port 0).
    public var localAddress: SocketAddress? {
        state.withLockedValue { $0.listener?.localAddress }
    }

    /// Transfers in flight.
    public var activeTransfers: Int {
        state.withLockedValue { $0.active.count }
    }

    public func run() async throws {
        do {
            try engine.start()
        } catch {
            await engine.stop()  // the workers that did start
            throw error
        }
        // No SO_REUSEADDR: UDP has no TIME_WAIT to skip, and with it Linux lets a second socket
        // bind the same port (two servers on 69 would split the requests silently; two port-0
        // listeners in one process could even be handed the same port).
        let bootstrap = DatagramBootstrap(group: group)
            .channelOption(.receivePacketInfo, value: true)
            // A rack powering on sends its RRQs within milliseconds; with the default 208 KB
            // buffer a burst of a thousand overflows and each dropped client waits out its
            // retransmission timeout. The kernel caps this at net.core.rmem_max.
            .channelOption(.socketOption(.so_rcvbuf), value: Self.listenerReceiveBuffer)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(TFTPListener(server: self))
                }
            }
        let channel: Channel
        do {
            channel = try await bootstrap.bind(host: configuration.host, port: configuration.port).get()
        } catch {
            await engine.stop()
            throw ListenerBindError(service: "tftp", host: configuration.host, port: configuration.port, error: error)
        }
        let alreadyStopped = state.withLockedValue { state -> Bool in
            state.listener = channel
            return state.stopped
        }
        if alreadyStopped { try? await channel.close() }
        let port = channel.localAddress?.port ?? configuration.port
        boundPort.store(port, ordering: .relaxed)
        logger.info("TFTP listening", metadata: [
            "address": "\(channel.localAddress.map { "\($0)" } ?? "?")", "root": "\(root.path)",
        ])
        if !alreadyStopped { onServerRunning?([ListeningAddress(host: configuration.host, port: port)]) }
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                try? await channel.closeFuture.get()
            } onCancel: {
                self.stop()
            }
        } onGracefulShutdown: {
            self.stop()
        }
        await engine.stop()
        logger.info("TFTP stopped")
    }

    /// Stops listening and ends every transfer.
    public func stop() {
        let listener = state.withLockedValue { state in
            state.stopped = true
            return state.listener
        }
        listener?.close(promise: nil)
        engine.requestStop()
    }

    // MARK: - Requests

    /// Handles one decoded request on the listener's event loop. Replies that do not start a
    /// transfer go out through `reply`.
    func handle(
        _ packet: TFTPPacket, from client: SocketAddress, local: NIOPacketInfo?, maxBlockSize: Int,
        reply: (TFTPPacket) -> Void
    ) {
        let started = NIODeadline.now()
        let clientIP = client.ipAddress ?? "\(client)"
        switch packet {
        case .writeRequest(let request):
            let mac = macLookup(clientIP) ?? ""
            reply(.error(code: .accessViolation, message: "Write not supported"))
            complete(.writeRefused, file: request.filename, bytes: 0, mac: mac, client: clientIP, started: started, detail: "WRQ refused")
        case .readRequest(let request):
            handleRead(request, from: client, clientIP: clientIP, local: local, maxBlockSize: maxBlockSize, started: started, reply: reply)
        default:
            metrics.drop("unexpected_opcode")
            logger.debug("TFTP dropped packet", metadata: ["client": "\(client)", "reason": "unexpected_opcode", "opcode": "\(packet.opcode)"])
        }
    }

    private func handleRead(
        _ request: TFTPRequest, from client: SocketAddress, clientIP: String, local: NIOPacketInfo?,
        maxBlockSize: Int, started: NIODeadline, reply: (TFTPPacket) -> Void
    ) {
        let mac = macLookup(clientIP) ?? ""
        let file = request.filename
        func refuse(_ outcome: TFTPOutcome, _ code: TFTPErrorCode, _ message: String) {
            reply(.error(code: code, message: message))
            complete(outcome, file: file, bytes: 0, mac: mac, client: clientIP, started: started, detail: message)
        }
        if request.mode == .mail {
            return refuse(.badMode, .illegalOperation, "Mail mode not supported")
        }
        // A retransmitted RRQ while its transfer runs: the transfer's own timer resends.
        let ip = client.ipAddress ?? "?"
        enum Admission { case retransmission, admitted, full, clientFull }
        let admission = state.withLockedValue { state -> Admission in
            if state.active.contains(client) { return .retransmission }
            guard state.active.count < configuration.maxConcurrentTransfers else { return .full }
            guard state.byAddress[ip, default: 0] < configuration.maxTransfersPerClient else { return .clientFull }
            state.admit(client, ip: ip)
            return .admitted
        }
        switch admission {
        case .retransmission: return
        case .full: return refuse(.busy, .notDefined, "Server busy, try again later")
        case .clientFull:
            return refuse(.busy, .notDefined, "Server busy: \(configuration.maxTransfersPerClient) transfers from \(ip) already")
        case .admitted: break
        }
        var releaseSlot = true
        defer { if releaseSlot { state.withLockedValue { $0.release(client, ip: ip) } } }

        let bootRequest = BootRequest(kind: .tftp, mac: mac, clientAddress: clientIP,
                                      serverAddress: local?.destinationAddress.ipAddress,
                                      serverPort: servingPort, path: file)
        let decision = decider.decide(bootRequest)
        let content: TFTPContent
        var servedName = file
        if let refusal = decision?.refuse {
            return refuse(.refused, .accessViolation, refusal)
        } else if let bytes = decision?.content ?? decision?.ipxeScript.map({ Array($0.utf8) }) {
            content = .bytes(bytes)
        } else {
            if let remapped = decision?.path { servedName = remapped }
            switch root.open(servedName) {
            case .success(let opened): content = .file(opened)
            case .failure(let refusal):
                let outcome: TFTPOutcome
                switch refusal {
                case .notFound: outcome = .notFound
                case .accessViolation: outcome = .accessViolation
                case .busy:
                    outcome = .busy
                    logger.error("TFTP cannot open \(servedName): \(refusal.message)", metadata: ["client": "\(clientIP)"])
                }
                return refuse(outcome, refusal.code, refusal.message)
            }
        }
        let netascii = request.mode == .netascii
        let options: TFTPTransferOptions
        do {
            options = try TFTPTransferOptions.negotiate(
                request.options, maxBlockSize: maxBlockSize, maxWindowSize: configuration.maxWindowSize,
                transferSize: { TFTPBlockSource.transferSize(of: content, netascii: netascii) })
        } catch {
            return refuse(.optionInvalid, .optionNegotiation, "Option negotiation failed: \(error)")
        }
        releaseSlot = false
        startTransfer(
            TFTPTransfer.Setup(content: content, netascii: netascii, options: options,
                               timeout: configuration.defaultTimeout, maxRetries: configuration.maxRetries),
            client: client, local: local, file: servedName == file ? file : "\(file) -> \(servedName)",
            mac: mac, clientIP: clientIP, started: started, policy: decision?.policy)
    }

    private func startTransfer(
        _ setup: TFTPTransfer.Setup, client: SocketAddress, local: NIOPacketInfo?, file: String, mac: String,
        clientIP: String, started: NIODeadline, policy: String?
    ) {
        // Answer from the address the request was sent to (IP_PKTINFO), so a multi-homed host
        // keeps one peer address per transfer; without it, from the configured address.
        var bindAddress: SocketAddress
        if let local, local.destinationAddress.protocol == client.protocol {
            bindAddress = local.destinationAddress
        } else if let configured = try? SocketAddress(ipAddress: configuration.host, port: 0), configured.protocol == client.protocol {
            bindAddress = configured
        } else {
            let any = client.protocol == .inet6 ? "::" : "0.0.0.0"
            bindAddress = (try? SocketAddress(ipAddress: any, port: 0)) ?? client
        }
        bindAddress.port = 0
        let onFinish: (TFTPTransfer.Result) -> Void = { [self] result in
            state.withLockedValue { $0.release(client, ip: client.ipAddress ?? "?") }
            // First report only: check and set under one lock, so two transfers log once.
            let firstRefusal = result.segmentationRefused && state.withLockedValue { state -> Bool in
                defer { state.segmentationRefused = true }
                return !state.segmentationRefused
            }
            if firstRefusal {
                logger.warning("TFTP: UDP segmentation offload refused (EIO); windows go out packet by packet from now on",
                               metadata: ["client": "\(client)"])
            }
            complete(result.outcome, file: file, bytes: result.bytes, mac: mac, client: clientIP, started: started,
                     detail: result.detail, policy: policy, options: setup.options)
        }
        let segmentationOff = state.withLockedValue { $0.segmentationRefused }
        var segmentSize = setup.options.windowSize > 1 && !setup.netascii && System.supportsUDPSegmentationOffload && !segmentationOff
            ? setup.options.blockSize + 4 : 0
        let fd: CInt
        do {
            fd = try Self.openTransferSocket(from: bindAddress, to: client, segmentSize: &segmentSize)
        } catch {
            logger.warning("TFTP cannot open a transfer socket", metadata: ["client": "\(client)", "error": "\(error)"])
            return onFinish(TFTPTransfer.Result(outcome: .ioError, bytes: 0, detail: "transfer socket: \(error)"))
        }
        let transfer = TFTPTransfer(fd: fd, setup: setup, segmentSize: segmentSize, onFinish: onFinish)
        if !engine.add(transfer) {
            close(fd)
            onFinish(TFTPTransfer.Result(outcome: .shutdown, bytes: 0, detail: "server stopping"))
        }
    }

    /// A non-blocking UDP socket bound to `local` (port 0: a fresh TID) and connected to the
    /// client, so the kernel drops datagrams from anyone else. With `segmentSize` > 0 it also
    /// sets UDP_SEGMENT; where the kernel refuses that, `segmentSize` becomes 0.
    static func openTransferSocket(from local: SocketAddress, to client: SocketAddress, segmentSize: inout Int) throws -> CInt {
        let family = client.protocol == .inet6 ? AF_INET6 : AF_INET
        let fd = socket(family, CInt(SOCK_DGRAM.rawValue) | CInt(SOCK_NONBLOCK.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TFTPEngineError("socket", errno) }
        func fail(_ call: String) -> TFTPEngineError {
            let error = TFTPEngineError(call, errno)
            close(fd)
            return error
        }
        guard local.withSockAddr({ bind(fd, $0, socklen_t($1)) }) == 0 else { throw fail("bind \(local)") }
        guard client.withSockAddr({ connect(fd, $0, socklen_t($1)) }) == 0 else { throw fail("connect \(client)") }
        if segmentSize > 0 {
            var size = CInt(segmentSize)
            if setsockopt(fd, CInt(IPPROTO_UDP), TFTPTransfer.udpSegmentOption, &size, socklen_t(MemoryLayout<CInt>.size)) != 0 {
                segmentSize = 0
            }
        }
        return fd
    }

    private func complete(
        _ outcome: TFTPOutcome, file: String, bytes: UInt64, mac: String, client: String, started: NIODeadline,
        detail: String?, policy: String? = nil, options: TFTPTransferOptions? = nil
    ) {
        metrics.transfer(outcome)
        if bytes > 0 { metrics.bytes.increment(by: Int64(bytes)) }
        let millis = (NIODeadline.now() - started).nanoseconds / 1_000_000
        var fields = ["file": file, "bytes": String(bytes), "duration_ms": String(millis), "outcome": outcome.rawValue]
        if let detail { fields["detail"] = detail }
        if let policy { fields["policy"] = policy }
        if let options {
            fields["blksize"] = String(options.blockSize)
            fields["windowsize"] = String(options.windowSize)
        }
        events.record(BootEvent(stage: .tftp, mac: mac, clientAddress: client,
                                summary: "RRQ \(file) -> \(outcome.rawValue) \(bytes) B in \(millis) ms", fields: fields))
        var metadata: Logger.Metadata = ["client": "\(client)", "file": "\(file)", "bytes": "\(bytes)", "ms": "\(millis)",
                                         "outcome": "\(outcome.rawValue)"]
        if !mac.isEmpty { metadata["mac"] = "\(mac)" }
        if let detail { metadata["detail"] = "\(detail)" }
        logger.log(level: outcome == .ok ? .info : .notice, "TFTP transfer", metadata: metadata)
    }
}

/// The request socket's handler: decodes, drops and counts garbage, hands requests over.
final class TFTPListener: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    private let server: TFTPServer
    private var mtuByInterface: [Int: Int] = [:]

    init(server: TFTPServer) {
        self.server = server
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        let packet: TFTPPacket
        do {
            packet = try TFTPPacket(decoding: envelope.data)
        } catch {
            server.metrics.drop(error.reason)
            server.logger.debug("TFTP dropped packet", metadata: ["client": "\(envelope.remoteAddress)", "reason": "\(error.reason)", "error": "\(error)"])
            if case .unsupportedMode(let mode) = error {
                // A request we understood except for its mode: tell the client.
                send(.error(code: .illegalOperation, message: "Mode \(mode) not supported"), to: envelope.remoteAddress, context: context)
            }
            return
        }
        let packetInfo = envelope.metadata?.packetInfo
        let maxBlockSize = min(server.configuration.maxBlockSize, interfaceLimit(packetInfo?.interfaceIndex))
        server.handle(packet, from: envelope.remoteAddress, local: packetInfo, maxBlockSize: maxBlockSize) { reply in
            send(reply, to: envelope.remoteAddress, context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // ICMP errors from earlier replies; the listener keeps serving.
        server.logger.debug("TFTP listener error", metadata: ["error": "\(error)"])
    }

    private func send(_ packet: TFTPPacket, to address: SocketAddress, context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: 64)
        packet.encode(into: &buffer)
        context.writeAndFlush(wrapOutboundOut(AddressedEnvelope(remoteAddress: address, data: buffer)), promise: nil)
    }

    /// Largest blksize the interface carries without IP fragmentation: MTU - 20 (IPv4) - 8
    /// (UDP) - 4 (TFTP header). Read once per interface from /sys/class/net/<name>/mtu.
    private func interfaceLimit(_ index: Int?) -> Int {
        guard let index, index > 0 else { return TFTPTransferOptions.blockSizeRange.upperBound }
        if let cached = mtuByInterface[index] { return cached }
        var limit = TFTPTransferOptions.blockSizeRange.upperBound
        var name = [CChar](repeating: 0, count: Int(IF_NAMESIZE) + 1)
        if if_indextoname(UInt32(index), &name) != nil,
           let text = try? String(contentsOfFile: "/sys/class/net/\(String(cString: name))/mtu", encoding: .utf8),
           let mtu = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), mtu > 100 {
            limit = min(limit, mtu - 32)
        }
        mtuByInterface[index] = limit
        return limit
    }
}
