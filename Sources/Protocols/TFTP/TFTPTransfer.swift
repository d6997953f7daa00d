import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// How a transfer ended; the label of `bootpolicy_tftp_transfers_total{outcome}`.
public enum TFTPOutcome: String, Sendable, CaseIterable {
    case ok
    case notFound = "not_found"
    case accessViolation = "access_violation"
    case refused
    case busy
    case writeRefused = "write_refused"
    case badMode = "bad_mode"
    case optionInvalid = "option_invalid"
    case optionRefused = "option_refused"
    case clientError = "client_error"
    case timeout
    case ioError = "io_error"
    case shutdown
}

/// One read transfer on its own connected UDP channel (its own TID, RFC 1350 section 4).
///
/// Lock-step when the window is 1: a block is sent once per new ACK and only a timeout resends
/// it, so a duplicate ACK never doubles the traffic (the Sorcerer's Apprentice bug). With a
/// window (RFC 7440) a stale ACK restarts the window after the acknowledged block, at most once
/// per window position. Block numbers wrap 65535 -> 0. All state lives on the channel's event
/// loop; one send buffer is reused for every window.
final class TFTPTransfer: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = ByteBuffer

    struct Setup {
        var content: TFTPContent
        var netascii: Bool
        var options: TFTPTransferOptions
        var timeout: TimeAmount
        var maxRetries: Int
    }

    struct Result {
        var outcome: TFTPOutcome
        var bytes: UInt64
        var detail: String?
        /// The route refused a segmented (GSO) write: the server stops using GSO.
        var segmentationRefused = false
    }

    private let setup: Setup
    private let onFinish: (Result) -> Void
    private var source: TFTPBlockSource
    private var scratch: ByteBuffer
    private var packetLengths: [Int]
    private let blockSize: Int
    private let windowSize: Int
    private let timeout: TimeAmount
    /// DATA packet size when the channel has UDP_SEGMENT set (windowed octet transfers), else 0.
    let segmentSize: Int
    static let maxSegments = 64
    private var segmentationConfirmed = false
    private var segmentationRefused = false
    static let maxGSOBytes = 65_000

    /// 0 while an OACK waits for its ACK 0; then the first unacknowledged block (absolute).
    private var base: UInt64 = 0
    private var highestSent: UInt64 = 0
    private var lastBlock: UInt64?
    private var lastBlockLength = 0
    private var restartedAt: UInt64 = 0
    private var retries = 0
    private var deadline = NIODeadline.now()
    private var timer: Scheduled<Void>?
    private var finished = false
    private var context: ChannelHandlerContext?

    init(setup: Setup, segmentSize: Int = 0, onFinish: @escaping (Result) -> Void) {
        self.setup = setup
        self.segmentSize = segmentSize
        self.onFinish = onFinish
        self.blockSize = setup.options.blockSize
        self.windowSize = setup.options.windowSize
        self.timeout = setup.options.timeoutSeconds.map { .seconds(Int64($0)) } ?? setup.timeout
        self.source = TFTPBlockSource(content: setup.content, netascii: setup.netascii,
                                      blockSize: setup.options.blockSize, windowSize: setup.options.windowSize)
        self.lastBlock = source.lastBlock
        self.scratch = ByteBufferAllocator().buffer(capacity: min(windowSize * (blockSize + 4), 1 << 20 + 4096))
        self.packetLengths = []
        self.packetLengths.reserveCapacity(windowSize)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.finish(.shutdown, detail: "channel closed")
        self.context = nil
    }

    /// Sent by the server once the channel is connected to the client.
    struct Start {}

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is Start else { return context.fireUserInboundEventTriggered(event) }
        if setup.options.acknowledged.isEmpty {
            base = 1
            sendWindow()
        } else {
            sendOptionAck()
        }
        armTimer(context: context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !finished else { return }
        var datagram = unwrapInboundIn(data).data
        // Only ACK and ERROR matter here; read the 4 fixed bytes without building a packet.
        guard let (opcode, number) = datagram.readMultipleIntegers(as: (UInt16, UInt16).self) else { return }
        switch opcode {
        case TFTPPacket.Opcode.ack.rawValue:
            handleAck(number, context: context)
        case TFTPPacket.Opcode.error.rawValue:
            let message = datagram.readNULTerminatedString() ?? ""
            if number == TFTPErrorCode.optionNegotiation.rawValue {
                finish(.optionRefused, detail: "client refused the options: \(message)")
            } else {
                finish(.clientError, detail: "client sent ERROR \(number): \(message)")
            }
        default:
            return
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // ICMP port unreachable surfaces as a read error: the client is gone.
        finish(.clientError, detail: "\(error)")
    }

    private func handleAck(_ number: UInt16, context: ChannelHandlerContext) {
        if base == 0 {
            guard number == 0 else { return }
            base = 1
            retries = 0
            sendWindow()
            armTimer(context: context)
            return
        }
        let previous = base - 1
        let k = previous + UInt64(number &- UInt16(truncatingIfNeeded: previous))
        guard k <= highestSent else { return }
        if k == previous {
            // Stale or duplicate ACK. Lock-step: never resend on it. Windowed: restart the window
            // after the acknowledged block (RFC 7440 section 4), once per position.
            guard windowSize > 1, restartedAt != base else { return }
            restartedAt = base
            sendWindow()
            armTimer(context: context)
            return
        }
        base = k + 1
        retries = 0
        if let last = lastBlock, k == last {
            finish(.ok, detail: nil)
            return
        }
        sendWindow()
        armTimer(context: context)
    }

    private func sendOptionAck() {
        guard let context else { return }
        scratch.clear()
        TFTPPacket.optionAck(setup.options.acknowledged).encode(into: &scratch)
        context.writeAndFlush(wrapOutboundOut(scratch), promise: nil)
    }

    /// Sends blocks base ..< base + window (fewer at the end of the file).
    private func sendWindow() {
        guard let context else { return }
        scratch.clear()
        packetLengths.removeAll(keepingCapacity: true)
        var block = base
        if !setup.netascii {
            let remaining = lastBlock.map { Int(min(UInt64(windowSize), $0 - base + 1)) } ?? windowSize
            guard let length = source.appendWindow(first: base, count: remaining, to: &scratch, lengths: &packetLengths) else {
                finish(.ioError, detail: "read failed at block \(base)")
                return
            }
            block = base + UInt64(packetLengths.count)
            if length < blockSize {
                lastBlock = block - 1
                lastBlockLength = length
            }
        }
        while setup.netascii && packetLengths.count < windowSize {
            if let last = lastBlock, block > last { break }
            let start = scratch.writerIndex
            TFTPPacket.writeDataHeader(block: UInt16(truncatingIfNeeded: block), into: &scratch)
            guard let length = source.append(block: block, to: &scratch) else {
                finish(.ioError, detail: "read failed at block \(block)")
                return
            }
            packetLengths.append(scratch.writerIndex - start)
            if length < blockSize {
                lastBlock = block
                lastBlockLength = length
            }
            block += 1
        }
        highestSent = max(highestSent, block - 1)
        var offset = scratch.readerIndex
        if segmentSize > 0 {
            // UDP GSO: consecutive packets of segmentSize bytes (the last may be shorter) leave
            // in one write, cut into datagrams by the kernel.
            var index = 0
            while index < packetLengths.count {
                var bytes = 0
                var taken = 0
                while index + taken < packetLengths.count, taken < Self.maxSegments,
                      bytes + packetLengths[index + taken] <= Self.maxGSOBytes {
                    let length = packetLengths[index + taken]
                    bytes += length
                    taken += 1
                    if length != segmentSize { break }
                }
                // The first segmented write is watched: a route whose device cannot offload
                // checksums refuses GSO with EIO (and NIO then closes the channel). Once one
                // went through, the route takes them.
                var promise: EventLoopPromise<Void>?
                if taken > 1 && !segmentationConfirmed {
                    segmentationConfirmed = true
                    promise = context.eventLoop.makePromise()
                    let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
                    promise?.futureResult.whenFailure { error in
                        if let error = error as? IOError, error.errnoCode == EIO { loopBound.value.segmentationRefused = true }
                    }
                }
                context.write(wrapOutboundOut(scratch.getSlice(at: offset, length: bytes)!), promise: promise)
                offset += bytes
                index += taken
            }
        } else {
            for length in packetLengths {
                context.write(wrapOutboundOut(scratch.getSlice(at: offset, length: length)!), promise: nil)
                offset += length
            }
        }
        context.flush()
    }

    /// Moves the retransmission deadline; schedules a timer only when none is pending, so an
    /// ACK costs no allocation.
    private func armTimer(context: ChannelHandlerContext) {
        deadline = .now() + timeout
        guard timer == nil else { return }
        scheduleTimer(context: context)
    }

    private func scheduleTimer(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: deadline) {
            loopBound.value.timerFired()
        }
    }

    private func timerFired() {
        timer = nil
        guard !finished, let context else { return }
        if NIODeadline.now() < deadline {
            scheduleTimer(context: context)
            return
        }
        retries += 1
        guard retries <= setup.maxRetries else {
            finish(.timeout, detail: "no ACK after \(setup.maxRetries) retries")
            return
        }
        if base == 0 { sendOptionAck() } else { sendWindow() }
        armTimer(context: context)
    }

    private func finish(_ outcome: TFTPOutcome, detail: String?) {
        guard !finished else { return }
        finished = true
        timer?.cancel()
        timer = nil
        let acked = base == 0 ? 0 : base - 1
        var bytes: UInt64 = 0
        if acked > 0 {
            bytes = (acked - 1) * UInt64(blockSize)
            bytes += (lastBlock == acked) ? UInt64(lastBlockLength) : UInt64(blockSize)
        }
        if segmentationRefused {
            onFinish(Result(outcome: outcome, bytes: bytes, detail: "UDP segmentation offload refused (EIO) by this route",
                            segmentationRefused: true))
        } else {
            onFinish(Result(outcome: outcome, bytes: bytes, detail: detail))
        }
        context?.close(promise: nil)
    }
}
