import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization

/// The HTTP side of netboot: iPXE scripts decided per client by the policy chain, static boot
/// files (kernels, initrds, ISOs) from a root with HEAD and Range, and extra operator routes
/// (metrics, status page) that the host plugs in.
public final class HTTPServer: Service, @unchecked Sendable {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        /// Static files; nil serves none.
        public var root: String?
        /// The path whose misses get an iPXE-printable message instead of a bare 404.
        public var scriptPath: String
        /// A request must arrive whole (head and body) within this many seconds of the
        /// connection opening or of the previous response: a client that trickles its headers
        /// (slowloris) is closed then.
        public var requestTimeout: TimeInterval
        /// A keep-alive connection with no request for this long is closed.
        public var idleTimeout: TimeInterval
        /// Connections open at once; one more is closed as soon as it is accepted.
        public var maxConnections: Int
        /// Connections open at once from one client address.
        public var maxConnectionsPerClient: Int
        /// The largest request body read (control API writes, policy callbacks); a larger one
        /// is answered 413 and the connection closed.
        public var maxBodyBytes: Int
        /// Threads that decide responses (policy decisions, API calls), off the event loops.
        public var workerThreads: Int
        /// When a `mac` in the query is believed (`http.script_access`).
        public var scriptAccess: ScriptAccess
        /// Serve HTTPS with this identity (`http.tls`); nil: plain HTTP.
        public var tls: TLSIdentity? = nil
        public init(host: String = "0.0.0.0", port: Int = 8080, root: String? = nil, scriptPath: String = "/boot.ipxe",
                    requestTimeout: TimeInterval = 10, idleTimeout: TimeInterval = 60,
                    maxConnections: Int = 4096, maxConnectionsPerClient: Int = 64, maxBodyBytes: Int = 1 << 20,
                    workerThreads: Int = max(4, 2 * System.coreCount), scriptAccess: ScriptAccess = .token(.random())) {
            self.host = host
            self.port = port
            self.root = root
            self.scriptPath = scriptPath
            self.requestTimeout = requestTimeout
            self.idleTimeout = idleTimeout
            self.maxConnections = maxConnections
            self.maxConnectionsPerClient = maxConnectionsPerClient
            self.maxBodyBytes = maxBodyBytes
            self.workerThreads = max(1, workerThreads)
            self.scriptAccess = scriptAccess
        }
    }

    /// An endpoint the host adds (`/metrics`, `/healthz`, `/`, the control API). A key ending
    /// in `/*` serves every path under it (`/api/v1/*`); an exact key wins over a prefix. A
    /// route runs on a worker thread and may block (it may wait for a commit).
    public typealias Route = @Sendable (HTTPRequestContext) -> HTTPResponse

    let configuration: Configuration
    let root: ConfinedRoot?
    let decider: BootDecider
    let sink: BootEventSink
    let macLookup: @Sendable (String) -> String?
    let routes: [String: Route]
    /// The `/*` routes, longest prefix first.
    let prefixRoutes: [(prefix: String, route: Route)]
    let logger: Logger
    /// Where responses are decided; started by `run`, stopped when it returns.
    let workers: NIOThreadPool
    /// Reads files for HTTPS, where sendfile cannot pass through TLS (on `workers`).
    let fileIO: NonBlockingFileIO
    let group: EventLoopGroup
    private let boundPromise: EventLoopPromise<SocketAddress>
    let onServerRunning: OnServerRunning?
    /// The listener's port once bound (the kernel's choice for a configured 0): what requests
    /// report as their server port.
    private let boundPort = Atomic<Int>(0)
    /// The bound port, or the configured one before `run` has bound.
    var servingPort: Int {
        let bound = boundPort.load(ordering: .relaxed)
        return bound != 0 ? bound : configuration.port
    }

    public init(
        configuration: Configuration, decider: BootDecider, sink: BootEventSink = NoEventSink(),
        macLookup: @escaping @Sendable (String) -> String? = { _ in nil },
        routes: [String: Route] = [:], group: EventLoopGroup, logger: Logger,
        onServerRunning: OnServerRunning? = nil
    ) throws {
        self.configuration = configuration
        self.onServerRunning = onServerRunning
        do {
            self.root = try configuration.root.map(ConfinedRoot.init(path:))
        } catch {
            throw HTTPServerError.badRoot("\(error)")
        }
        self.decider = decider
        self.sink = sink
        self.macLookup = macLookup
        self.routes = routes.filter { !$0.key.hasSuffix("/*") }
        self.prefixRoutes = routes.filter { $0.key.hasSuffix("/*") }
            .map { (prefix: String($0.key.dropLast()), route: $0.value) }
            .sorted { $0.prefix.count > $1.prefix.count }
        self.workers = NIOThreadPool(numberOfThreads: configuration.workerThreads)
        self.fileIO = NonBlockingFileIO(threadPool: workers)
        self.group = group
        self.logger = logger
        self.boundPromise = group.next().makePromise()
    }

    /// The address actually bound (useful with port 0); completes once `run` has bound.
    public var boundAddress: EventLoopFuture<SocketAddress> { boundPromise.futureResult }

    private let listening = NIOLockedValueBox(false)
    private let connections = NIOLockedValueBox<(total: Int, byClient: [String: Int])>((0, [:]))
    private let refusedConnections = Counter(label: "bootpolicy_http_connections_refused_total")
    private let timedOut = Counter(label: "bootpolicy_http_timeouts_total")
    private let oversized = Counter(label: "bootpolicy_http_bodies_refused_total")
    private let handshakeFailures = Counter(label: "bootpolicy_https_handshake_failures_total")
    /// Handshake failures logged in the current minute: a client that distrusts the
    /// certificate (or a scanner) fails every connection, and the log must not become it.
    private let handshakeLog = NIOLockedValueBox<(minute: UInt64, lines: Int)>((0, 0))

    /// A TLS connection ended before its handshake completed (a client that does not trust the
    /// certificate sends an alert such as "unknown ca", or resets): counted, and logged at most
    /// 10 times a minute.
    func noteHandshakeFailure(_ error: String, client: String) {
        handshakeFailures.increment()
        let minute = NIODeadline.now().uptimeNanoseconds / 60_000_000_000
        let log = handshakeLog.withLockedValue { state -> Bool in
            if state.minute != minute { state = (minute, 0) }
            state.lines += 1
            return state.lines <= 10
        }
        guard log else { return }
        logger.notice("https: TLS handshake failed", metadata: [
            "client": "\(client)", "error": "\(error)",
            "hint": "a client that refuses the certificate needs the CA that signed it (OVMF: etc/edk2/https/cacerts)",
        ])
    }

    /// Counts a new connection in, or says it is one too many (overall or from its address).
    /// A connection let in is counted out when it closes.
    func admit(_ child: Channel) -> Bool {
        let client = child.remoteAddress?.ipAddress ?? "?"
        let admitted = connections.withLockedValue { c -> Bool in
            guard c.total < configuration.maxConnections,
                  c.byClient[client, default: 0] < configuration.maxConnectionsPerClient else { return false }
            c.total += 1
            c.byClient[client, default: 0] += 1
            return true
        }
        guard admitted else {
            refusedConnections.increment()
            logger.debug("http: connection refused: too many open", metadata: ["client": "\(client)"])
            return false
        }
        child.closeFuture.whenComplete { [connections] _ in
            connections.withLockedValue { c in
                c.total -= 1
                let left = c.byClient[client, default: 1] - 1
                c.byClient[client] = left > 0 ? left : nil
            }
        }
        return true
    }

    /// Connections open now (tests, the status page).
    public var openConnections: Int { connections.withLockedValue { $0.total } }

    private struct CounterKey: Hashable {
        let status: Int
        let servedBy: String
    }
    private let requestCounters = NIOLockedValueBox<[CounterKey: Counter]>([:])

    /// `bootpolicy_http_requests_total{status, served_by}`, made once per pair: a metrics
    /// factory looks a new counter up by its name and dimensions, which every request paid.
    private func requestCounter(status: Int, servedBy: String) -> Counter {
        let key = CounterKey(status: status, servedBy: servedBy)
        return requestCounters.withLockedValue { counters in
            if let counter = counters[key] { return counter }
            let counter = Counter(label: "bootpolicy_http_requests_total", dimensions: [("status", "\(status)"), ("served_by", servedBy)])
            counters[key] = counter
            return counter
        }
    }

    func countTimeout() { timedOut.increment() }
    func countOversizedBody() { oversized.increment() }
    /// True once `run` has bound its socket.
    public var isListening: Bool { listening.withLockedValue { $0 } }

    public func run() async throws {
        workers.start()
        defer { workers.shutdownGracefully { _ in } }
        let channel: Channel
        do {
            channel = try await ServerBootstrap(group: group)
                // A boot storm connects a rack's worth of machines at once: with 256, 1,000
                // clients overflowed the accept queue 938-2,214 times a storm and each dropped
                // SYN was retried after 1 s, then 3 s (bench/STORM-COMPARE.md; nginx uses
                // 511). The kernel caps this at net.core.somaxconn (4096 by default).
                .serverChannelOption(.backlog, value: 4096)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { child in
                    guard self.admit(child) else {
                        return child.close()
                    }
                    // No outbound header validation: every header is the server's own, and the
                    // one a policy sets (content_type) is checked by `problem(with:)` first.
                    // The validator was a sixteenth of a small request's CPU.
                    let http = {
                        child.pipeline.configureHTTPServerPipeline(withErrorHandling: true, withOutboundHeaderValidation: false).flatMap {
                            child.pipeline.addHandler(HTTPBootHandler(server: self, secure: self.configuration.tls != nil))
                        }
                    }
                    // TLS first: the identity in force now (a reload changes the next connection's).
                    if let tls = self.configuration.tls {
                        do {
                            try child.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls.context))
                        } catch {
                            return child.eventLoop.makeFailedFuture(error)
                        }
                    }
                    return http()
                }
                .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .bind(host: configuration.host, port: configuration.port).get()
        } catch {
            boundPromise.fail(error)
            throw ListenerBindError(service: configuration.tls == nil ? "http" : "https", host: configuration.host, port: configuration.port, error: error)
        }
        if let local = channel.localAddress { boundPromise.succeed(local) }
        let port = channel.localAddress?.port ?? configuration.port
        boundPort.store(port, ordering: .relaxed)
        listening.withLockedValue { $0 = true }
        logger.info(configuration.tls == nil ? "http: listening" : "https: listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
        onServerRunning?([ListeningAddress(host: configuration.host, port: port)])
        // Cancellation closes the listener too: a service group cancels every service when one
        // of them throws (another listener's bind failing), and waits for each run() to return
        // before it reports the error. Waiting only for graceful shutdown hung the process there.
        try await withGracefulShutdownHandler {
            try await withTaskCancellationHandler {
                try await channel.closeFuture.get()
            } onCancel: {
                channel.close(promise: nil)
            }
        } onGracefulShutdown: {
            channel.close(promise: nil)
        }
        logger.info("http: stopped")
    }

    /// Decides what to send for one request; pure apart from reading the file system. May
    /// block (a route waits for a commit, a decision for a policy state): a worker thread's.
    /// Public for the HTTP fuzz target (Tests/Fuzz/HTTPFuzz), which runs requests through it.
    public func respond(to context: HTTPRequestContext) -> HTTPResponse {
        if let route = route(for: context.path) { return route(context) }
        if let refusal = Self.refusal(of: context) { return refusal }
        let request = bootRequest(for: context)
        return answer(context, for: request.mac, decision: decider.decide(request))
    }

    /// The same on the connection's event loop, for the common case, sparing every request
    /// two thread hand-offs: nil when it must go to a worker instead (a route, or no policy
    /// state free at once). A decision that must be durable first is answered when it is,
    /// without holding the loop. A policy hook that runs here holds the loop for at most its
    /// budget (`limits.time_ms`), as it would hold a worker.
    func respondOnLoop(to context: HTTPRequestContext) -> HTTPResponse? {
        if route(for: context.path) != nil { return nil }
        if let refusal = Self.refusal(of: context) { return refusal }
        let request = bootRequest(for: context)
        guard let (decision, commit) = decider.decideIfFree(request) else { return nil }
        guard commit != 0 else { return answer(context, for: request.mac, decision: decision) }
        let decider = self.decider
        return .later { complete in
            decider.whenDurable(through: commit) { durable in
                // Not durable in time: answered as if no policy had decided (as `respond`).
                complete { self.answer(context, for: request.mac, decision: durable ? decision : nil) }
            }
        }
    }

    private func route(for path: String) -> Route? {
        routes[path] ?? prefixRoutes.first(where: { path.hasPrefix($0.prefix) })?.route
    }

    /// A request refused before any policy sees it.
    private static func refusal(of context: HTTPRequestContext) -> HTTPResponse? {
        // A NUL would cut the path short at open(2): `/hello.txt%00.png` served hello.txt.
        context.path.utf8.contains(0) ? .text(status: .badRequest, "bad request: the path holds a NUL byte\n") : nil
    }

    private func bootRequest(for context: HTTPRequestContext) -> BootRequest {
        let (mac, query) = identify(context)
        var request = BootRequest(
            kind: .http, mac: mac, clientAddress: context.clientAddress, serverPort: servingPort,
            path: context.path, query: query
        )
        request.method = context.method.rawValue
        request.scheme = context.scheme
        request.headers = Self.headerTable(context.headers)
        request.body = context.body
        return request
    }

    /// The response for `decision` (nil: no policy decided), recorded and counted.
    private func answer(_ context: HTTPRequestContext, for mac: String, decision: BootDecision?) -> HTTPResponse {
        var served = "static"
        var response: HTTPResponse
        if let decision {
            served = decision.policy ?? "policy"
            if let problem = Self.problem(with: decision) {
                // NIO cannot write such a head: the client got no response at all and a
                // keep-alive client waited for ever. Answer, and say which policy did it.
                logger.error("http: policy \(served) made a response that cannot be sent: \(problem)",
                             metadata: ["path": "\(context.path)", "policy": "\(served)"])
                response = .text(status: .internalServerError, "policy \(served) made a response that cannot be sent: \(problem)\n")
            } else if let refusal = decision.refuse {
                response = .text(status: HTTPResponseStatus(statusCode: decision.status ?? 403), refusal + "\n")
            } else if let content = decision.content ?? decision.ipxeScript.map({ Array($0.utf8) }) {
                response = HTTPResponse(
                    status: HTTPResponseStatus(statusCode: decision.status ?? 200),
                    contentType: decision.contentType ?? "text/plain; charset=utf-8", body: .bytes(content))
            } else if let path = decision.path {
                response = Self.readsOnly(context) ? staticFile(path, context: context) : Self.methodNotAllowed
            } else {
                response = .text(status: .notFound, "policy \(served) decided nothing to serve for \(context.path)\n")
            }
        } else if !Self.readsOnly(context) {
            // Other methods reach policies (callbacks); files are only read.
            response = Self.methodNotAllowed
        } else {
            response = staticFile(context.path, context: context)
            if response.status == .notFound && context.path == configuration.scriptPath {
                served = "none"
                // iPXE prints the echo lines; a bare 404 would leave the operator guessing.
                response = .text(status: .ok, """
                    #!ipxe
                    echo bootpolicy: no policy produced a script for ${mac} (\(mac.isEmpty ? "unknown client" : mac))
                    echo bootpolicy: check the server log and `bootpolicy explain`
                    sleep 10
                    exit 1

                    """)
            }
        }
        sink.record(BootEvent(
            stage: .http, mac: mac, clientAddress: context.clientAddress,
            summary: "\(context.method) \(context.path) -> \(response.status.code) (\(served)\(context.scheme == "https" ? ", https" : ""))",
            fields: ["path": context.path, "status": "\(response.status.code)", "policy": served, "scheme": context.scheme]))
        requestCounter(status: Int(response.status.code), servedBy: served == "static" || served == "none" ? served : "policy").increment()
        return response
    }

    /// The client a request is for, and the query policies see. A `mac` in the query counts
    /// only as `scriptAccess` allows; else the requester's own address decides (its DHCP
    /// exchange, the neighbour table). The `token` is never shown to policies; the `mac` stays
    /// in `req.query` as what it is, a claim (a callback may check it by its own means).
    func identify(_ context: HTTPRequestContext) -> (mac: String, query: [String: String]) {
        var query = context.query
        let token = query.removeValue(forKey: "token")
        guard let claimed = query["mac"].flatMap(MACAddress.normalize) else {
            return (macLookup(context.clientAddress) ?? "", query)
        }
        let own: String?
        switch configuration.scriptAccess {
        case .open:
            return (claimed, query)
        case .token(let tokens):
            if let token, tokens.verify(token, mac: claimed) { return (claimed, query) }
            own = macLookup(context.clientAddress)
        case .neighbour:
            own = macLookup(context.clientAddress)
            if own == claimed { return (claimed, query) }
        }
        if own != claimed {
            let reason = configuration.scriptAccess.name == "token" ? (token == nil ? "no_token" : "bad_token") : "not_neighbour"
            Counter(label: "bootpolicy_http_mac_refused_total", dimensions: [("reason", reason)]).increment()
            logger.debug("http: mac \(claimed) in the query not believed (\(reason.replacingOccurrences(of: "_", with: " "))); the client is \(own ?? "unknown") by its address",
                         metadata: ["path": "\(context.path)", "client": "\(context.clientAddress)"])
        }
        return (own ?? "", query)
    }

    static func readsOnly(_ context: HTTPRequestContext) -> Bool { context.method == .GET || context.method == .HEAD }
    static var methodNotAllowed: HTTPResponse {
        var r = HTTPResponse.text(status: .methodNotAllowed, "only GET and HEAD are served here (other methods reach policies that answer them)\n")
        r.headers.append(("Allow", "GET, HEAD"))
        return r
    }

    /// Headers as a policy sees them: lower-case names; a repeated header's values joined
    /// with ", " (RFC 9110 section 5.3).
    static func headerTable(_ headers: HTTPHeaders) -> [String: String] {
        var table: [String: String] = [:]
        for (name, value) in headers {
            let key = name.lowercased()
            if let seen = table[key] { table[key] = seen + ", " + value } else { table[key] = value }
        }
        return table
    }

    /// Why a decision's response cannot go on the wire, or nil. A header value must be
    /// printable ASCII (no CR, LF or NUL, no bytes a client may read differently); a status
    /// must carry a body (not 1xx, 204, 205 or 304: those forbid one, and 101 would switch
    /// protocols).
    static func problem(with decision: BootDecision) -> String? {
        if let type = decision.contentType {
            if type.isEmpty { return "content_type is empty" }
            if let bad = type.utf8.first(where: { !(0x20...0x7E).contains($0) }) {
                return "content_type holds byte 0x\(String(bad, radix: 16)) (printable ASCII only)"
            }
        }
        if let status = decision.status, !(200...599).contains(status) || [204, 205, 304].contains(status) {
            return "status \(status) cannot carry a response body (use 200-599, not 204, 205 or 304)"
        }
        return nil
    }

    private func staticFile(_ path: String, context: HTTPRequestContext) -> HTTPResponse {
        guard let root else { return .text(status: .notFound, "not found: \(path)\n") }
        switch root.open(path) {
        case .failure(let refusal):
            logger.debug("http: refused path", metadata: ["path": "\(path)", "reason": "\(refusal)"])
            switch refusal {
            case .notFound: return .text(status: .notFound, "not found: \(path)\n")
            case .busy:
                logger.error("http: cannot open \(path): \(refusal.message)", metadata: ["client": "\(context.clientAddress)"])
                var busy = HTTPResponse.text(status: .serviceUnavailable, "\(refusal.message)\n")
                busy.headers.append(("Retry-After", "1"))
                return busy
            case .accessViolation: return .text(status: .forbidden, "\(refusal.message): \(path)\n")
            }
        case .success(let file):
            return .file(file, range: context.headers.first(name: "range"))
        }
    }
}

public enum HTTPServerError: Error, CustomStringConvertible {
    case badRoot(String)
    public var description: String {
        switch self {
        case .badRoot(let why): return "--http-root: \(why)"
        }
    }
}
