import CLinux
import Foundation
import Logging
import NIOCore
import Synchronization

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

    /// One socket served by its own threads: recvmmsg(2) with IP_PKTINFO, the shared `Core`,
    /// and sendto(2) or sendmmsg(2) of the replies.
    ///
    /// Why not a NIO channel: at 10,000 DISCOVERs/s a packet arrives every 100 µs, so an event
    /// loop sleeps in epoll_wait after nearly every one and then reads until EAGAIN: three
    /// system calls and NIO's envelope, pipeline and allocation per packet. Measured in the
    /// bench lab (bench/ab_cpu.py), that machinery was a sixth of the server's CPU per answer
    /// and kept it far above dnsmasq's, which does one poll, one recvmsg and one sendmsg.
    /// A thread that blocks in the receive call needs one call to wait and read.
    ///
    /// Below saturation that is all there is: the first thread waits in recvmmsg for one
    /// datagram and answers it with sendto. When a read shows it is behind (a rack powering
    /// on), the next one, with MSG_WAITFORONE, returns what is already queued, up to `batch`,
    /// and the replies go out in one sendmmsg. A batch of at least
    /// `helpAt` datagrams also wakes a helper thread, which reads the same socket without
    /// waiting until it finds it empty, then sleeps again; a helper that is itself behind wakes
    /// the next one. Helpers never wait in the socket themselves, so at ordinary rates only the
    /// first thread is woken, with its Lua state and caches warm.
    ///
    /// The threads do not know the protocol: each asks `makeAnswer` once for the function that
    /// answers what it read (`Answerer` here, `DHCPv6Server.BatchAnswerer` for DHCPv6).
    final class ReceiveThread: @unchecked Sendable {
        /// One thread's answering of the `count` datagrams in a batch it read. Called on that
        /// thread only, so it may keep buffers of its own from one call to the next.
        typealias Answer = (_ batch: OpaquePointer, _ count: Int) -> Void

        let fd: CInt
        let port: Int
        /// The head of the threads' log lines ("proxydhcp", "dhcpv6").
        let label: String
        let logger: Logger
        /// This socket's largest datagram read whole.
        let slotSize: Int
        private let makeAnswer: @Sendable () -> Answer
        private let helperWoken: @Sendable () -> Void
        private let stopping = Atomic<Bool>(false)
        /// The threads `start` started, for `stop` to wait for.
        private let exits = ThreadExits()
        /// Threads besides the first that may read this socket when it falls behind.
        private let helpers: [Helper]

        /// A helper's wake-up: `idle` is true while it sleeps, and whoever flips it to false
        /// owes it one signal.
        final class Helper: Sendable {
            let idle = Atomic<Bool>(false)
            let wake = DispatchSemaphore(value: 0)

            /// True when this call woke it.
            func wakeIfIdle() -> Bool {
                guard idle.compareExchange(expected: true, desired: false, ordering: .acquiringAndReleasing).exchanged else { return false }
                wake.signal()
                return true
            }
        }

        /// Nanoseconds of CPU the receive thread asks the scheduler for per turn (the
        /// kernel's minimum custom slice is 100 µs).
        static let requestedSlice: UInt64 = 100_000

        /// The largest datagram read whole: a jumbo frame's. DHCP stays far below (RFC 2131
        /// asks for 576); a longer one arrives cut and is dropped as malformed.
        static let slotSize = 9_216
        /// Datagrams taken per call when they are already queued.
        static let batch = 16
        /// A batch this large means the thread is behind: wake a helper.
        static let helpAt = 8
        /// A read that returns sooner than this found its datagram queued (a thread that slept
        /// takes longer to wake): the next read asks for a batch.
        static let queuedWithin: UInt64 = 5_000
        /// How often a blocked read gives up to look at the stop flag, should shutdown(2) not
        /// wake it.
        static let wakeInterval = timeval(tv_sec: 0, tv_usec: 250_000)

        /// A DHCPv4 socket's: `Core` answers each datagram.
        convenience init(fd: CInt, port: Int, core: Core, resolver: ArrivalResolver, helpers: Int = 0) {
            let answerer = Answerer(fd: fd, port: port, core: core, resolver: resolver)
            self.init(fd: fd, port: port, label: "proxydhcp", logger: core.logger, helpers: helpers,
                      helperWoken: { core.countHelperWakeup() },
                      makeAnswer: {
                          var work = Answerer.Work()
                          return { batch, count in answerer.answer(batch, count: count, work: &work) }
                      })
        }

        init(fd: CInt, port: Int, label: String, logger: Logger, slotSize: Int = ReceiveThread.slotSize, helpers: Int,
             helperWoken: @escaping @Sendable () -> Void, makeAnswer: @escaping @Sendable () -> Answer) {
            self.fd = fd
            self.port = port
            self.label = label
            self.logger = logger
            self.slotSize = slotSize
            self.helperWoken = helperWoken
            self.makeAnswer = makeAnswer
            self.helpers = (0..<max(0, helpers)).map { _ in Helper() }
        }

        /// `helperName` names helper `i` (from 0); by default, for a `bp-dhcp-` name, the
        /// helper's number goes early ("bp-dhcp1-67-eth0"): kernel thread names keep 15 bytes,
        /// and a long interface name cannot cut it off there.
        func start(name: String, helperName: ((Int) -> String)? = nil) {
            var timeout = Self.wakeInterval
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            for index in -1..<helpers.count {
                let threadName = index < 0 ? name
                    : helperName?(index) ?? name.replacingOccurrences(of: "bp-dhcp-", with: "bp-dhcp\(index + 1)-")
                let thread = Thread { [self] in
                    // Thread.name set from outside does not reach the kernel on Linux.
                    clinux_name_thread(threadName)
                    // A DHCP answer takes ~30 µs of CPU; the default EEVDF slice is 3 ms. A short
                    // requested slice gives the woken thread an early deadline, so it preempts a
                    // busy neighbour on its core sooner. In the bench lab at 10,000/s on a busy
                    // machine, p99 fell in 4 of 5 alternating pairs (median 2.6 -> 1.0 ms); on a
                    // quiet one the difference is within noise. Older kernels refuse the hint,
                    // which costs nothing but that latency.
                    let refused = clinux_request_slice(Self.requestedSlice)
                    if refused != 0, index < 0 {
                        logger.debug("\(label): kernel did not take the short scheduler slice", metadata: ["errno": "\(refused)"])
                    }
                    run(helper: index)
                    exits.exited()
                }
                thread.name = threadName
                exits.started()
                thread.start()
            }
        }

        /// Stops the threads and waits until none touches the socket; the caller closes it.
        func stop() async {
            stopping.store(true, ordering: .releasing)
            // Wakes a recvmmsg blocked on this socket (ENOTCONN for unconnected UDP is expected).
            _ = Glibc.shutdown(fd, CInt(SHUT_RDWR))
            for helper in helpers { helper.wake.signal() }
            await exits.wait()
        }

        private var isStopping: Bool { stopping.load(ordering: .acquiring) }

        /// The first thread (`helper` -1) waits in the socket; helper `i` waits to be woken.
        private func run(helper index: Int) {
            guard let batch = clinux_batch_create(CInt(Self.batch), CInt(slotSize)) else {
                logger.error("\(label): cannot allocate a receive batch", metadata: ["port": "\(port)"])
                return
            }
            defer { clinux_batch_free(batch) }
            let answer = makeAnswer()
            if index >= 0 {
                let me = helpers[index]
                let next = index + 1 < helpers.count ? helpers[index + 1] : nil
                while !isStopping {
                    me.idle.store(true, ordering: .releasing)
                    // stop() signals every helper after setting the flag: no timeout needed.
                    me.wake.wait()
                    if isStopping { break }
                    // Drain without waiting; the first thread keeps waiting in the socket.
                    while !isStopping {
                        let count = Int(clinux_batch_receive(batch, fd, 0, CInt(Self.batch)))
                        guard count > 0 else { break }
                        if count >= Self.helpAt, next?.wakeIfIdle() == true { helperWoken() }
                        answer(batch, count)
                    }
                }
                return
            }
            var failuresInARow = 0
            // Whether the last read suggests a backlog: only then is a batch asked for. With
            // room for one datagram recvmmsg stops there; with more it tries the queue again
            // after the first, which finds it empty at ordinary rates and costs a little.
            var behind = false
            while !isStopping {
                let calledAt = clinux_monotonic_ns()
                let count = Int(clinux_batch_receive(batch, fd, 1, behind ? CInt(Self.batch) : 1))
                if count < 0 {
                    let error = errno
                    if error == EAGAIN || error == EWOULDBLOCK || error == EINTR { continue }
                    failuresInARow += 1
                    logger.debug("\(label) receive failed", metadata: ["port": "\(port)", "errno": "\(error)"])
                    // A persistent error must not spin a core: back off, bounded.
                    if failuresInARow > 3 { usleep(useconds_t(min(failuresInARow, 100) * 1_000)) }
                    continue
                }
                failuresInARow = 0
                if isStopping { break }
                if count > 1 {
                    behind = true
                } else if behind {
                    behind = false  // a batch found only one: caught up
                } else if clinux_monotonic_ns() &- calledAt < Self.queuedWithin {
                    behind = true  // no sleep in between: the datagram was already waiting
                }
                if count >= Self.helpAt, helpers.first?.wakeIfIdle() == true { helperWoken() }
                answer(batch, count)
            }
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

    /// What a DHCPv4 socket's receive threads do with a batch: `Core` decides each datagram,
    /// the replies go out together.
    final class Answerer: @unchecked Sendable {
        let fd: CInt
        let port: Int
        let core: Core
        let resolver: ArrivalResolver

        init(fd: CInt, port: Int, core: Core, resolver: ArrivalResolver) {
            self.fd = fd
            self.port = port
            self.core = core
            self.resolver = resolver
        }

        /// One thread's reusable buffers: clear() keeps their storage (the parser copies what
        /// it keeps, so nothing holds on to the request bytes).
        struct Work {
            var incoming = ByteBufferAllocator().buffer(capacity: 1_500)
            /// The batch's replies, one after another.
            var outgoing = ByteBufferAllocator().buffer(capacity: 4_096)
            var replies: [(offset: Int, length: Int, address: IPv4Address, port: Int, commit: UInt64, lease: UInt64, type: DHCPMessageType?)] = []
            var errors = [CInt](repeating: 0, count: ReceiveThread.batch)

            init() { replies.reserveCapacity(ReceiveThread.batch) }
        }

        /// Answers the `count` datagrams in `batch`, then sends the replies: one sendto for one,
        /// one sendmmsg for several. Replies whose decisions changed durable state wait for one
        /// commit together, so a batch costs one disk sync, not one per reply.
        func answer(_ batch: OpaquePointer, count: Int, work: inout Work) {
            if count > 1 { core.countBacklog(count) }
            work.outgoing.clear()
            work.replies.removeAll(keepingCapacity: true)
            for i in 0..<count {
                let datagram = clinux_batch_datagram(batch, CInt(i)).pointee
                guard datagram.family == sa_family_t(AF_INET) else { continue }
                let source = IPv4Address(rawValue: UInt32(bigEndian: datagram.source))
                let sourcePort = Int(UInt16(bigEndian: datagram.source_port))
                if datagram.truncated != 0 {
                    core.countOversized(from: source, port: sourcePort, arrivalPort: port)
                    continue
                }
                let arrival = resolver.resolve(
                    interfaceIndex: datagram.interface_index >= 0 ? Int(datagram.interface_index) : nil,
                    destination: datagram.interface_index >= 0 ? IPv4Address(rawValue: UInt32(bigEndian: datagram.destination)) : nil)
                work.incoming.clear()
                work.incoming.writeBytes(UnsafeRawBufferPointer(start: clinux_batch_bytes(batch, CInt(i)), count: Int(datagram.length)))
                var commit: UInt64 = 0
                var lease: UInt64 = 0
                guard let reply = core.process(
                    work.incoming, source: source, sourcePort: sourcePort, port: port,
                    interface: arrival.interface, serverAddress: arrival.address, holding: &commit, lease: &lease) else { continue }
                let offset = work.outgoing.writerIndex
                reply.message.encode(into: &work.outgoing)
                work.replies.append((offset, work.outgoing.writerIndex - offset, reply.destination, reply.destinationPort, commit, lease,
                                     reply.message.messageType))
            }
            let commit = work.replies.lazy.map(\.commit).max() ?? 0
            let lease = work.replies.lazy.map(\.lease).max() ?? 0
            if commit != 0 || lease != 0, !core.awaitDurable(commit: commit, lease: lease) {
                // Nothing that depended on the commit may leave; answers that changed nothing may.
                let before = work.replies.count
                work.replies.removeAll { $0.commit != 0 || $0.lease != 0 }
                core.withdraw(before - work.replies.count)
            }
            core.countAnswering(work.replies.count)
            if work.replies.count == 1 {
                let reply = work.replies[0]
                if let error = ReceiveThread.sendto(fd: fd, work.outgoing, to: reply.address, port: reply.port) {
                    core.countSendFailure(error, to: "\(reply.address):\(reply.port)")
                } else {
                    core.countSent(reply.type)
                }
            } else if work.replies.count > 1 {
                let failed = work.outgoing.withUnsafeReadableBytes { bytes in
                    let outgoing = work.replies.map { reply in
                        clinux_outgoing(bytes: bytes.baseAddress! + reply.offset, length: CInt(reply.length),
                                        address: reply.address.rawValue.bigEndian,
                                        port: UInt16(truncatingIfNeeded: reply.port).bigEndian)
                    }
                    return work.errors.withUnsafeMutableBufferPointer { errors in
                        clinux_send_datagrams(fd, outgoing, CInt(outgoing.count), errors.baseAddress)
                    }
                }
                for (i, reply) in work.replies.enumerated() {
                    if failed > 0, work.errors[i] != 0 {
                        core.countSendFailure(SocketError(operation: "sendmmsg", errno: work.errors[i]),
                                              to: "\(reply.address):\(reply.port)")
                    } else {
                        core.countSent(reply.type)
                    }
                }
            }
        }
    }
}
