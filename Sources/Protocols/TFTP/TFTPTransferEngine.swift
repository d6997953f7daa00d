import CLinux
import Foundation
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// Runs the server's transfers on a few threads of its own, each waiting in epoll_wait(2) on
/// its transfers' connected sockets.
///
/// Why not a NIO channel per transfer: a TFTP transfer is a long run of tiny exchanges (one ACK
/// in, one DATA or one window out), and NIO's datagram path costs, per ACK, an envelope, the
/// pipeline, a pending-write queue and the sender's address turned into text with inet_ntop(3)
/// and sprintf(3). Measured with 1,000 concurrent 1 MB transfers, user space was about 40 % of
/// the server's CPU that way; dnsmasq and in.tftpd do a recv and a send. Here an ACK costs one
/// recv(2) and the reply one send(2) (one per 64 KB of a window with UDP GSO).
///
/// Timers: each transfer keeps a deadline; a worker looks at all of its transfers every
/// `tickInterval` while it has any, so retransmissions fire within that much of their time.
final class TFTPTransferEngine: @unchecked Sendable {
    static let tickInterval: UInt64 = 50_000_000

    private let workers: [Worker]
    private let nextWorker = NIOLockedValueBox(0)

    init(threads: Int) {
        workers = (0..<max(1, threads)).map { Worker(index: $0) }
    }

    /// Starts the worker threads; throws if epoll or the wake-up pipe cannot be created.
    func start(name: String = "bp-tftp") throws {
        for worker in workers { try worker.start(name: "\(name)-\(worker.index)") }
    }

    /// Hands a transfer (its socket bound, connected and non-blocking) to a worker, which
    /// starts it. False after `stop()`: the caller closes the socket.
    func add(_ transfer: TFTPTransfer) -> Bool {
        let index = nextWorker.withLockedValue { next -> Int in
            defer { next = (next + 1) % workers.count }
            return next
        }
        return workers[index].add(transfer)
    }

    /// Asks the threads to end every transfer (outcome `shutdown`) and exit; returns at once.
    func requestStop() {
        for worker in workers { worker.requestStop() }
    }

    /// Ends every transfer (outcome `shutdown`), closes their sockets and waits for the threads.
    func stop() async {
        requestStop()
        for worker in workers { await worker.waitUntilStopped() }
    }

    final class Worker: @unchecked Sendable {
        let index: Int
        private var epollFD: CInt = -1
        /// A pipe whose read end is in the epoll set: written to wake the thread.
        private var wakeRead: CInt = -1
        private var wakeWrite: CInt = -1
        private struct Inbox {
            var arrivals: [TFTPTransfer] = []
            var stopping = false
            var started = false
        }
        private let inbox = NIOLockedValueBox(Inbox())
        private let exits = ThreadExits()
        /// Owned by the thread: transfers by slot (the epoll data of their socket).
        private var slots: [TFTPTransfer?] = []
        private var freeSlots: [Int] = []
        private var count = 0

        /// epoll data of the wake-up pipe (no transfer slot).
        private static let wakeTag = UInt64.max

        init(index: Int) {
            self.index = index
        }

        deinit {
            // The pipe outlives the thread: add() may still write to it after a stop.
            if wakeRead >= 0 { close(wakeRead) }
            if wakeWrite >= 0 { close(wakeWrite) }
        }

        func start(name: String) throws {
            epollFD = clinux_epoll_create()
            guard epollFD >= 0 else { throw TFTPEngineError("epoll_create1", errno) }
            var ends: [CInt] = [0, 0]
            guard clinux_pipe(&ends) == 0 else {
                let error = errno
                close(epollFD)
                throw TFTPEngineError("pipe2", error)
            }
            wakeRead = ends[0]
            wakeWrite = ends[1]
            guard clinux_epoll_add(epollFD, wakeRead, Self.wakeTag) == 0 else {
                let error = errno
                close(epollFD)
                throw TFTPEngineError("epoll_ctl", error)
            }
            let stopRequested = inbox.withLockedValue { inbox -> Bool in
                inbox.started = true
                return inbox.stopping
            }
            let thread = Thread { [self] in
                // Thread.name set from outside does not reach the kernel on Linux.
                clinux_name_thread(name)
                run()
                exits.exited()
            }
            thread.name = name
            exits.started()
            thread.start()
            // requestStop() before start() woke nobody (there was no thread): without this the
            // thread would wait in epoll_wait for ever and waitUntilStopped() with it.
            if stopRequested { wake() }
        }

