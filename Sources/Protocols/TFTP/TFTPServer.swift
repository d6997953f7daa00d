import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle

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
        /// Retransmission timeout when the client asks none (RFC 2349 timeout overrides it).
        public var defaultTimeout: TimeAmount
        /// Retransmissions of one window before the transfer is abandoned.
        public var maxRetries: Int
        /// Upper bound for blksize; further clamped to the receiving interface's MTU - 32.
        public var maxBlockSize: Int
        /// Upper bound for windowsize (RFC 7440).
        public var maxWindowSize: Int

        public init(
            root: String, host: String = "0.0.0.0", port: Int = 69, maxConcurrentTransfers: Int = 1024,
            defaultTimeout: TimeAmount = .seconds(1), maxRetries: Int = 5, maxBlockSize: Int = 65464,
            maxWindowSize: Int = 64
        ) {
            self.root = root
            self.host = host
            self.port = port
            self.maxConcurrentTransfers = maxConcurrentTransfers
            self.defaultTimeout = defaultTimeout
            self.maxRetries = maxRetries
            self.maxBlockSize = maxBlockSize
            self.maxWindowSize = maxWindowSize
        }
    }

    public let configuration: Configuration
    let root: TFTPRoot
    let decider: any BootDecider
    let events: any BootEventSink
    let macLookup: @Sendable (String) -> String?
    let logger: Logger
    let group: any EventLoopGroup
    let metrics: TFTPMetrics

    private struct State {
        var listener: Channel?
        var stopped = false
        /// A route refused a GSO write once: windows are sent packet by packet since.
        var segmentationRefused = false
        /// Active transfers by client endpoint: a repeated RRQ from the same endpoint is a
        /// retransmission, not a new transfer.
        var active: [SocketAddress: Channel?] = [:]
    }
    private let state = NIOLockedValueBox(State())

    /// Throws if the root is not a directory. `metricsFactory` defaults to the bootstrapped
    /// `MetricsSystem.factory`.
    public init(
        configuration: Configuration, decider: any BootDecider = NoDecider(),
        events: any BootEventSink = NoEventSink(), macLookup: @escaping @Sendable (String) -> String? = { _ in nil },
        logger: Logger, eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        metricsFactory: (any MetricsFactory)? = nil
    ) throws {
        self.metrics = TFTPMetrics(factory: metricsFactory ?? MetricsSystem.factory)
        self.configuration = configuration
        self.root = try TFTPRoot(path: configuration.root)
        self.decider = decider
        self.events = events
        self.macLookup = macLookup
        self.logger = logger
        self.group = eventLoopGroup
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
        // No SO_REUSEADDR: UDP has no TIME_WAIT to skip, and with it Linux lets a second socket
        // bind the same port (two servers on 69 would split the requests silently; two port-0
        // listeners in one process could even be handed the same port).
        let bootstrap = DatagramBootstrap(group: group)
            .channelOption(.receivePacketInfo, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(TFTPListener(server: self))
                }
            }
        let channel = try await bootstrap.bind(host: configuration.host, port: configuration.port).get()
        let alreadyStopped = state.withLockedValue { state -> Bool in
            state.listener = channel
            return state.stopped
        }
        if alreadyStopped { try? await channel.close() }
        logger.info("TFTP listening", metadata: [
            "address": "\(channel.localAddress.map { "\($0)" } ?? "?")", "root": "\(root.path)",
        ])
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                try? await channel.closeFuture.get()
            } onCancel: {
                self.stop()
            }
        } onGracefulShutdown: {
            self.stop()
        }
        let transfers = state.withLockedValue { $0.active.values.compactMap { $0 } }
        for transfer in transfers { try? await transfer.close() }
        logger.info("TFTP stopped")
    }

    /// Stops listening and ends every transfer.
    public func stop() {
        let (listener, transfers) = state.withLockedValue { state in
            state.stopped = true
            return (state.listener, state.active.values.compactMap { $0 })
        }
        listener?.close(promise: nil)
        for transfer in transfers { transfer.close(promise: nil) }
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
        let admitted = state.withLockedValue { state -> Bool? in
            if state.active[client] != nil { return nil }
            guard state.active.count < configuration.maxConcurrentTransfers else { return false }
            state.active[client] = .some(nil)
            return true
        }
        guard let admitted else { return }
        guard admitted else { return refuse(.busy, .notDefined, "Server busy, try again later") }
        var releaseSlot = true
        defer { if releaseSlot { _ = state.withLockedValue { $0.active.removeValue(forKey: client) } } }

        let bootRequest = BootRequest(kind: .tftp, mac: mac, clientAddress: clientIP,
                                      serverAddress: local?.destinationAddress.ipAddress,
                                      serverPort: configuration.port, path: file)
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
                return refuse(refusal.code == .fileNotFound ? .notFound : .accessViolation, refusal.code, refusal.message)
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
        if let local {
            bindAddress = local.destinationAddress
        } else if let configured = try? SocketAddress(ipAddress: configuration.host, port: 0) {
            bindAddress = configured
        } else {
            let any = client.protocol == .inet6 ? "::" : "0.0.0.0"
            bindAddress = (try? SocketAddress(ipAddress: any, port: 0)) ?? client
        }
        bindAddress.port = 0
        let onFinish: @Sendable (TFTPTransfer.Result) -> Void = { [self] result in
            _ = state.withLockedValue { $0.active.removeValue(forKey: client) }
            if result.segmentationRefused, !state.withLockedValue({ $0.segmentationRefused }) {
                state.withLockedValue { $0.segmentationRefused = true }
                // This transfer is lost (the client retries); the next ones send block by block.
                logger.warning("TFTP: UDP segmentation offload refused (EIO); windows go out packet by packet from now on",
                               metadata: ["client": "\(client)"])
            }
            complete(result.outcome, file: file, bytes: result.bytes, mac: mac, client: clientIP, started: started,
                     detail: result.detail, policy: policy, options: setup.options)
        }
        let unsafeSetup = UnsafeTransfer(setup)
        let segmentationOff = state.withLockedValue { $0.segmentationRefused }
        let segmentSize = setup.options.windowSize > 1 && !setup.netascii && System.supportsUDPSegmentationOffload && !segmentationOff
            ? setup.options.blockSize + 4 : 0
        var bootstrap = DatagramBootstrap(group: group)
        if segmentSize > 0 { bootstrap = bootstrap.channelOption(.datagramSegmentSize, value: CInt(segmentSize)) }
        let future = bootstrap
            // One ACK (or ERROR) is all a transfer expects per wake-up; reading until EAGAIN
            // would cost a second recvmsg per block in lock-step.
            .channelOption(.maxMessagesPerRead, value: 1)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 1024))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(TFTPTransfer(setup: unsafeSetup.value, segmentSize: segmentSize, onFinish: onFinish))
                }
            }
            .bind(to: bindAddress)
            .flatMap { channel in
                channel.connect(to: client).map { channel }
            }
        future.whenSuccess { [self] channel in
            let stillWanted = state.withLockedValue { state -> Bool in
                guard !state.stopped, state.active.keys.contains(client) else { return false }
                state.active[client] = .some(channel)
                return true
            }
            guard stillWanted else { channel.close(promise: nil); return }
            channel.pipeline.fireUserInboundEventTriggered(TFTPTransfer.Start())
        }
        future.whenFailure { [self] error in
            logger.warning("TFTP cannot open a transfer socket", metadata: ["client": "\(client)", "error": "\(error)"])
            onFinish(TFTPTransfer.Result(outcome: .ioError, bytes: 0, detail: "transfer socket: \(error)"))
        }
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
        if let detail { metadata["detail"] = "\(detail)" }
        logger.log(level: outcome == .ok ? .info : .notice, "TFTP transfer", metadata: metadata)
    }
}

/// Carries a non-Sendable value into a channel initializer that runs exactly once.
private struct UnsafeTransfer<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
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
