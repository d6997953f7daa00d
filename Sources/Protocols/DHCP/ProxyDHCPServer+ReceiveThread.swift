import CLinux
import Foundation
import NIOConcurrencyHelpers
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

extension ProxyDHCPServer {
    /// Where a datagram arrived, resolved to the names the responder and the policy see.
    /// Shared by the socket threads and the NIO handler (tests drive that one).
    struct ArrivalResolver {
        let interface: String?
        let serverAddress: IPv4Address?
        let devices: [Int: (String, IPv4Address)]

        /// Our address: the arrival interface's (IP_PKTINFO), else the socket's, else the
        /// unicast address the request was sent to.
        func resolve(interfaceIndex: Int?, destination: IPv4Address?) -> (interface: String?, address: IPv4Address) {
            var ours = serverAddress
            var arrivalInterface = interface
            if let index = interfaceIndex, let device = devices[index] {
                arrivalInterface = arrivalInterface ?? device.0
                ours = ours ?? device.1
            }
            if ours == nil, let destination, destination != .broadcast, !destination.isAny { ours = destination }
            return (arrivalInterface, ours ?? .any)
        }
    }

    /// One socket served by its own thread: blocking recvmsg(2) with IP_PKTINFO, the shared
    /// `Core`, and sendto(2) of the reply.
    ///
    /// Why not a NIO channel: at 10,000 DISCOVERs/s a packet arrives every 100 µs, so an event
    /// loop sleeps in epoll_wait after nearly every one and then reads until EAGAIN: three
    /// system calls and NIO's envelope, pipeline and allocation per packet. Measured in the
    /// bench lab (bench/ab_cpu.py), that machinery was a sixth of the server's CPU per answer
    /// and kept it far above dnsmasq's, which does one poll, one recvmsg and one sendmsg.
    /// A thread that blocks in recvmsg needs one call to wait and read. DHCP work is short and
    /// never waits on anything else, so a thread per socket (two per interface) is enough.
    final class ReceiveThread: @unchecked Sendable {
        let fd: CInt
        let port: Int
        let core: Core
        let resolver: ArrivalResolver
        private let stopping = NIOLockedValueBox(false)
        private let finished = DispatchSemaphore(value: 0)
        private var thread: Thread?

        /// Nanoseconds of CPU the receive thread asks the scheduler for per turn (the
        /// kernel's minimum custom slice is 100 µs).
        static let requestedSlice: UInt64 = 100_000

        /// The largest datagram read; DHCP over Ethernet stays far below (RFC 2131 asks for 576).
        static let bufferSize = 65_536
        /// How often a blocked read gives up to look at the stop flag, should shutdown(2) not
        /// wake it.
        static let wakeInterval = timeval(tv_sec: 0, tv_usec: 250_000)

        init(fd: CInt, port: Int, core: Core, resolver: ArrivalResolver) {
            self.fd = fd
            self.port = port
            self.core = core
            self.resolver = resolver
        }

        func start(name: String) {
            var timeout = Self.wakeInterval
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let thread = Thread { [self] in
                // Thread.name set from outside does not reach the kernel on Linux.
                clinux_name_thread(name)
                // A DHCP answer takes ~30 µs of CPU; the default EEVDF slice is 3 ms. A short
                // requested slice gives the woken thread an early deadline, so it preempts a
                // busy neighbour on its core sooner. In the bench lab at 10,000/s on a busy
                // machine, p99 fell in 4 of 5 alternating pairs (median 2.6 -> 1.0 ms); on a
                // quiet one the difference is within noise. Older kernels refuse the hint,
                // which costs nothing but that latency.
                let refused = clinux_request_slice(Self.requestedSlice)
                if refused != 0 {
                    core.logger.debug("proxydhcp: kernel did not take the short scheduler slice", metadata: ["errno": "\(refused)"])
                }
                run()
                finished.signal()
            }
            thread.name = name
            self.thread = thread
            thread.start()
        }

        /// Stops the thread and waits until it no longer touches the socket; the caller closes it.
        func stop() async {
            stopping.withLockedValue { $0 = true }
            // Wakes a recvmsg blocked on this socket (ENOTCONN for unconnected UDP is expected).
            _ = Glibc.shutdown(fd, CInt(SHUT_RDWR))
            guard thread != nil else { return }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                DispatchQueue.global().async {
                    self.finished.wait()
                    continuation.resume()
                }
            }
        }

