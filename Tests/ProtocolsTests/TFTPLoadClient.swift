import CLinux
import Foundation
@testable import Protocols

#if canImport(Glibc)
import Glibc
#endif

/// The concurrent TFTP benchmark's load generator: many octet downloads at once on a few
/// threads, each waiting in epoll_wait(2) on its downloads' sockets, every byte compared with
/// the expected content (memcmp).
///
/// The NIO test client costs, per DATA packet, an envelope, the pipeline and the sender's address
/// turned into text; with 1,000 lock-step downloads it used more of the two shared cores than
/// the server it measured. This one does a recv(2) per DATA and a send(2) per ACK on a socket
/// connected to the server's transfer port, so the cores go to the servers being compared.
/// Every server in a run gets the same client.
enum TFTPLoadClient {
    struct Outcome: Sendable {
        var seconds: Double
        /// Downloads that did not end with exactly the expected bytes.
        var failed: Int
        /// Why, for the first few.
        var reasons: [String]
        /// Requests and ACKs sent again after a silent timeout (lost datagrams cost a timeout each).
        var resends: Int
    }

    /// `count` downloads of `file` from 127.0.0.1:`port`, asking for `blockSize` and (when
    /// given) `windowSize`. Bounded: a download gives up after `retries` silent `timeout`s.
    static func run(
        port: Int, file: String, count: Int, blockSize: Int, windowSize: Int?, expected: [UInt8],
        threads: Int = 2, timeout: Double = 1, retries: Int = 10
    ) async -> Outcome {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: runBlocking(
                    port: port, file: file, count: count, blockSize: blockSize, windowSize: windowSize,
                    expected: expected, threads: threads, timeout: timeout, retries: retries))
            }
        }
    }

    static func runBlocking(
        port: Int, file: String, count: Int, blockSize: Int, windowSize: Int?, expected: [UInt8],
        threads: Int, timeout: Double, retries: Int
    ) -> Outcome {
        var rrq: [UInt8] = [0, 1] + Array(file.utf8) + [0] + Array("octet".utf8) + [0]
        rrq += Array("blksize".utf8) + [0] + Array(String(blockSize).utf8) + [0]
        if let windowSize { rrq += Array("windowsize".utf8) + [0] + Array(String(windowSize).utf8) + [0] }
        let threadCount = max(1, min(threads, count))
        let tally = Tally()
        let request = rrq
        let done = DispatchGroup()
        let start = ContinuousClock.now
        for index in 0..<threadCount {
            let share = count / threadCount + (index < count % threadCount ? 1 : 0)
            done.enter()
            let thread = Thread {
                clinux_name_thread("bp-load-\(index)")
                let worker = Worker(port: port, request: request, blockSize: blockSize, expected: expected,
                                    timeout: UInt64(timeout * 1e9), retries: retries)
                let (bad, why) = worker.run(downloads: share)
                tally.add(bad, why, resends: worker.resends)
                done.leave()
            }
            thread.start()
        }
        done.wait()
        let (failed, reasons, resends) = tally.value
        return Outcome(seconds: (ContinuousClock.now - start).seconds, failed: failed, reasons: reasons, resends: resends)
    }

    /// Failures added up from the threads.
    final class Tally: @unchecked Sendable {
        private let lock = NSLock()
        private var failed = 0
        private var reasons: [String] = []
        private var resends = 0
        func add(_ count: Int, _ why: [String], resends: Int) {
            lock.lock()
            defer { lock.unlock() }
            failed += count
            self.resends += resends
            reasons += why.prefix(max(0, 5 - reasons.count))
        }
        var value: (Int, [String], Int) {
            lock.lock()
            defer { lock.unlock() }
            return (failed, reasons, resends)
        }
    }

    final class Download {
        let fd: CInt
        var connected = false
        var blockSize = 512
        var windowSize = 1
        var expectedBlock: UInt16 = 1
        var inWindow = 0
        var gapAckedAt: UInt16?
        var bytes = 0
        var last: [UInt8]
        var deadline: UInt64 = 0
        var tries = 0
        var finished = false
        var failure: String?

        init(fd: CInt, request: [UInt8]) {
            self.fd = fd
            self.last = request
        }
    }

    final class Worker {
        let request: [UInt8]
        let askedBlockSize: Int
        let expected: [UInt8]
        let timeout: UInt64
        let retries: Int
        /// 127.0.0.1:port, where RRQs go (and their resends, until the server's TID is known).
        let server: sockaddr_in
        private(set) var resends = 0

        init(port: Int, request: [UInt8], blockSize: Int, expected: [UInt8], timeout: UInt64, retries: Int) {
            var server = sockaddr_in()
            server.sin_family = sa_family_t(AF_INET)
            server.sin_port = in_port_t(UInt16(port).bigEndian)
            server.sin_addr.s_addr = inet_addr("127.0.0.1")
            self.server = server
            self.request = request
            self.askedBlockSize = blockSize
            self.expected = expected
            self.timeout = timeout
            self.retries = retries
        }

        func run(downloads count: Int) -> (Int, [String]) {
            let epoll = clinux_epoll_create()
            guard epoll >= 0 else { return (count, ["epoll_create1: errno \(errno)"]) }
            defer { close(epoll) }
            var downloads: [Download] = []
            var failures: [String] = []
            let now = TFTPTransfer.now()
            for _ in 0..<count {
                let fd = socket(AF_INET, CInt(SOCK_DGRAM.rawValue) | CInt(SOCK_NONBLOCK.rawValue), 0)
                guard fd >= 0 else { failures.append("socket: errno \(errno)"); continue }
                var local = sockaddr_in()
                local.sin_family = sa_family_t(AF_INET)
                local.sin_addr.s_addr = inet_addr("127.0.0.1")
                _ = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
                let download = Download(fd: fd, request: request)
                download.blockSize = askedBlockSize
                _ = clinux_epoll_add(epoll, fd, UInt64(downloads.count))
                downloads.append(download)
                send(request, on: download, now: now)
            }
            defer { for download in downloads { close(download.fd) } }
            var remaining = downloads.count
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65_536, alignment: 16)
            let tags = UnsafeMutablePointer<UInt64>.allocate(capacity: 64)
            defer {
                buffer.deallocate()
                tags.deallocate()
            }
            var nextTick = TFTPTransfer.now() + 50_000_000
            while remaining > 0 {
                let ready = clinux_epoll_wait(epoll, tags, 64, 50)
                let now = TFTPTransfer.now()
                for i in 0..<max(0, Int(ready)) {
                    let download = downloads[Int(tags[i])]
                    guard !download.finished else { continue }
                    read(download, buffer: buffer, now: now)
                    if download.finished { remaining -= 1 }
                }
                if now >= nextTick {
                    nextTick = now + 50_000_000
                    for download in downloads where !download.finished && now >= download.deadline {
                        download.tries += 1
                        if download.tries > retries {
                            download.failure = "no reply after \(retries) retries (block \(download.expectedBlock))"
                            download.finished = true
                            remaining -= 1
                        } else {
                            resends += 1
                            send(download.last, on: download, now: now)
                        }
                    }
                }
            }
            for download in downloads where download.failure != nil { failures.append(download.failure!) }
            return (failures.count, failures)
        }

        /// Reads while more of the current window is due; stops after sending an ACK (the next
        /// datagram cannot be there yet), and level-triggered epoll reports anything left. Inside
        /// a window (windowsize > 1) one recvmmsg(2) takes up to 16 datagrams.
        private func read(_ download: Download, buffer: UnsafeMutableRawBufferPointer, now: UInt64) {
            for _ in 0..<64 {
                if download.connected && download.windowSize > 1 && download.blockSize + 4 <= Self.slotSize {
                    let count = Int(clinux_receive_many(download.fd, buffer.baseAddress, CInt(Self.slotSize), CInt(Self.slots), lengths))
                    if count <= 0 { return }
                    var answered = false
                    for k in 0..<count {
                        let slot = UnsafeMutableRawBufferPointer(rebasing: buffer[(k * Self.slotSize)..<((k + 1) * Self.slotSize)])
                        if handle(slot, length: Int(lengths[k]), download: download, now: now) { answered = true }
                        if download.finished { return }
                    }
                    if answered && count < Self.slots { return }
                    continue
                }
                var n: Int
                if download.connected {
                    n = recv(download.fd, buffer.baseAddress, buffer.count, 0)
                } else {
                    var source = sockaddr_in()
                    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
                    n = withUnsafeMutablePointer(to: &source) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(download.fd, buffer.baseAddress, buffer.count, 0, $0, &length) }
                    }
                    if n >= 0 {
                        // The server's transfer port (its TID): from now on only it is heard.
                        _ = withUnsafePointer(to: &source) {
                            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(download.fd, $0, length) }
                        }
                        download.connected = true
                    }
                }
                if n < 0 { return }
                if handle(buffer, length: n, download: download, now: now) || download.finished { return }
            }
        }

        static let slots = 16
        static let slotSize = 4_096
        private let lengths = UnsafeMutablePointer<CInt>.allocate(capacity: 64)
        deinit { lengths.deallocate() }

        /// One datagram; true when it was answered (an ACK went out) or ended the download.
        private func handle(_ datagram: UnsafeMutableRawBufferPointer, length n: Int, download: Download, now: UInt64) -> Bool {
            guard n >= 4 else { return false }
            download.tries = 0
            download.deadline = now + timeout
            let opcode = UInt16(datagram[0]) << 8 | UInt16(datagram[1])
            let number = UInt16(datagram[2]) << 8 | UInt16(datagram[3])
            switch opcode {
            case 3:
                return data(number, payload: UnsafeRawBufferPointer(rebasing: datagram[4..<n]), download: download, now: now)
            case 6:
                optionAck(UnsafeRawBufferPointer(rebasing: datagram[2..<n]), download: download, now: now)
                return true
            case 5:
                download.failure = "ERROR \(number): " + String(decoding: datagram[4..<n].prefix { $0 != 0 }, as: UTF8.self)
                download.finished = true
                return true
            default:
                return false
            }
        }

        private func optionAck(_ body: UnsafeRawBufferPointer, download: Download, now: UInt64) {
            let fields = body.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
            var index = 0
            while index + 1 < fields.count {
                switch fields[index].lowercased() {
                case "blksize": download.blockSize = Int(fields[index + 1]) ?? download.blockSize
                case "windowsize": download.windowSize = Int(fields[index + 1]) ?? 1
                default: break
                }
                index += 2
            }
            send([0, 4, 0, 0], on: download, now: now)
        }

        /// True when this datagram was answered (an ACK went out or the download ended).
        private func data(_ block: UInt16, payload: UnsafeRawBufferPointer, download: Download, now: UInt64) -> Bool {
            guard block == download.expectedBlock else {
                if download.windowSize == 1 {
                    // A repeated block: our ACK was lost.
                    if block == download.expectedBlock &- 1 { send(ack(block), on: download, now: now); return true }
                } else if download.gapAckedAt != download.expectedBlock {
                    // RFC 7440: a gap; acknowledge the last block in order, once per gap.
                    download.gapAckedAt = download.expectedBlock
                    download.inWindow = 0
                    send(ack(download.expectedBlock &- 1), on: download, now: now)
                    return true
                }
                return false
            }
            let offset = download.bytes
            if offset + payload.count > expected.count {
                download.failure = "more bytes than the file has"
            } else if payload.count > 0 {
                let same = expected.withUnsafeBytes { memcmp(payload.baseAddress!, $0.baseAddress! + offset, payload.count) == 0 }
                if !same { download.failure = "bytes differ in block \(block)" }
            }
            download.bytes += payload.count
            download.expectedBlock &+= 1
            download.inWindow += 1
            let final = payload.count < download.blockSize
            if final || download.inWindow >= download.windowSize || download.failure != nil {
                download.inWindow = 0
                send(ack(block), on: download, now: now)
                if final || download.failure != nil {
                    if download.failure == nil && download.bytes != expected.count {
                        download.failure = "\(download.bytes) bytes, expected \(expected.count)"
                    }
                    download.finished = true
                }
                return true
            }
            return false
        }

        private func ack(_ block: UInt16) -> [UInt8] {
            [0, 4, UInt8(block >> 8), UInt8(block & 0xff)]
        }

        private func send(_ packet: [UInt8], on download: Download, now: UInt64) {
            download.last = packet
            download.deadline = now + timeout
            if download.connected {
                _ = packet.withUnsafeBytes { Glibc.send(download.fd, $0.baseAddress, $0.count, 0) }
            } else {
                var server = server
                _ = packet.withUnsafeBytes { bytes in
                    withUnsafePointer(to: &server) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                            sendto(download.fd, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                        }
                    }
                }
            }
        }
    }
}
