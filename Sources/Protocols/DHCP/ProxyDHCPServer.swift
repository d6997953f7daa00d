import CLinux
import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// ProxyDHCP on UDP 67 and 4011: a thin adapter around `ProxyDHCPResponder`.
/// One socket per (port, interface) - or per port on a bind address - with IP_PKTINFO to
/// learn the arrival interface, SO_BROADCAST, and SO_BINDTODEVICE so broadcast replies leave
/// through the interface the request came in on. Each socket is served by its own threads
/// (`ReceiveThread`, which says why); `Handler` runs the same `Core` inside a NIO pipeline.
public final class ProxyDHCPServer: Service, @unchecked Sendable {
    public struct Configuration: Sendable {
        /// Interface names to serve (sockets bound to 0.0.0.0 with SO_BINDTODEVICE).
        public var interfaces: [String]
        /// Used when `interfaces` is empty: one socket per port on this address.
        public var bindAddress: String
        public var ports: [Int]
        /// `/var/run/netns/NAME` (or any netns file): sockets are created inside that network
        /// namespace (tests and the lab).
        public var networkNamespace: String?
        /// Our address for option 54/siaddr when the interface has none we can find.
        public var serverAddress: IPv4Address?
        /// Which of `ports` is the PXE boot-server port (4011 semantics); every other port is
        /// treated as 67. Lets tests run on unprivileged ports.
        public var pxePort: Int
        /// Which entry of `ports` (by index) has 4011 semantics, for a port 0 whose number
        /// cannot say; nil: only `pxePort` decides.
        public var pxePortIndex: Int?
        public var responder: ProxyDHCPResponder
        /// Threads that may answer one socket: the first waits in it, the others are woken
        /// only when it falls behind (`ReceiveThread`).
        public var threadsPerSocket: Int
        /// Full DHCP for the subnets of its ranges (`--dhcp-range`); nil: ProxyDHCP only.
        public var fullDHCP: FullDHCPResponder?
        /// Answer PXE requests from subnets full DHCP does not serve as a ProxyDHCP server
        /// (false: `--no-proxy`, such requests are silenced as `not_served`).
        public var proxy: Bool

        /// One per core, at most 4: past that the socket's own queue is the limit.
        public static var defaultThreadsPerSocket: Int { min(4, max(1, ProcessInfo.processInfo.activeProcessorCount)) }

        public init(
            interfaces: [String] = [], bindAddress: String = "127.0.0.1", ports: [Int] = [67, 4011],
            networkNamespace: String? = nil, serverAddress: IPv4Address? = nil, pxePort: Int = 4011, pxePortIndex: Int? = nil,
            responder: ProxyDHCPResponder = ProxyDHCPResponder(), threadsPerSocket: Int = Configuration.defaultThreadsPerSocket,
            fullDHCP: FullDHCPResponder? = nil, proxy: Bool = true
        ) {
            self.fullDHCP = fullDHCP
            self.proxy = proxy
            self.threadsPerSocket = threadsPerSocket
            self.pxePort = pxePort
            self.pxePortIndex = pxePortIndex
            self.interfaces = interfaces
            self.bindAddress = bindAddress
            self.ports = ports
            self.networkNamespace = networkNamespace
            self.serverAddress = serverAddress
            self.responder = responder
        }
    }

    /// What the server has done so far (also exported as swift-metrics counters).
    public struct Statistics: Sendable, Equatable {
        public var received = 0
        /// Replies sent (the kernel took them).
        public var answered = 0
        public var malformed = 0
        public var silenced: [ProxyDHCPResponder.Silence: Int] = [:]
        public var sendFailures = 0
        /// Datagrams read in a batch of more than one: they found the server behind.
        public var backlogged = 0
        /// Times a helper thread was woken for a backlog.
        public var helperWakeups = 0
        /// Every received datagram is exactly one of answered, malformed, silenced, or a reply
        /// that could not be sent.
        public var accountedFor: Int { answered + malformed + sendFailures + silenced.values.reduce(0, +) }
    }

    enum State {
        case idle
        case running([ReceiveThread])
        case stopped
    }

