import CLinux
import Foundation
import Logging
import Metrics
import NIOCore
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// DHCPv6 on UDP 547 (and 4011 for EDK2's follow-up to a boot-only Advertise): a thin
/// adapter around `DHCPv6Responder`.
///
/// Per interface: one socket bound to [::]:547 with SO_BINDTODEVICE that has joined
/// All_DHCP_Relay_Agents_and_Servers (ff02::1:2) on that interface, and one on [::]:4011.
/// With no interfaces, one socket per port on `bindAddress` (::1 for a trial or a test).
/// Each socket is served by threads of its own (`SocketThreads`, which says why); replies go
/// to the sender's address and port: a client's 546, EDK2's 4011, a relay's 547.
public final class DHCPv6Server: Service, @unchecked Sendable {
    public struct Interface: Sendable, Equatable {
        public var name: String
        /// Our global or unique-local address there: the host of `tftp://` URLs and the link a
        /// stateful range serves. nil: the interface has none (bare file names are refused).
        public var address: IPv6Address?
        public init(name: String, address: IPv6Address?) {
            self.name = name
            self.address = address
        }
    }

    public struct Configuration: Sendable {
        public var interfaces: [Interface]
        public var bindAddress: String
        /// [DHCPv6 port, boot-server port]: 547 and 4011 unless a test says otherwise (0: the
        /// kernel picks; the entry's place says its role).
        public var ports: [Int]
        public var networkNamespace: String?
        public var responder: DHCPv6Responder
        /// Threads per socket, each receiving, deciding and answering.
        public var deciders: Int

        public init(interfaces: [Interface] = [], bindAddress: String = "::1", ports: [Int] = [547, 4011],
                    networkNamespace: String? = nil, responder: DHCPv6Responder, deciders: Int = 2) {
            self.interfaces = interfaces
            self.bindAddress = bindAddress
            self.ports = ports
            self.networkNamespace = networkNamespace
            self.responder = responder
            self.deciders = deciders
        }
    }

    public struct Statistics: Sendable, Equatable {
        public var received = 0
        public var answered = 0
        public var malformed = 0
        public var silenced: [DHCPv6Responder.Silence: Int] = [:]
        public var sendFailures = 0
        public var accountedFor: Int { answered + malformed + sendFailures + silenced.values.reduce(0, +) }
    }

    public let configuration: Configuration
    let core: Core
    private let lock = NSLock()
    private var sockets: [SocketThreads] = []
    private var _listening: [ListeningAddress] = []
    private let onServerRunning: OnServerRunning?

    public init(configuration: Configuration, decider: BootDecider, events: BootEventSink = NoEventSink(), logger: Logger,
                onServerRunning: OnServerRunning? = nil) {
        self.configuration = configuration
        self.core = Core(responder: configuration.responder, decider: decider, events: events, logger: logger)
        self.onServerRunning = onServerRunning
    }

    public var statistics: Statistics { core.statistics }
    public var listening: [ListeningAddress] { lock.withLock { _listening } }

    struct PlannedSocket: Sendable {
        var fd: CInt
        var port: Int
        var role: Int
        var interface: Interface?
        var bindAddress: String
    }

    public func start() async throws {
        let planned = try await Self.openSockets(configuration)
        var started: [SocketThreads] = []
        for socket in planned {
            let t = SocketThreads(socket: socket, core: core, count: max(1, configuration.deciders))
            t.start()
            started.append(t)
        }
        let bound = planned.map { ListeningAddress(host: $0.bindAddress, port: $0.port, interface: $0.interface?.name) }
        lock.withLock {
            sockets = started
            _listening = bound
        }
        core.logger.info("dhcpv6 listening", metadata: ["addresses": "\(bound.map(\.description).joined(separator: " "))"])
        onServerRunning?(bound)
    }

    public func shutdown() async {
        let open = lock.withLock { defer { sockets = [] }; return sockets }
        for t in open { await t.stop() }
        for t in open { close(t.socket.fd) }
    }

    public func run() async throws {
        try await start()
        try? await gracefulShutdown()
        await shutdown()
    }

