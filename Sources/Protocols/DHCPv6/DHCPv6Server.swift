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

    /// One socket and the threads that answer it: `ProxyDHCPServer.ReceiveThread`, the DHCPv4
    /// server's, which says why. The first thread blocks in recvmmsg(2) for one datagram and
    /// answers it with sendto(2); behind, it reads what is queued (up to 16) in one call and
    /// sends the replies in one sendmmsg(2), and a large batch wakes a helper. Before, each of
    /// `deciders` threads did recvfrom, decide, sendto: two system calls per Solicit, and at
    /// saturation both threads woke for every datagram. No queue of our own: when the threads
    /// are behind the socket's 4 MiB queue holds the rest, and past that the kernel drops
    /// (counted as Udp6RcvbufErrors).
    final class SocketThreads: @unchecked Sendable {
        let socket: PlannedSocket
        let core: Core
        let count: Int
        private let receiver: ProxyDHCPServer.ReceiveThread

        init(socket: PlannedSocket, core: Core, count: Int) {
            self.socket = socket
            self.core = core
            self.count = count
            let answerer = BatchAnswerer(socket: socket, core: core)
            // A DHCPv6 datagram may be as long as UDP allows (a relayed one): read it whole.
            receiver = ProxyDHCPServer.ReceiveThread(
                fd: socket.fd, port: answerer.port, label: "dhcpv6", logger: core.logger, slotSize: 65_536,
                helpers: max(1, count) - 1, helperWoken: {},
                makeAnswer: {
                    var work = BatchAnswerer.Work()
                    return { batch, count in answerer.answer(batch, count: count, work: &work) }
                })
        }

        func start() {
            let name = "bp-dhcp6-\(socket.port)"
            receiver.start(name: name, helperName: { "\(name).\($0 + 1)" })
        }

        func stop() async {
            await receiver.stop()
        }
    }

    /// What a socket's receive threads do with a batch: `Core` decides each datagram, the
    /// replies whose bindings must be durable wait for one commit together (one disk sync a
    /// batch, not one a Reply), then they go out, to each sender (its scope id kept for a
    /// link-local one) at the port the reply names.
    final class BatchAnswerer: @unchecked Sendable {
        let fd: CInt
        let core: Core
        let interface: String?
        /// 547 or 4011: the role of the socket, whatever port it is bound to.
        let port: Int
        /// Our address for URLs: the interface's, else the one bound (never the wildcard).
        let ours: IPv6Address?

        init(socket: PlannedSocket, core: Core) {
            fd = socket.fd
            self.core = core
            interface = socket.interface?.name
            port = socket.role == 0 ? 547 : 4011
            ours = socket.interface?.address ?? IPv6Address(socket.bindAddress).flatMap { $0.isAny ? nil : $0 }
        }

        /// One thread's reusable lists.
        struct Work {
            var decided: [(decided: Core.Decided, scope: UInt32)] = []
            /// The batch's replies, one after another.
            var outgoing: [UInt8] = []
            var replies: [(offset: Int, length: Int, to: IPv6Address, port: Int, scope: UInt32, type: DHCPv6MessageType)] = []
            var errors = [CInt](repeating: 0, count: ProxyDHCPServer.ReceiveThread.batch)

            init() {
                decided.reserveCapacity(ProxyDHCPServer.ReceiveThread.batch)
                replies.reserveCapacity(ProxyDHCPServer.ReceiveThread.batch)
            }
        }

        func answer(_ batch: OpaquePointer, count: Int, work: inout Work) {
            work.decided.removeAll(keepingCapacity: true)
            work.replies.removeAll(keepingCapacity: true)
            work.outgoing.removeAll(keepingCapacity: true)
            for i in 0..<count {
                let datagram = clinux_batch_datagram(batch, CInt(i)).pointee
                guard datagram.length > 0, datagram.family == AF_INET6 else { continue }
                let source = withUnsafeBytes(of: datagram.source6) { IPv6Address(bytes: $0)! }
                let arrival = DHCPv6Responder.Arrival(port: port, interface: interface, source: source,
                                                      sourcePort: Int(UInt16(bigEndian: datagram.source_port)), serverAddress: ours)
                let bytes = [UInt8](UnsafeRawBufferPointer(start: clinux_batch_bytes(batch, CInt(i)), count: Int(datagram.length)))
                guard let decided = core.decide(bytes, arrival: arrival) else { continue }
                if decided.mark == 0 {
                    // Nothing to wait for (every Solicit): finished at once, not kept.
                    if let reply = core.finish(decided, durable: true) { add(reply, scope: datagram.scope_id, to: &work) }
                } else {
                    work.decided.append((decided, datagram.scope_id))
                }
            }
            if !work.decided.isEmpty {
                let durable = core.awaitDurable(through: work.decided.lazy.map(\.decided.mark).max() ?? 0)
                for (decided, scope) in work.decided {
                    if let reply = core.finish(decided, durable: durable) { add(reply, scope: scope, to: &work) }
                }
            }
            if work.replies.count == 1 {
                let reply = work.replies[0]
                var to = sockaddr_in6()
                to.sin6_family = sa_family_t(AF_INET6)
                to.sin6_port = in_port_t(UInt16(truncatingIfNeeded: reply.port).bigEndian)
                to.sin6_scope_id = reply.scope
                withUnsafeMutableBytes(of: &to.sin6_addr) { Self.store(reply.to, in: $0) }
                let sent = work.outgoing.withUnsafeBytes { b in
                    withUnsafePointer(to: &to) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, b.baseAddress, b.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
                    }
                }
                if sent == reply.length {
                    core.countSent(reply.type)
                } else {
                    core.countSendFailure(ProxyDHCPServer.SocketError(operation: "sendto", errno: errno), to: "[\(reply.to)]:\(reply.port)")
                }
            } else if work.replies.count > 1 {
                let failed = work.outgoing.withUnsafeBytes { bytes in
                    let outgoing = work.replies.map { reply in
                        var o = clinux_outgoing6()
                        o.bytes = UnsafeRawPointer(bytes.baseAddress! + reply.offset)
                        o.length = CInt(reply.length)
                        withUnsafeMutableBytes(of: &o.address) { Self.store(reply.to, in: $0) }
                        o.port = UInt16(truncatingIfNeeded: reply.port).bigEndian
                        o.scope_id = reply.scope
                        return o
                    }
                    // Blocking, as the sendto of one reply is.
                    return work.errors.withUnsafeMutableBufferPointer { errors in
                        clinux_send_datagrams6(fd, outgoing, CInt(outgoing.count), 0, errors.baseAddress)
                    }
                }
                for (i, reply) in work.replies.enumerated() {
                    if failed > 0, work.errors[i] != 0 {
                        core.countSendFailure(ProxyDHCPServer.SocketError(operation: "sendmmsg", errno: work.errors[i]),
                                              to: "[\(reply.to)]:\(reply.port)")
                    } else {
                        core.countSent(reply.type)
                    }
                }
            }
        }

        private func add(_ reply: DHCPv6Responder.Reply, scope: UInt32, to work: inout Work) {
            let offset = work.outgoing.count
            work.outgoing.append(contentsOf: reply.bytes)
            work.replies.append((offset, work.outgoing.count - offset, reply.destination, reply.destinationPort, scope,
                                 reply.packet.message.type))
        }

        /// The address's sixteen bytes, in network order, at the start of `raw`.
        static func store(_ address: IPv6Address, in raw: UnsafeMutableRawBufferPointer) {
            raw.storeBytes(of: address.high.bigEndian, toByteOffset: 0, as: UInt64.self)
            raw.storeBytes(of: address.low.bigEndian, toByteOffset: 8, as: UInt64.self)
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

        /// A reply decided, not yet logged or sent: it may have to wait for the binding it made
        /// to be durable (`mark`), together with others of its batch.
        struct Decided {
            var reply: DHCPv6Responder.Reply
            /// The journal mark to wait for; 0: it changed nothing durable.
            var mark: UInt64
            var request: BootRequest
            var decision: BootDecision?
            var arrival: DHCPv6Responder.Arrival
        }

        /// One datagram, all the way: `decide`, then `finish` once what it bound is durable.
        func process(_ bytes: [UInt8], arrival: DHCPv6Responder.Arrival) -> DHCPv6Responder.Reply? {
            guard let decided = decide(bytes, arrival: arrival) else { return nil }
            return finish(decided, durable: decided.mark == 0 || awaitDurable(through: decided.mark))
        }

        /// Whether the pool's journal made everything through `mark` durable in time.
        func awaitDurable(through mark: UInt64) -> Bool {
            guard mark != 0, let pool = responder.pool else { return true }
            return pool.journal.awaitDurable(through: mark)
        }

        /// The datagram's reply, or nil when it gets none (counted and logged here then).
        func decide(_ bytes: [UInt8], arrival: DHCPv6Responder.Arrival) -> Decided? {
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
            func head() -> String { Self.head(request, arrival) }
            switch outcome.result {
            case let .failure(reason):
                silence(reason)
                if reason == .stateNotDurable {
                    // The responder's only such failure: a shared store that did not answer a claim.
                    logger.warning("\(head()) -> silent (state_not_durable): the shared state store did not answer the binding's claim; the client retries",
                                   metadata: ["policy": "\(decision?.policy ?? "-")"])
                } else {
                    let level: Logger.Level = (reason == .ignoredByPolicy || reason == .noDecision || reason == .noServerAddress
                                               || reason == .poolExhausted || reason == .replyTooLarge) ? .info : .debug
                    logger.log(level: level, "\(head()) -> silent (\(reason.rawValue))", metadata: ["policy": "\(decision?.policy ?? "-")"])
                }
                if reason == .ignoredByPolicy || reason == .noDecision { record(request, decision, end: reason.rawValue, outcome: reason.rawValue) }
                return nil
            case let .success(reply):
                return Decided(reply: reply, mark: outcome.mark, request: request, decision: decision, arrival: arrival)
            }
        }

        /// A decided reply once its batch's commit is over: logged, recorded and returned to be
        /// sent, or, when what it bound is not `durable`, silenced.
        func finish(_ decided: Decided, durable: Bool) -> DHCPv6Responder.Reply? {
            let reply = decided.reply
            guard durable else {
                silence(.stateNotDurable)
                logger.warning("\(Self.head(decided.request, decided.arrival)) -> silent (state_not_durable): the binding could not be made durable in time")
                return nil
            }
            logger.info("\(Self.head(decided.request, decided.arrival)) -> \(reply.packet.message.type.name.uppercased())\(reply.address.map { " \($0)" } ?? "") url=\(reply.bootFileURL ?? "-") to [\(reply.destination)]:\(reply.destinationPort)",
                        metadata: ["policy": "\(decided.decision?.policy ?? "-")"])
            record(decided.request, decided.decision, end: reply.bootFileURL ?? "-", outcome: "answered")
            return reply
        }

        static func head(_ request: BootRequest, _ arrival: DHCPv6Responder.Arrival) -> String {
            "DHCPv6(\(arrival.interface ?? "-")) \(request.messageType ?? "?") \(request.mac.isEmpty ? (request.duid ?? "-") : request.mac) arch=\(request.arch ?? "-") firmware=\(request.firmware.rawValue)"
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