    public let configuration: Configuration
    let core: Core
    private let lock = NSLock()
    private var state = State.idle
    private var _listening: [ListeningAddress] = []
    let onServerRunning: OnServerRunning?

    public init(
        configuration: Configuration, decider: BootDecider, events: BootEventSink = NoEventSink(), logger: Logger,
        onServerRunning: OnServerRunning? = nil
    ) {
        self.configuration = configuration
        self.core = Core(responder: configuration.responder, decider: decider, events: events, logger: logger,
                         full: configuration.fullDHCP, proxy: configuration.proxy)
        self.onServerRunning = onServerRunning
    }

    /// "address:port%interface" for every socket, after `start()`.
    public var boundAddresses: [String] { listening.map(\.description) }

    /// Every socket's address after `start()`, with the port the kernel chose for a port 0.
    public var listening: [ListeningAddress] { lock.withLock { _listening } }

    public var statistics: Statistics { core.statistics }

    /// Binds every socket and starts its thread; throws if any cannot be bound (nothing stays
    /// open then).
    public func start() async throws {
        let plan = try await Self.openSockets(configuration)
        var threads: [ReceiveThread] = []
        var bound: [ListeningAddress] = []
        for socket in plan.sockets {
            let isPXE = socket.configuredPort == configuration.pxePort || socket.portIndex == configuration.pxePortIndex
            let logicalPort = isPXE ? 4011 : 67
            let resolver = ArrivalResolver(interface: socket.interface, serverAddress: configuration.serverAddress ?? socket.address,
                                           devices: plan.devices)
            let thread = ReceiveThread(fd: socket.fd, port: logicalPort, core: core, resolver: resolver,
                                       helpers: configuration.threadsPerSocket - 1)
            thread.start(name: "bp-dhcp-\(socket.port)" + (socket.interface.map { "-\($0)" } ?? ""))
            threads.append(thread)
            bound.append(ListeningAddress(host: socket.bindAddress, port: socket.port, interface: socket.interface))
        }
        lock.withLock {
            state = .running(threads)
            _listening = bound
        }
        core.logger.info(configuration.fullDHCP == nil ? "proxydhcp listening" : "dhcp listening", metadata: ["addresses": "\(bound.map(\.description).joined(separator: " "))"])
        onServerRunning?(bound)
    }

    /// Stops every socket's thread, then closes the sockets.
    public func shutdown() async {
        let threads: [ReceiveThread] = lock.withLock {
            defer { state = .stopped }
            if case let .running(threads) = state { return threads }
            return []
        }
        for thread in threads { await thread.stop() }
        for thread in threads { close(thread.fd) }
    }

    /// swift-service-lifecycle: runs until graceful shutdown or cancellation.
    public func run() async throws {
        try await start()
        // Returns on graceful shutdown; throws (ignored) on cancellation.
        try? await gracefulShutdown()
        await shutdown()
    }

    // MARK: sockets

    struct PlannedSocket {
        var fd: CInt
        /// The port bound: the kernel's choice when `configuredPort` is 0.
        var port: Int
        var configuredPort: Int
        /// The entry of `Configuration.ports` it was made for.
        var portIndex: Int
        var interface: String?
        var bindAddress: String
        /// Our address on that interface (or the bind address).
        var address: IPv4Address?
    }

    struct SocketPlan {
        var sockets: [PlannedSocket]
        /// Interface index -> (name, first IPv4 address), as seen where the sockets live.
        var devices: [Int: (String, IPv4Address)]
    }

    /// Creates and binds every socket, inside `networkNamespace` when set (a socket belongs to
    /// the namespace of the thread that created it, so a short-lived thread joins it).
    static func openSockets(_ configuration: Configuration) async throws -> SocketPlan {
        try await inNetworkNamespace(configuration.networkNamespace) { try makeSockets(configuration) }
    }

