import CLinux
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

/// One read transfer on its own connected UDP socket (its own TID, RFC 1350 section 4), driven
/// by a `TFTPTransferEngine` worker thread: `start`, then `readable` whenever the socket has a
/// datagram, and `tick` to let the retransmission timer fire.
///
/// Lock-step when the window is 1: a block is sent once per new ACK and only a timeout resends
/// it, so a duplicate ACK never doubles the traffic (the Sorcerer's Apprentice bug). With a
/// window (RFC 7440) a stale ACK restarts the window after the acknowledged block, at most once
/// per window position. Block numbers wrap 65535 -> 0. One send buffer is reused for every
/// window; an ACK costs one recv(2), and a window one send(2) per 64 KB with UDP GSO.
final class TFTPTransfer {
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

    /// The connected socket; the engine owns and closes it.
    let fd: CInt
    private let setup: Setup
    private let onFinish: (Result) -> Void
    private var source: TFTPBlockSource
    private var scratch: ByteBuffer
    private var packetLengths: [Int]
    private let blockSize: Int
    private let windowSize: Int
    private let timeoutNanoseconds: UInt64
    /// DATA packet size the socket's UDP_SEGMENT option is set to (windowed octet transfers),
    /// else 0.
    private(set) var segmentSize: Int
    static let maxSegments = 64
    static let maxGSOBytes = 65_000
    private var segmentationRefused = false
    /// Sends one datagram (segmented by the kernel when longer than `segmentSize`); returns 0 or
    /// an errno. Tests replace it to refuse segmented writes the way some routes do.
    var sendDatagram: (CInt, UnsafeRawBufferPointer) -> CInt = { fd, bytes in
        Glibc.send(fd, bytes.baseAddress, bytes.count, CInt(MSG_NOSIGNAL)) < 0 ? errno : 0
    }

    /// 0 while an OACK waits for its ACK 0; then the first unacknowledged block (absolute).
    private var base: UInt64 = 0
    private var highestSent: UInt64 = 0
    private var lastBlock: UInt64?
    private var lastBlockLength = 0
    private var restartedAt: UInt64 = 0
    private var retries = 0
    /// Monotonic nanoseconds after which `tick` retransmits.
    private(set) var deadline: UInt64 = .max
    /// A send found the socket buffer full: resend soon, and don't count it as a retry.
    private var resendWithoutRetry = false
    private(set) var finished = false

    init(fd: CInt, setup: Setup, segmentSize: Int = 0, onFinish: @escaping (Result) -> Void) {
        self.fd = fd
        self.setup = setup
        self.segmentSize = segmentSize
        self.onFinish = onFinish
        self.blockSize = setup.options.blockSize
        self.windowSize = setup.options.windowSize
        let timeout = setup.options.timeoutSeconds.map { TimeAmount.seconds(Int64($0)) } ?? setup.timeout
        self.timeoutNanoseconds = UInt64(max(timeout.nanoseconds, 1_000_000))
        self.source = TFTPBlockSource(content: setup.content, netascii: setup.netascii,
                                      blockSize: setup.options.blockSize, windowSize: setup.options.windowSize)
        self.lastBlock = source.lastBlock
        self.scratch = ByteBufferAllocator().buffer(capacity: min(windowSize * (blockSize + 4), 1 << 20 + 4096))
        self.packetLengths = []
        self.packetLengths.reserveCapacity(windowSize)
    }

