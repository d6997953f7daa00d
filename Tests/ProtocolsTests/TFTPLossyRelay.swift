import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A UDP relay on 127.0.0.1 that drops a share of the packets in each direction with a seeded
/// generator. A client talks to `port`; the relay forwards to the server's request port from
/// one upstream socket, and gives every server transfer port (TID) its own local socket so the
/// client sees a distinct TID as it would without the relay. Runs on one thread with poll();
/// bounded by `stop()`.
final class TFTPLossyRelay: @unchecked Sendable {
    let port: Int
    private let serverPort: Int
    private let dropRate: Double
    private var rng: UInt64
    private let front: CInt
    private let upstream: CInt
    private var client: sockaddr_in?
    /// server TID port -> local socket facing the client, and back.
    private var tidSockets: [UInt16: CInt] = [:]
    private var tidBySocket: [CInt: UInt16] = [:]
    private let lock = NSLock()
    private var running = true
    private var thread: Thread?
    private(set) var forwarded = 0
    private(set) var dropped = 0

    init(serverPort: Int, dropRate: Double, seed: UInt64) {
        self.serverPort = serverPort
        self.dropRate = dropRate
        self.rng = seed | 1
        self.front = Self.bindLoopback()
        self.upstream = Self.bindLoopback()
        self.port = Self.localPort(front)
        let thread = Thread { [self] in self.loop() }
        self.thread = thread
        thread.start()
    }

    func stop() {
        lock.lock(); running = false; lock.unlock()
        Thread.sleep(forTimeInterval: 0.1)
        close(front); close(upstream)
        for fd in tidSockets.values { close(fd) }
    }

    private var isRunning: Bool { lock.lock(); defer { lock.unlock() }; return running }

    private func drop() -> Bool {
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17
        return Double(rng % 10_000) / 10_000 < dropRate
    }

    static func bindLoopback() -> CInt {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return fd
    }

    static func localPort(_ fd: CInt) -> Int {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    private func send(_ fd: CInt, _ buffer: UnsafeMutableRawBufferPointer, _ count: Int, to address: sockaddr_in) {
        if drop() { dropped += 1; return }
        forwarded += 1
        var address = address
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, buffer.baseAddress, count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
    }

    private func receive(_ fd: CInt, _ buffer: UnsafeMutableRawBufferPointer) -> (Int, sockaddr_in) {
        var from = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let n = withUnsafeMutablePointer(to: &from) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, buffer.baseAddress, buffer.count, 0, $0, &length) }
        }
        return (n, from)
    }

    private func loop() {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 70_000, alignment: 8)
        defer { buffer.deallocate() }
        var serverRequest = sockaddr_in()
        serverRequest.sin_family = sa_family_t(AF_INET)
        serverRequest.sin_addr.s_addr = inet_addr("127.0.0.1")
        serverRequest.sin_port = UInt16(serverPort).bigEndian
        while isRunning {
            var fds = [pollfd(fd: front, events: Int16(POLLIN), revents: 0), pollfd(fd: upstream, events: Int16(POLLIN), revents: 0)]
            for fd in tidSockets.values { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            guard poll(&fds, nfds_t(fds.count), 50) > 0 else { continue }
            for entry in fds where entry.revents & Int16(POLLIN) != 0 {
                let (n, from) = receive(entry.fd, buffer)
                guard n >= 0 else { continue }
                if entry.fd == front {
                    client = from
                    send(upstream, buffer, n, to: serverRequest)
                } else if entry.fd == upstream {
                    // From the server: a transfer TID (or an error from the request port).
                    let tid = UInt16(bigEndian: from.sin_port)
                    var facing = tidSockets[tid]
                    if facing == nil {
                        let fd = Self.bindLoopback()
                        tidSockets[tid] = fd
                        tidBySocket[fd] = tid
                        facing = fd
                    }
                    if let client { send(facing!, buffer, n, to: client) }
                } else if let tid = tidBySocket[entry.fd] {
                    client = from
                    var to = serverRequest
                    to.sin_port = tid.bigEndian
                    send(upstream, buffer, n, to: to)
                }
            }
        }
    }
}