    /// One socket and the threads that answer it: each blocks in recvfrom(2), decides on its
    /// own thread and answers with sendto(2). No event loop between them: with a NIO channel
    /// and a thread pool, the two hops and NIO's send path were over half of the CPU per
    /// answer in the bench (perf, 30,000 Solicits/s), the Lua decision a tenth. The kernel
    /// hands each datagram to one waiting thread; when all are busy the socket's 4 MiB queue
    /// holds the rest, and past that the kernel drops (counted as UdpRcvbufErrors).
    final class SocketThreads: @unchecked Sendable {
        let socket: PlannedSocket
        let core: Core
        let count: Int
        private let stopping = Atomic<Bool>(false)
        private let exits = ThreadExits()

        init(socket: PlannedSocket, core: Core, count: Int) {
            self.socket = socket
            self.core = core
            self.count = count
        }

        func start() {
            var timeout = timeval(tv_sec: 0, tv_usec: 250_000)  // to look at the stop flag
            _ = setsockopt(socket.fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            for i in 0..<count {
                let name = "bp-dhcp6-\(socket.port)" + (i > 0 ? ".\(i)" : "")
                let thread = Thread { [self] in
                    clinux_name_thread(String(name.prefix(15)))
                    run()
                    exits.exited()
                }
                exits.started()
                thread.start()
            }
        }

        func stop() async {
            stopping.store(true, ordering: .releasing)
            _ = Glibc.shutdown(socket.fd, CInt(SHUT_RDWR))
            await exits.wait()
        }

        private func run() {
            let fd = socket.fd
            // Our address for URLs: the interface's, else the one bound (never the wildcard).
            let ours = socket.interface?.address ?? IPv6Address(socket.bindAddress).flatMap { $0.isAny ? nil : $0 }
            let port = socket.role == 0 ? 547 : 4011
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while !stopping.load(ordering: .acquiring) {
                var from = sockaddr_in6()
                var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
                let n = buffer.withUnsafeMutableBytes { b in
                    withUnsafeMutablePointer(to: &from) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, b.baseAddress, b.count, 0, $0, &length) }
                    }
                }
                guard n > 0, from.sin6_family == sa_family_t(AF_INET6) else { continue }
                let source = withUnsafeBytes(of: from.sin6_addr) { IPv6Address(bytes: $0)! }
                let arrival = DHCPv6Responder.Arrival(port: port, interface: socket.interface?.name, source: source,
                                                      sourcePort: Int(UInt16(bigEndian: from.sin6_port)), serverAddress: ours)
                guard let reply = core.process(Array(buffer[..<n]), arrival: arrival) else { continue }
                // To the sender (its scope id kept for a link-local one), at the port the reply names.
                var to = from
                if reply.destination != source {
                    withUnsafeMutableBytes(of: &to.sin6_addr) { raw in for (i, b) in reply.destination.bytes.enumerated() { raw[i] = b } }
                }
                to.sin6_port = in_port_t(UInt16(reply.destinationPort).bigEndian)
                let bytes = reply.bytes
                let sent = bytes.withUnsafeBytes { b in
                    withUnsafePointer(to: &to) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, b.baseAddress, b.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
                    }
                }
                if sent == bytes.count {
                    core.countSent(reply.packet.message.type)
                } else {
                    core.countSendFailure(ProxyDHCPServer.SocketError(operation: "sendto", errno: errno), to: "[\(reply.destination)]:\(reply.destinationPort)")
                }
            }
        }
    }

    // MARK: sockets

    static func openSockets(_ configuration: Configuration) async throws -> [PlannedSocket] {
        try await ProxyDHCPServer.inNetworkNamespace(configuration.networkNamespace) { try makeSockets(configuration) }
    }

    static func makeSockets(_ configuration: Configuration) throws -> [PlannedSocket] {
        var sockets: [PlannedSocket] = []
        do {
            let targets: [(Interface?, String)] = configuration.interfaces.isEmpty
                ? [(nil, configuration.bindAddress)] : configuration.interfaces.map { ($0, "::") }
            for (interface, address) in targets {
                for (role, port) in configuration.ports.enumerated() {
                    let fd = try makeSocket(address: address, port: port, interface: interface?.name, joinGroup: role == 0)
                    sockets.append(PlannedSocket(fd: fd, port: boundPort(fd) ?? port, role: role, interface: interface, bindAddress: address))
                }
            }
        } catch {
            for s in sockets { close(s.fd) }
            throw error
        }
        return sockets
    }

    static func makeSocket(address: String, port: Int, interface: String?, joinGroup: Bool) throws -> CInt {
        func failure(_ step: String?, _ e: Int32) -> ListenerBindError {
            ListenerBindError(service: "dhcpv6", host: address, port: port, interface: interface, step: step, errno: e)
        }
        guard let ip = IPv6Address(address) else {
            var e = ListenerBindError(service: "dhcpv6", host: address, port: port, interface: interface, step: nil, errno: EINVAL)
            e.reason = "not an IPv6 address"
            throw e
        }
        let fd = socket(AF_INET6, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw failure("socket", errno) }
        func option(_ level: Int32, _ name: Int32, _ what: String) throws {
            var one: CInt = 1
            guard setsockopt(fd, level, name, &one, socklen_t(MemoryLayout<CInt>.size)) == 0 else {
                let e = errno
                close(fd)
                throw failure(what, e)
            }
        }
        try option(Int32(IPPROTO_IPV6), IPV6_V6ONLY, "IPV6_V6ONLY")
        // A rack powering on: room for its Solicits while the answering threads catch up.
        ProxyDHCPServer.enlargeReceiveBuffer(fd)
        if port != 0 { try option(SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR") }
        var index: UInt32 = 0
        if let interface {
            index = if_nametoindex(interface)
            let ok = interface.withCString { setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, $0, socklen_t(strlen($0) + 1)) == 0 }
            guard ok else {
                let e = errno
                close(fd)
                throw failure("SO_BINDTODEVICE", e)
            }
        }
        var sin = sockaddr_in6()
        sin.sin6_family = sa_family_t(AF_INET6)
        sin.sin6_port = in_port_t(UInt16(port).bigEndian)
        withUnsafeMutableBytes(of: &sin.sin6_addr) { raw in
            for (i, b) in ip.bytes.enumerated() { raw[i] = b }
        }
        if ip.isLinkLocal { sin.sin6_scope_id = index }
        let rc = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
        }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw failure(nil, e)
        }
        if joinGroup, index != 0 {
            // Clients send to ff02::1:2 on their link (RFC 8415 §7.1).
            var request = ipv6_mreq()
            withUnsafeMutableBytes(of: &request.ipv6mr_multiaddr) { raw in
                for (i, b) in IPv6Address.allDHCPAgents.bytes.enumerated() { raw[i] = b }
            }
            request.ipv6mr_interface = index
            guard setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_ADD_MEMBERSHIP, &request, socklen_t(MemoryLayout<ipv6_mreq>.size)) == 0 else {
                let e = errno
                close(fd)
                throw failure("IPV6_ADD_MEMBERSHIP ff02::1:2", e)
            }
        }
        return fd
    }

    static func boundPort(_ fd: CInt) -> Int? {
        var sin = sockaddr_in6()
        var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        let rc = withUnsafeMutablePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return rc == 0 ? Int(UInt16(bigEndian: sin.sin6_port)) : nil
    }

    // MARK: per-packet work

    /// Decode, screen, decide, answer; counted and logged exactly once per datagram.
    final class Core: @unchecked Sendable {
        let responder: DHCPv6Responder
        let decider: BootDecider
        let events: BootEventSink
        let logger: Logger
        private let lock = NSLock()
        private var stats = Statistics()
        private let receivedCounter = Counter(label: "bootpolicy_dhcp6_requests_total")
        private let replyCounters: [DHCPv6MessageType: Counter] = [
            .advertise: Counter(label: "bootpolicy_dhcp6_replies_total", dimensions: [("type", "advertise")]),
            .reply: Counter(label: "bootpolicy_dhcp6_replies_total", dimensions: [("type", "reply")]),
        ]
        private let dropped: [String: Counter]
        private let sendFailureCounter = Counter(label: "bootpolicy_dhcp6_send_failures_total")

        init(responder: DHCPv6Responder, decider: BootDecider, events: BootEventSink, logger: Logger) {
            self.responder = responder
            self.decider = decider
            self.events = events
            self.logger = logger
            var d = ["malformed": Counter(label: "bootpolicy_dhcp6_dropped_total", dimensions: [("reason", "malformed")])]
            for r in DHCPv6Responder.Silence.allCases {
                d[r.rawValue] = Counter(label: "bootpolicy_dhcp6_dropped_total", dimensions: [("reason", r.rawValue)])
            }
            dropped = d
        }

        var statistics: Statistics { lock.withLock { stats } }

        func countSent(_ type: DHCPv6MessageType) {
            lock.withLock { stats.answered += 1 }
            replyCounters[type]?.increment()
        }

        func countSendFailure(_ error: Error, to destination: String) {
            lock.withLock { stats.sendFailures += 1 }
            sendFailureCounter.increment()
            logger.warning("dhcpv6 send failed", metadata: ["to": "\(destination)", "error": "\(error)"])
        }

        func silence(_ reason: DHCPv6Responder.Silence) {
            lock.withLock { stats.silenced[reason, default: 0] += 1 }
            dropped[reason.rawValue]?.increment()
        }

        func process(_ bytes: [UInt8], arrival: DHCPv6Responder.Arrival) -> DHCPv6Responder.Reply? {
            lock.withLock { stats.received += 1 }
            receivedCounter.increment()
            let packet: DHCPv6Packet
            do {
                packet = try DHCPv6Packet(bytes: bytes)
            } catch {
                lock.withLock { stats.malformed += 1 }
                dropped["malformed"]?.increment()
                logger.debug("dhcpv6 dropped malformed packet", metadata: [
                    "from": "[\(arrival.source)]:\(arrival.sourcePort)", "error": "\(error)"])
                return nil
            }
            // Built only for what needs it (a decision, a log line that is written, an event):
            // most packets a busy link brings are screened out before.
            lazy var request = BootRequest(dhcpv6: packet, source: arrival.source, interface: arrival.interface, serverPort: arrival.port)
            let screened = responder.screen(packet, arrival: arrival)
            var decision: BootDecision?
            let outcome: DHCPv6Responder.Outcome
            switch screened {
            case let .failure(reason):
                outcome = .init(result: .failure(reason))
            case let .success(s):
                if s.netboot, s.packet.message.type != .release, s.packet.message.type != .decline, s.packet.message.type != .confirm {
                    var r = request
                    r.serverAddress = arrival.serverAddress?.description
                    // With the datagram: the decision journal keeps the DHCPv6 message itself.
                    decision = decider.decide(r, datagram: ByteBuffer(bytes: bytes))
                }
                outcome = responder.answer(s, arrival: arrival, decision: decision, mac: request.mac)
            }
            // Inside the log calls' autoclosures: with info off it costs nothing per packet.
            func head() -> String {
                "DHCPv6(\(arrival.interface ?? "-")) \(request.messageType ?? "?") \(request.mac.isEmpty ? (request.duid ?? "-") : request.mac) arch=\(request.arch ?? "-") firmware=\(request.firmware.rawValue)"
            }
            switch outcome.result {
            case let .failure(reason):
                silence(reason)
                let level: Logger.Level = (reason == .ignoredByPolicy || reason == .noDecision || reason == .noServerAddress
                                           || reason == .poolExhausted || reason == .replyTooLarge) ? .info : .debug
                logger.log(level: level, "\(head()) -> silent (\(reason.rawValue))", metadata: ["policy": "\(decision?.policy ?? "-")"])
                if reason == .ignoredByPolicy || reason == .noDecision { record(request, decision, end: reason.rawValue, outcome: reason.rawValue) }
                return nil
            case let .success(reply):
                if outcome.mark != 0, let pool = responder.pool, !pool.journal.awaitDurable(through: outcome.mark) {
                    silence(.stateNotDurable)
                    logger.warning("\(head()) -> silent (state_not_durable): the binding could not be made durable in time")
                    return nil
                }
                logger.info("\(head()) -> \(reply.packet.message.type.name.uppercased())\(reply.address.map { " \($0)" } ?? "") url=\(reply.bootFileURL ?? "-") to [\(reply.destination)]:\(reply.destinationPort)",
                            metadata: ["policy": "\(decision?.policy ?? "-")"])
                record(request, decision, end: reply.bootFileURL ?? "-", outcome: "answered")
                return reply
            }
        }

        func record(_ request: BootRequest, _ decision: BootDecision?, end: String, outcome: String) {
            guard !request.mac.isEmpty else { return }
            events.record(BootEvent(
                mac: request.mac, clientAddress: request.clientAddress, arch: request.arch ?? "",
                firmware: request.firmware.rawValue, policy: decision?.policy, file: decision?.filename,
                dhcp: .init(interface: request.interface, port: request.serverPort ?? 547, type: request.messageType,
                            end: end, outcome: outcome)))
        }
    }
}