        private func run() {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.bufferSize, alignment: 16)
            // cmsghdr (16 bytes on 64-bit Linux) + in_pktinfo (12), with room to spare.
            let control = UnsafeMutableRawBufferPointer.allocate(byteCount: 128, alignment: 16)
            defer {
                buffer.deallocate()
                control.deallocate()
            }
            let allocator = ByteBufferAllocator()
            // Reused for every request and reply: clear() keeps the storage (the parser copies
            // what it keeps, so nothing holds on to the request bytes).
            var incoming = allocator.buffer(capacity: 1_500)
            var outgoing = allocator.buffer(capacity: 1_500)
            var failuresInARow = 0
            while !stopping.withLockedValue({ $0 }) {
                let (received, source, packetInfo) = Self.receive(fd: fd, into: buffer, control: control)
                if received < 0 {
                    let error = errno
                    if error == EAGAIN || error == EWOULDBLOCK || error == EINTR { continue }
                    failuresInARow += 1
                    core.logger.debug("proxydhcp receive failed", metadata: ["port": "\(port)", "errno": "\(error)"])
                    // A persistent error must not spin a core: back off, bounded.
                    if failuresInARow > 3 { usleep(useconds_t(min(failuresInARow, 100) * 1_000)) }
                    continue
                }
                failuresInARow = 0
                if stopping.withLockedValue({ $0 }) { break }
                guard source.sin_family == sa_family_t(AF_INET) else { continue }
                let arrival = resolver.resolve(interfaceIndex: packetInfo?.interfaceIndex, destination: packetInfo?.destination)
                incoming.clear()
                incoming.writeBytes(UnsafeRawBufferPointer(rebasing: buffer[0..<received]))
                guard let reply = core.process(
                    incoming, source: IPv4Address(rawValue: UInt32(bigEndian: source.sin_addr.s_addr)),
                    sourcePort: Int(UInt16(bigEndian: source.sin_port)), port: port,
                    interface: arrival.interface, serverAddress: arrival.address) else { continue }
                outgoing.clear()
                reply.message.encode(into: &outgoing)
                if let error = Self.sendto(fd: fd, outgoing, to: reply.destination, port: reply.destinationPort) {
                    core.countSendFailure(error, to: "\(reply.destination):\(reply.destinationPort)")
                }
            }
        }

        /// One recvmsg(2) into `buffer`, with the sender's address and the IP_PKTINFO facts.
        /// The count is recvmsg's (negative on error, errno set).
        static func receive(
            fd: CInt, into buffer: UnsafeMutableRawBufferPointer, control: UnsafeMutableRawBufferPointer
        ) -> (count: Int, source: sockaddr_in, packetInfo: (interfaceIndex: Int, destination: IPv4Address)?) {
            var source = sockaddr_in()
            var iov = iovec(iov_base: buffer.baseAddress, iov_len: buffer.count)
            let (count, controlLength) = withUnsafeMutablePointer(to: &source) { sourcePointer in
                withUnsafeMutablePointer(to: &iov) { iovPointer in
                    var header = msghdr()
                    header.msg_name = UnsafeMutableRawPointer(sourcePointer)
                    header.msg_namelen = socklen_t(MemoryLayout<sockaddr_in>.size)
                    header.msg_iov = iovPointer
                    header.msg_iovlen = 1
                    header.msg_control = control.baseAddress
                    header.msg_controllen = control.count
                    let n = recvmsg(fd, &header, 0)
                    return (n, n >= 0 ? Int(header.msg_controllen) : 0)
                }
            }
            return (count, source, count >= 0 ? packetInfo(control, length: controlLength) : nil)
        }

        /// The IP_PKTINFO control message: arrival interface index and the header's destination
        /// address. Walks the cmsghdr list by hand (the CMSG_* macros do not import into Swift).
        static func packetInfo(_ control: UnsafeMutableRawBufferPointer, length: Int) -> (interfaceIndex: Int, destination: IPv4Address)? {
            let headerSize = MemoryLayout<cmsghdr>.size
            let align = MemoryLayout<Int>.size
            var offset = 0
            while offset + headerSize <= length {
                let header = control.loadUnaligned(fromByteOffset: offset, as: cmsghdr.self)
                let messageLength = Int(header.cmsg_len)
                guard messageLength >= headerSize, offset + messageLength <= length else { return nil }
                if header.cmsg_level == IPPROTO_IP, header.cmsg_type == Self.ipPacketInfo, messageLength >= headerSize + 12 {
                    let index = control.loadUnaligned(fromByteOffset: offset + headerSize, as: Int32.self)
                    // struct in_pktinfo { int ipi_ifindex; in_addr ipi_spec_dst; in_addr ipi_addr; }
                    let destination = control.loadUnaligned(fromByteOffset: offset + headerSize + 8, as: UInt32.self)
                    return (Int(index), IPv4Address(rawValue: UInt32(bigEndian: destination)))
                }
                offset += (messageLength + align - 1) & ~(align - 1)
            }
            return nil
        }

        /// Never fatal: an unreachable relay or a full queue costs that one reply (counted).
        static func sendto(fd: CInt, _ bytes: ByteBuffer, to address: IPv4Address, port: Int) -> SocketError? {
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
            sin.sin_addr.s_addr = address.rawValue.bigEndian
            let sent = bytes.withUnsafeReadableBytes { buffer in
                withUnsafePointer(to: &sin) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        Glibc.sendto(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT), $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
            }
            return sent < 0 ? SocketError(operation: "sendto", errno: errno) : nil
        }

        /// IP_PKTINFO from <linux/in.h>.
        static let ipPacketInfo: Int32 = 8
    }
}