    /// Runs `body` where sockets it makes belong to the namespace at `path` (nil: here): a
    /// socket belongs to the namespace of the thread that created it, so a short-lived thread
    /// joins it. Shared with the DHCPv6 server.
    static func inNetworkNamespace<T: Sendable>(_ path: String?, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        guard let path else { return try body() }
        return try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                do {
                    try enterNetworkNamespace(path)
                    continuation.resume(returning: try body())
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            thread.start()
        }
    }

    static func makeSockets(_ configuration: Configuration) throws -> SocketPlan {
        var devices: [Int: (String, IPv4Address)] = [:]
        for device in (try? System.enumerateDevices()) ?? [] {
            guard let address = device.address, case let .v4(v4) = address, devices[device.interfaceIndex] == nil else { continue }
            let raw = UInt32(bigEndian: v4.address.sin_addr.s_addr)
            devices[device.interfaceIndex] = (device.name, IPv4Address(rawValue: raw))
        }
        var sockets: [PlannedSocket] = []
        do {
            let targets: [(String?, String)] = configuration.interfaces.isEmpty
                ? [(nil, configuration.bindAddress)]
                : configuration.interfaces.map { ($0, "0.0.0.0") }
            for (interface, address) in targets {
                let own: IPv4Address? = interface.flatMap { name in devices.values.first { $0.0 == name }?.1 } ?? IPv4Address(address)
                for (index, port) in configuration.ports.enumerated() {
                    let fd = try makeSocket(address: address, port: port, interface: interface)
                    let bound = boundPort(fd) ?? port
                    sockets.append(PlannedSocket(fd: fd, port: bound, configuredPort: port, portIndex: index,
                                                 interface: interface, bindAddress: address,
                                                 address: own.flatMap { $0.isAny ? nil : $0 }))
                }
            }
        } catch {
            for socket in sockets { close(socket.fd) }
            throw error
        }
        return SocketPlan(sockets: sockets, devices: devices)
    }

    public struct SocketError: Error, CustomStringConvertible {
        public var operation: String
        public var errno: Int32
        public var description: String { "\(operation): \(String(cString: strerror(errno)))" }
    }

    static let receiveBufferBytes: CInt = 4 << 20