    /// Monotonic clock in nanoseconds, the time base of `deadline`.
    static func now() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }

    /// Sends the OACK, or the first window when no option was acknowledged.
    func start(now: UInt64) {
        if setup.options.acknowledged.isEmpty {
            base = 1
            sendWindow(now: now)
        } else {
            sendOptionAck(now: now)
        }
    }

    /// Reads one datagram from the socket (level-triggered: the engine calls again while more
    /// wait). Only ACK and ERROR matter; the 4 fixed bytes are read without building a packet.
    func readable(now: UInt64, buffer: UnsafeMutableRawBufferPointer) {
        guard !finished else { return }
        let count = recv(fd, buffer.baseAddress, buffer.count, CInt(MSG_DONTWAIT))
        if count < 0 {
            let error = errno
            if error == EAGAIN || error == EWOULDBLOCK || error == EINTR { return }
            // ECONNREFUSED: an ICMP port unreachable for an earlier DATA; the client is gone.
            return finish(.clientError, detail: error == ECONNREFUSED ? "client port unreachable" : "receive: \(Self.describe(error))")
        }
        guard count >= 4 else { return }
        let opcode = UInt16(buffer[0]) << 8 | UInt16(buffer[1])
        let number = UInt16(buffer[2]) << 8 | UInt16(buffer[3])
        switch opcode {
        case TFTPPacket.Opcode.ack.rawValue:
            handleAck(number, now: now)
        case TFTPPacket.Opcode.error.rawValue:
            let text = UnsafeRawBufferPointer(rebasing: buffer[4..<count])
            let message = String(decoding: text.prefix { $0 != 0 }, as: UTF8.self)
            if number == TFTPErrorCode.optionNegotiation.rawValue {
                finish(.optionRefused, detail: "client refused the options: \(message)")
            } else {
                finish(.clientError, detail: "client sent ERROR \(number): \(message)")
            }
        default:
            return
        }
    }

    /// Retransmits when the deadline has passed; gives up after `maxRetries`.
    func tick(now: UInt64) {
        guard !finished, now >= deadline else { return }
        if resendWithoutRetry {
            resendWithoutRetry = false
        } else {
            retries += 1
            guard retries <= setup.maxRetries else {
                return finish(.timeout, detail: "no ACK after \(setup.maxRetries) retries")
            }
        }
        if base == 0 { sendOptionAck(now: now) } else { sendWindow(now: now) }
    }

    /// Ends the transfer from outside (server shutdown); the engine closes the socket.
    func cancel(_ outcome: TFTPOutcome, detail: String) {
        finish(outcome, detail: detail)
    }

    private func handleAck(_ number: UInt16, now: UInt64) {
        if base == 0 {
            guard number == 0 else { return }
            base = 1
            retries = 0
            sendWindow(now: now)
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
            sendWindow(now: now)
            return
        }
        base = k + 1
        retries = 0
        if let last = lastBlock, k == last {
            return finish(.ok, detail: nil)
        }
        sendWindow(now: now)
    }

    private func sendOptionAck(now: UInt64) {
        scratch.clear()
        TFTPPacket.optionAck(setup.options.acknowledged).encode(into: &scratch)
        deadline = now + timeoutNanoseconds
        send(at: scratch.readerIndex, length: scratch.readableBytes, now: now)
    }

    /// Sends blocks base ..< base + window (fewer at the end of the file).
    private func sendWindow(now: UInt64) {
        scratch.clear()
        packetLengths.removeAll(keepingCapacity: true)
        var block = base
        if !setup.netascii {
            let remaining = lastBlock.map { Int(min(UInt64(windowSize), $0 - base + 1)) } ?? windowSize
            guard let length = source.appendWindow(first: base, count: remaining, to: &scratch, lengths: &packetLengths) else {
                return finish(.ioError, detail: "read failed at block \(base)")
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
                return finish(.ioError, detail: "read failed at block \(block)")
            }
            packetLengths.append(scratch.writerIndex - start)
            if length < blockSize {
                lastBlock = block
                lastBlockLength = length
            }
            block += 1
        }
        highestSent = max(highestSent, block - 1)
        deadline = now + timeoutNanoseconds
        // Locals, not properties, in the loop: every read of a class property is a runtime
        // exclusivity check (it showed in perf as swift::runtime::AccessSet::insert).
        let lengths = packetLengths
        var segment = segmentSize
        var offset = scratch.readerIndex
        var index = 0
        while index < lengths.count {
            var bytes = lengths[index]
            var taken = 1
            if segment > 0 && bytes == segment {
                // UDP GSO: consecutive packets of segmentSize bytes (the last may be shorter)
                // leave in one send, cut into datagrams by the kernel.
                while index + taken < lengths.count, taken < Self.maxSegments,
                      bytes + lengths[index + taken] <= Self.maxGSOBytes {
                    let length = lengths[index + taken]
                    bytes += length
                    taken += 1
                    if length != segment { break }
                }
            }
            switch send(at: offset, length: bytes, now: now) {
            case .sent:
                offset += bytes
                index += taken
            case .unsegmented:
                segment = segmentSize
                continue  // the same packets again, one send each
            case .later, .ended:
                return
            }
        }
    }

    private enum SendOutcome {
        case sent
        /// The socket buffer was full: the window is resent shortly.
        case later
        /// The route refused segmentation, now turned off: send packet by packet.
        case unsegmented
        /// The transfer finished (client gone or an I/O error).
        case ended
    }

    /// One send(2) of scratch[offset ..< offset + length].
    @discardableResult
    private func send(at offset: Int, length: Int, now: UInt64) -> SendOutcome {
        let start = offset - scratch.readerIndex
        let error = scratch.withUnsafeReadableBytes { readable in
            sendDatagram(fd, UnsafeRawBufferPointer(start: readable.baseAddress! + start, count: length))
        }
        switch error {
        case 0:
            return .sent
        case EAGAIN, EWOULDBLOCK, ENOBUFS, EINTR:
            resendWithoutRetry = true
            deadline = now + 10_000_000
            return .later
        case EIO where segmentSize > 0 && length > segmentSize:
            // A route whose device cannot offload checksums refuses GSO with EIO. Stop
            // segmenting on this socket and tell the server to stop using it.
            segmentationRefused = true
            var off: CInt = 0
            _ = setsockopt(fd, CInt(IPPROTO_UDP), Self.udpSegmentOption, &off, socklen_t(MemoryLayout<CInt>.size))
            segmentSize = 0
            return .unsegmented
        case ECONNREFUSED:
            finish(.clientError, detail: "client port unreachable")
            return .ended
        default:
            finish(.ioError, detail: "send: \(Self.describe(error))")
            return .ended
        }
    }

    /// UDP_SEGMENT from linux/udp.h (not in Glibc's module).
    static let udpSegmentOption = CInt(CLINUX_UDP_SEGMENT)

    static func describe(_ error: CInt) -> String {
        "\(String(cString: strerror(error))) (errno \(error))"
    }

    private func finish(_ outcome: TFTPOutcome, detail: String?) {
        guard !finished else { return }
        finished = true
        deadline = .max
        let acked = base == 0 ? 0 : base - 1
        var bytes: UInt64 = 0
        if acked > 0 {
            bytes = (acked - 1) * UInt64(blockSize)
            bytes += (lastBlock == acked) ? UInt64(lastBlockLength) : UInt64(blockSize)
        }
        var result = Result(outcome: outcome, bytes: bytes, detail: detail, segmentationRefused: segmentationRefused)
        if segmentationRefused && detail == nil { result.detail = "UDP segmentation offload refused (EIO) by this route; sent packet by packet" }
        onFinish(result)
    }
}