        func add(_ transfer: TFTPTransfer) -> Bool {
            let accepted = inbox.withLockedValue { inbox -> Bool in
                guard inbox.started, !inbox.stopping else { return false }
                inbox.arrivals.append(transfer)
                return true
            }
            if accepted { wake() }
            return accepted
        }

        func requestStop() {
            let wasRunning = inbox.withLockedValue { inbox -> Bool in
                defer { inbox.stopping = true }
                return inbox.started && !inbox.stopping
            }
            if wasRunning { wake() }
        }

        /// Returns once the thread has returned (at once if it never started).
        func waitUntilStopped() async {
            await exits.wait()
        }

        private func wake() {
            var byte: UInt8 = 1
            _ = write(wakeWrite, &byte, 1)  // EAGAIN: the pipe is full, the thread wakes anyway
        }

        private func run() {
            let receive = UnsafeMutableRawBufferPointer.allocate(byteCount: 2_048, alignment: 16)
            let tags = UnsafeMutablePointer<UInt64>.allocate(capacity: 64)
            defer {
                receive.deallocate()
                tags.deallocate()
            }
            var nextTick = TFTPTransfer.now() + TFTPTransferEngine.tickInterval
            while true {
                let timeout: CInt = count == 0 ? -1 : CInt(TFTPTransferEngine.tickInterval / 1_000_000)
                let ready = clinux_epoll_wait(epollFD, tags, 64, timeout)
                let now = TFTPTransfer.now()
                if ready > 0 {
                    for i in 0..<Int(ready) {
                        let tag = tags[i]
                        if tag == Self.wakeTag {
                            if takeArrivals(now: now) { return shutDown() }
                            continue
                        }
                        guard let transfer = slots[Int(tag)] else { continue }
                        transfer.readable(now: now, buffer: receive)
                        if transfer.finished { remove(slot: Int(tag)) }
                    }
                } else if ready < 0 && errno != EINTR {
                    // Not expected with a valid epoll descriptor; don't spin on it.
                    usleep(10_000)
                }
                if now >= nextTick {
                    nextTick = now + TFTPTransferEngine.tickInterval
                    for slot in slots.indices {
                        guard let transfer = slots[slot] else { continue }
                        transfer.tick(now: now)
                        if transfer.finished { remove(slot: slot) }
                    }
                }
            }
        }

        /// Registers and starts new transfers; true when the engine is stopping.
        private func takeArrivals(now: UInt64) -> Bool {
            withUnsafeTemporaryAllocation(byteCount: 256, alignment: 1) { drain in
                while read(wakeRead, drain.baseAddress, drain.count) > 0 {}
            }
            let (arrivals, stopping) = inbox.withLockedValue { inbox in
                defer { inbox.arrivals.removeAll() }
                return (inbox.arrivals, inbox.stopping)
            }
            for transfer in arrivals {
                let slot: Int
                if let free = freeSlots.popLast() {
                    slot = free
                    slots[slot] = transfer
                } else {
                    slot = slots.count
                    slots.append(transfer)
                }
                count += 1
                guard clinux_epoll_add(epollFD, transfer.fd, UInt64(slot)) == 0 else {
                    transfer.cancel(.ioError, detail: "epoll_ctl: \(TFTPTransfer.describe(errno))")
                    remove(slot: slot)
                    continue
                }
                transfer.start(now: now)
                if transfer.finished { remove(slot: slot) }
            }
            return stopping
        }

        private func remove(slot: Int) {
            guard let transfer = slots[slot] else { return }
            slots[slot] = nil
            freeSlots.append(slot)
            count -= 1
            // Closing the socket also takes it out of the epoll set.
            close(transfer.fd)
        }

        private func shutDown() {
            for slot in slots.indices {
                guard let transfer = slots[slot] else { continue }
                transfer.cancel(.shutdown, detail: "server stopping")
                remove(slot: slot)
            }
            // Transfers handed over after the last look at the inbox: none can arrive now.
            let late = inbox.withLockedValue { inbox in
                defer { inbox.arrivals.removeAll() }
                return inbox.arrivals
            }
            for transfer in late {
                transfer.cancel(.shutdown, detail: "server stopping")
                close(transfer.fd)
            }
            close(epollFD)
        }
    }
}

struct TFTPEngineError: Error, CustomStringConvertible {
    let description: String
    init(_ call: String, _ error: CInt) {
        description = "\(call): \(TFTPTransfer.describe(error))"
    }
}