    /// Throws `ListenerBindError`, naming the address and port, for any step that fails.
    static func makeSocket(address: String, port: Int, interface: String?) throws -> CInt {
        func failure(_ step: String?, _ errno: Int32) -> ListenerBindError {
            ListenerBindError(service: "proxydhcp", host: address, port: port, interface: interface, step: step, errno: errno)
        }
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw failure("socket", errno) }
        func option(_ level: Int32, _ name: Int32, _ what: String) throws {
            var one: CInt = 1
            guard setsockopt(fd, level, name, &one, socklen_t(MemoryLayout<CInt>.size)) == 0 else {
                let e = errno
                close(fd)
                throw failure(what, e)
            }
        }
        // Not for port 0: with SO_REUSEADDR on both, Linux may give two port-0 sockets the
        // same port (udp_lib_get_port counts a reusable port as free).
        if port != 0 { try option(SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR") }
        try option(SOL_SOCKET, SO_BROADCAST, "SO_BROADCAST")
        try option(Int32(IPPROTO_IP), ReceiveThread.ipPacketInfo, "IP_PKTINFO")
        enlargeReceiveBuffer(fd)
        if let interface {
            let ok = interface.withCString { name in
                setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, name, socklen_t(strlen(name) + 1)) == 0
            }
            guard ok else {
                let e = errno
                close(fd)
                throw failure("SO_BINDTODEVICE", e)
            }
        }
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = in_port_t(UInt16(port).bigEndian)
        guard let ip = IPv4Address(address) else {
            close(fd)
            throw failure("not an IPv4 address", EINVAL)
        }
        sin.sin_addr.s_addr = ip.rawValue.bigEndian
        let result = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let e = errno
            close(fd)
            throw failure(nil, e)
        }
        return fd
    }

    /// A rack powering on sends its requests at once; the default ~208 KB receive buffer
    /// overflows and the kernel drops them before we read (UdpRcvbufErrors). Asks for 4 MiB,
    /// past rmem_max when we may (root), else as much as rmem_max allows. Best effort. Shared
    /// with the DHCPv6 server.
    static func enlargeReceiveBuffer(_ fd: CInt) {
        var rcvbuf: CInt = receiveBufferBytes
        if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, socklen_t(MemoryLayout<CInt>.size)) != 0 {
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, socklen_t(MemoryLayout<CInt>.size))
        }
    }

    /// The port `fd` is bound to (getsockname), nil if it cannot be read.
    static func boundPort(_ fd: CInt) -> Int? {
        var sin = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return rc == 0 ? Int(UInt16(bigEndian: sin.sin_port)) : nil
    }

    /// setns(2) is not in Swift's Glibc module (it needs _GNU_SOURCE); look it up instead.
    static func enterNetworkNamespace(_ path: String) throws {
        typealias SetNS = @convention(c) (CInt, CInt) -> CInt
        guard let symbol = dlsym(nil, "setns") else { throw SocketError(operation: "dlsym setns", errno: ENOSYS) }
        let setns = unsafeBitCast(symbol, to: SetNS.self)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SocketError(operation: "open \(path)", errno: errno) }
        defer { close(fd) }
        guard setns(fd, 0x4000_0000 /* CLONE_NEWNET */) == 0 else { throw SocketError(operation: "setns \(path)", errno: errno) }
    }

    // MARK: per-packet work

    /// Shared by every channel: the responder, the decider, counters and the log.
    final class Core: @unchecked Sendable {
        let responder: ProxyDHCPResponder
        let decider: BootDecider
        let events: BootEventSink
        let logger: Logger
        let full: FullDHCPResponder?
        let proxy: Bool
        private let lock = NSLock()
        /// Malformed, silenced and send failures; the two counts every packet moves are atomics
        /// (a lock round trip each was a few per cent of an answer).
        private var stats = Statistics()
        private let receivedCount = Atomic<Int>(0)
        private let answeredCount = Atomic<Int>(0)
        private let receivedCounter = Counter(label: "bootpolicy_dhcp_requests_total")
        private let repliesCounter: [DHCPMessageType: Counter] = [
            .offer: Counter(label: "bootpolicy_dhcp_replies_total", dimensions: [("type", "offer")]),
            .ack: Counter(label: "bootpolicy_dhcp_replies_total", dimensions: [("type", "ack")]),
            .nak: Counter(label: "bootpolicy_dhcp_replies_total", dimensions: [("type", "nak")]),
        ]
        private let droppedCounters: [String: Counter]
        private let sendFailureCounter = Counter(label: "bootpolicy_dhcp_send_failures_total")
        private let backloggedCount = Atomic<Int>(0)
        private let helperWakeupCount = Atomic<Int>(0)
        private let backloggedCounter = Counter(label: "bootpolicy_dhcp_backlogged_total")
        private let helperWakeupCounter = Counter(label: "bootpolicy_dhcp_helper_wakeups_total")

        init(responder: ProxyDHCPResponder, decider: BootDecider, events: BootEventSink, logger: Logger,
             full: FullDHCPResponder? = nil, proxy: Bool = true) {
            self.full = full
            self.proxy = proxy
            self.responder = responder
            self.decider = decider
            self.events = events
            self.logger = logger
            var dropped: [String: Counter] = ["malformed": Counter(label: "bootpolicy_dhcp_dropped_total", dimensions: [("reason", "malformed")])]
            for reason in ProxyDHCPResponder.Silence.allCases {
                dropped[reason.rawValue] = Counter(label: "bootpolicy_dhcp_dropped_total", dimensions: [("reason", reason.rawValue)])
            }
            droppedCounters = dropped
        }

        var statistics: Statistics {
            var snapshot = lock.withLock { stats }
            snapshot.received = receivedCount.load(ordering: .relaxed)
            snapshot.answered = answeredCount.load(ordering: .relaxed)
            snapshot.backlogged = backloggedCount.load(ordering: .relaxed)
            snapshot.helperWakeups = helperWakeupCount.load(ordering: .relaxed)
            return snapshot
        }

        /// `count` datagrams came in one read: the receive thread was behind.
        func countBacklog(_ count: Int) {
            backloggedCount.add(count, ordering: .relaxed)
            backloggedCounter.increment(by: Int64(count))
        }

        func countHelperWakeup() {
            helperWakeupCount.add(1, ordering: .relaxed)
            helperWakeupCounter.increment()
        }

        /// Replies about to be sent: counted as answered first, so that whoever sees a reply
        /// arrive also sees it counted; a send that fails takes its count back.
        func countAnswering(_ count: Int) {
            answeredCount.add(count, ordering: .relaxed)
        }

        /// A reply the kernel took: only these count in `bootpolicy_dhcp_replies_total` (a
        /// reply built but not sent, or withheld, is not an answer).
        func countSent(_ type: DHCPMessageType?) {
            if let type { repliesCounter[type]?.increment() }
        }

        func countSendFailure(_ error: Error, to destination: String) {
            answeredCount.subtract(1, ordering: .relaxed)
            lock.withLock { stats.sendFailures += 1 }
            sendFailureCounter.increment()
            logger.warning("proxydhcp send failed", metadata: ["to": "\(destination)", "error": "\(error)"])
        }

        /// A datagram longer than the receive slot arrived cut: dropped as malformed.
        func countOversized(from source: IPv4Address, port sourcePort: Int, arrivalPort: Int) {
            countReceived()
            dropMalformed(from: source, port: sourcePort, arrivalPort: arrivalPort,
                          why: "longer than \(ReceiveThread.slotSize) bytes")
        }

        private func countReceived() {
            receivedCounter.increment()
            receivedCount.add(1, ordering: .relaxed)
        }

        private func dropMalformed(from source: IPv4Address, port sourcePort: Int, arrivalPort: Int, why: String) {
            lock.withLock { stats.malformed += 1 }
            droppedCounters["malformed"]?.increment()
            logger.debug("proxydhcp dropped malformed packet", metadata: [
                "from": "\(source):\(sourcePort)", "port": "\(arrivalPort)", "error": "\(why)"])
        }

        /// Decodes, screens, decides and builds the reply; counts and logs exactly once. Waits
        /// for the durability of what the decision changed before returning its reply.
        func process(
            _ bytes: ByteBuffer, source: IPv4Address, sourcePort: Int, port: Int, interface: String?,
            serverAddress: IPv4Address
        ) -> ProxyDHCPResponder.Reply? {
            var commit: UInt64 = 0
            var lease: UInt64 = 0
            guard let reply = process(bytes, source: source, sourcePort: sourcePort, port: port, interface: interface,
                                      serverAddress: serverAddress, holding: &commit, lease: &lease) else { return nil }
            if !awaitDurable(commit: commit, lease: lease) {
                withdraw(1)
                return nil
            }
            return reply
        }

        /// Waits for a reply's (or a batch's) policy state and leases to be durable: two marks
        /// of two journals (the client store's and the lease journal's; they may be the same
        /// writer, but nothing here assumes so).
        func awaitDurable(commit: UInt64, lease: UInt64) -> Bool {
            if commit != 0, !decider.awaitCommit(through: commit) { return false }
            if lease != 0, let full, !full.pool.journal.awaitDurable(through: lease) { return false }
            return true
        }

        /// Replies already counted as answered that cannot be sent: their decisions' state did
        /// not become durable in time (see `BootDecider.awaitCommit`).
        func withdraw(_ count: Int) {
            lock.withLock { stats.silenced[.stateNotDurable, default: 0] += count }
            droppedCounters[ProxyDHCPResponder.Silence.stateNotDurable.rawValue]?.increment(by: count)
            logger.warning("proxydhcp: \(count) answer(s) withheld: the state their decisions changed is not durable")
        }

        /// The same, without waiting: `commit` is set to what must be durable before the reply
        /// leaves (0: nothing), so a batch's replies wait for one commit together.
        func process(
            _ bytes: ByteBuffer, source: IPv4Address, sourcePort: Int, port: Int, interface: String?,
            serverAddress: IPv4Address, holding commit: inout UInt64, lease leaseMark: inout UInt64
        ) -> ProxyDHCPResponder.Reply? {
            countReceived()
            var buffer = bytes
            let message: DHCPMessage
            do {
                message = try DHCPMessage(from: &buffer)
            } catch {
                dropMalformed(from: source, port: sourcePort, arrivalPort: port, why: "\(error)")
                return nil
            }
            let arrival = ProxyDHCPResponder.Arrival(port: port, serverAddress: serverAddress, interface: interface,
                                                     source: source, sourcePort: sourcePort)
            var request = BootRequest(dhcp: message, serverPort: port, interface: interface, source: source.description)
            request.serverAddress = serverAddress.description

            var decision: BootDecision?
            let result: Result<ProxyDHCPResponder.Reply, ProxyDHCPResponder.Silence>
            var detail: String?
            var isFull = false
            if port == 67, message.op == .request, let full, let range = full.range(for: message, arrival: arrival) {
                // Full DHCP: every client of the subnet, PXE or not, is answered; the policy
                // adds the boot answer (and may pin an address or refuse the client).
                isFull = true
                if FullDHCPResponder.asksPolicy(message) {
                    (decision, commit) = decider.decideHoldingCommit(request, datagram: bytes)
                }
                let outcome = full.answer(message, arrival: arrival, range: range, decision: decision)
                result = outcome.result
                detail = outcome.detail
                if case .success = outcome.result { leaseMark = outcome.mark }
                if case .failure(.poolExhausted) = outcome.result, let unsaid = exhaustionToSay(range) {
                    // Once per range every 10 s: a dry pool under a rack's retries would
                    // otherwise write a warning per DISCOVER (each is counted either way).
                    logger.warning("\(describe(request, full: true)) -> silent (pool_exhausted): no free address in \(range); raise the range or shorten the lease\(unsaid > 0 ? " (\(unsaid) more since the last warning)" : "")",
                                   metadata: ["range": "\(range)"])
                }
            } else if !proxy, message.op == .request {
                result = .failure(.notServed)
            } else {
                let screened = responder.screen(message, arrival: arrival)
                if case .success = screened {
                    (decision, commit) = decider.decideHoldingCommit(request, datagram: bytes)
                }
                result = responder.reply(to: message, arrival: arrival, screened: screened, decision: decision)
            }
            switch result {
            case let .failure(reason):
                lock.withLock { stats.silenced[reason, default: 0] += 1 }
                droppedCounters[reason.rawValue]?.increment()
                if reason == .replyTooLarge {
                    // A policy's (or a relay's) mistake an operator must see, not a client's.
                    logger.warning("\(describe(request)) -> silent (reply_too_large): the reply would be longer than the \(ProxyDHCPResponder.replyLimit(for: message)) bytes this client accepts (576, or its option 57), even with options overloaded into sname/file; shorten the decision's options",
                                   metadata: policyMetadata(decision))
                } else {
                    let level: Logger.Level = (reason == .ignoredByPolicy || reason == .noDecision) ? .info : .debug
                    logger.log(level: level, "\(describe(request, full: isFull)) -> silent (\(reason.rawValue))\(detail.map { ": " + $0 } ?? "")",
                               metadata: policyMetadata(decision))
                }
                if reason == .ignoredByPolicy || reason == .noDecision {
                    record(request, decision, file: nil, outcome: reason.rawValue)
                }
                return nil
            case let .success(reply):
                let file = reply.message.bootFile
                // Built inside the log call's autoclosure: with info off it costs nothing per packet.
                logger.info("\(describe(request, full: isFull)) -> \(reply.message.messageType?.name.uppercased() ?? "REPLY")\(detail.map { " " + $0 } ?? "") file=\(file.isEmpty ? "-" : file) next-server=\(reply.message.siaddr) to \(reply.destination):\(reply.destinationPort)",
                            metadata: policyMetadata(decision))
                record(request, decision, file: file, outcome: "answered")
                return reply
            }
        }

        /// Per range: when pool exhaustion was last logged, and how many DISCOVERs went unsaid.
        private var exhaustionLog: [String: (said: UInt64, unsaid: Int)] = [:]

        /// Whether to log this exhaustion now (with the number not logged since), or nil.
        func exhaustionToSay(_ range: DHCPRange) -> Int? {
            let now = clinux_monotonic_ns()
            return lock.withLock {
                let key = range.description
                if let last = exhaustionLog[key], now &- last.said < 10_000_000_000 {
                    exhaustionLog[key] = (last.said, last.unsaid + 1)
                    return nil
                }
                let unsaid = exhaustionLog[key]?.unsaid ?? 0
                exhaustionLog[key] = (now, 0)
                return unsaid
            }
        }

        /// The event for the timeline; its summary and fields are written only when read.
        func record(_ request: BootRequest, _ decision: BootDecision?, file: String?, outcome: String) {
            events.record(BootEvent(
                mac: request.mac, clientAddress: request.clientAddress, arch: request.arch ?? "",
                firmware: request.firmware.rawValue, policy: decision?.policy, file: decision?.filename,
                dhcp: .init(interface: request.interface, port: request.serverPort ?? 0, type: request.messageType,
                            end: file.map { $0.isEmpty ? "-" : $0 } ?? outcome, outcome: outcome)))
        }

        func describe(_ r: BootRequest, full: Bool = false) -> String {
            BootEvent.DHCPDetails.head(interface: r.interface, port: r.serverPort ?? 0, mac: r.mac, type: r.messageType,
                                       arch: r.arch, firmware: r.firmware.rawValue, tag: full ? "DHCP" : "PXE")
        }

        func policyMetadata(_ d: BootDecision?) -> Logger.Metadata {
            var m: Logger.Metadata = ["policy": "\(d?.policy ?? "-")"]
            if let note = d?.note { m["note"] = "\(note)" }
            return m
        }
    }

    /// The same per-packet work inside a NIO pipeline: tests drive it in an EmbeddedChannel.
    final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        typealias OutboundOut = AddressedEnvelope<ByteBuffer>

        let core: Core
        let port: Int
        let resolver: ArrivalResolver

        init(core: Core, port: Int, interface: String?, serverAddress: IPv4Address?, devices: [Int: (String, IPv4Address)]) {
            self.core = core
            self.port = port
            self.resolver = ArrivalResolver(interface: interface, serverAddress: serverAddress, devices: devices)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = unwrapInboundIn(data)
            guard case let .v4(remote) = envelope.remoteAddress else { return }
            let source = IPv4Address(rawValue: UInt32(bigEndian: remote.address.sin_addr.s_addr))
            let sourcePort = Int(UInt16(bigEndian: remote.address.sin_port))
            let info = envelope.metadata?.packetInfo
            var destination: IPv4Address?
            if let info, case let .v4(address) = info.destinationAddress {
                destination = IPv4Address(rawValue: UInt32(bigEndian: address.address.sin_addr.s_addr))
            }
            let arrival = resolver.resolve(interfaceIndex: info?.interfaceIndex, destination: destination)
            guard let reply = core.process(envelope.data, source: source, sourcePort: sourcePort, port: port,
                                           interface: arrival.interface, serverAddress: arrival.address) else { return }
            var buffer = context.channel.allocator.buffer(capacity: DHCPMessage.minimumLength)
            reply.message.encode(into: &buffer)
            guard let destination = try? SocketAddress(ipAddress: reply.destination.description, port: reply.destinationPort) else { return }
            let promise = context.eventLoop.makePromise(of: Void.self)
            let core = self.core
            let type = reply.message.messageType
            core.countAnswering(1)
            promise.futureResult.whenComplete { result in
                switch result {
                case .success: core.countSent(type)
                case let .failure(error): core.countSendFailure(error, to: "\(destination)")
                }
            }
            context.writeAndFlush(wrapOutboundOut(AddressedEnvelope(remoteAddress: destination, data: buffer)), promise: promise)
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            core.logger.debug("proxydhcp socket error", metadata: ["error": "\(error)", "port": "\(port)"])
        }
    }
}
