import Clients
import Foundation
import Logging
import LuaBridge
import Metrics
import NIOCore
import NIOPosix
import NIOConcurrencyHelpers
import Prometheus
import Protocols
import ServiceLifecycle
import UnixSignals

/// `bootpolicy serve` once its configuration is settled: logging, metrics, the policy engine,
/// the three servers and SIGHUP reload, in one service group.
struct Runtime {
    let configuration: Configuration
    /// Reads the config file and flags again, for SIGHUP.
    let reread: @Sendable () throws -> Configuration

    func run() async throws {
        let logger = Self.bootstrapLogging(format: configuration.log.format, level: configuration.log.level)
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))

        let directory: ClientDirectory
        do {
            directory = try ClientSetup.directory(from: configuration, logger: logger)
        } catch {
            throw ExitMessage("bootpolicy serve: \(error)")
        }
        defer { directory.close() }
        if directory.location == "memory" {
            logger.notice("state is kept in memory only: a restart forgets every client's state (give --state PATH to keep it)")
        } else {
            logger.notice("state store: \(directory.location)", metadata: ["clients": "\(directory.state.count)"])
        }

        let scripts: ScriptKey.Setup
        do {
            scripts = try ScriptKey.setup(from: configuration)
        } catch {
            throw ExitMessage("bootpolicy serve: \(error)")
        }
        if case .token = scripts.access {
            if scripts.ephemeral && directory.location != "memory" {
                logger.warning("script tokens: a key new each run (give every server that shares this database the same http.script_key FILE): a machine that got its URL from another server, or before a restart, is known only by its address")
            } else if scripts.ephemeral {
                logger.notice("script tokens: a key new each run (state is in memory; give http.script_key FILE to keep URLs valid across restarts)")
            } else {
                logger.notice("script tokens: key from \(scripts.origin)")
            }
        } else if case .open = scripts.access {
            logger.warning("http.script_access: open: anyone who can reach the server reads any machine's generated script by naming its MAC")
        }

        let specs: [PolicySpec]
        let engine: PolicyEngine
        do {
            specs = try PolicySetup.specs(from: configuration)
            engine = try PolicyEngine(specs: specs, limits: PolicySetup.limits(from: configuration), logger: logger,
                                      stateStore: directory.state, scriptTokens: scripts.tokens)
        } catch {
            throw ExitMessage("bootpolicy serve: cannot load policies: \(error)")
        }
        logger.info("policies loaded", metadata: ["chain": "\(specs.map(\.name).joined(separator: " -> "))"])

        let interfaces: [BoundInterface]
        do {
            interfaces = try BoundInterface.resolve(configuration.interfaces)
        } catch {
            throw ExitMessage("bootpolicy serve: \(error)")
        }

        let tokens: APITokens?
        do {
            tokens = try configuration.api.tokens.map(APITokens.load(path:))
        } catch {
            throw ExitMessage("bootpolicy serve: \(error)")
        }
        let apiTokens = TokenBox(tokens)
        if let tokens {
            let writers = tokens.tokens.filter { $0.scope == .write }.count
            logger.notice("control API: \(tokens.tokens.count) tokens (\(writers) may write) from \(tokens.path)")
        } else {
            logger.notice("control API: no tokens file (--api-tokens FILE): reads under /api/v1 are open, writes are off")
        }
        let reloader = ChainReloader(engine: engine, tokens: apiTokens, reread: reread, logger: logger)

        let timeline = ClientTimeline()
        let decider = BootPipeline(chain: engine, directory: directory, logger: logger)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, System.coreCount))
        let started = Date()
        var services: [Service] = []
        var bound: [String] = []

        let listenHost = configuration.listen ?? "0.0.0.0"
        if configuration.dhcp.enabled {
            let dhcp = try ServerFactory.dhcp(configuration: configuration, interfaces: interfaces, decider: decider,
                                              timeline: timeline, logger: logger)
            services.append(dhcp)
            bound.append("proxydhcp \(configuration.dhcp.ports.map(String.init).joined(separator: ",")) on \(interfaces.isEmpty ? listenHost : interfaces.map(\.description).joined(separator: ", "))")
        }
        // TFTP and HTTP bind each interface's own address, never the wildcard: with --interface
        // nothing answers on the host's other networks.
        let hosts = interfaces.isEmpty ? [listenHost] : interfaces.map(\.address)
        if configuration.tftp.enabled, let root = configuration.tftp.root {
            for host in hosts {
                services.append(try ServerFactory.tftp(configuration: configuration, host: host, root: root,
                                                       decider: decider, timeline: timeline, group: group, logger: logger))
                bound.append("tftp \(host):\(configuration.tftp.port) root \(root)")
            }
        }
        if configuration.http.enabled {
            let h = configuration.http
            guard h.requestTimeout > 0, h.idleTimeout > 0, h.maxConnections >= 1, h.maxConnectionsPerClient >= 1 else {
                throw ExitMessage("bootpolicy serve: http.request_timeout and http.idle_timeout must be positive seconds, http.max_connections and http.max_connections_per_client at least 1")
            }
            guard (1024...(64 << 20)).contains(h.maxBodyBytes) else {
                throw ExitMessage("bootpolicy serve: http.max_body_bytes must be between 1024 and 67108864 (got \(h.maxBodyBytes))")
            }
            let api = ControlAPI(store: directory.state, tokens: apiTokens, reload: { reloader.reload(by: $0) }, logger: logger)
            if configuration.api.protectStatus && configuration.api.tokens == nil {
                throw ExitMessage("bootpolicy serve: api.protect_status needs api.tokens (serve --api-tokens FILE): without tokens nobody could read the status page")
            }
            let routes = OperatorRoutes(registry: registry, timeline: timeline, started: started,
                                        guardedBy: configuration.api.protectStatus ? api : nil).routes
                .merging(api.routes) { a, _ in a }
            for host in configuration.http.address.map({ [$0] }) ?? hosts {
                services.append(try ServerFactory.checked("http", HTTPServer(
                    configuration: .init(host: host, port: configuration.http.port, root: configuration.http.root,
                                         requestTimeout: h.requestTimeout, idleTimeout: h.idleTimeout,
                                         maxConnections: h.maxConnections, maxConnectionsPerClient: h.maxConnectionsPerClient,
                                         maxBodyBytes: h.maxBodyBytes, scriptAccess: scripts.access),
                    decider: decider, sink: timeline, macLookup: { ServerFactory.neighbours.mac(for: $0) ?? directory.mac(forAddress: $0) },
                    routes: routes, group: group, logger: logger)))
                bound.append("http \(host):\(configuration.http.port)\(configuration.http.root.map { " root \($0)" } ?? "") (status page /, /metrics, /api/clients, control API /api/v1)")
            }
        }
        // "serving:" is said once every listener has bound (tests and operators take it as
        // the moment requests are answered), not when the servers are merely built.
        let ready: [@Sendable () -> Bool] = services.map { service in
            switch service {
            case let server as ProxyDHCPServer: return { !server.boundAddresses.isEmpty }
            case let server as TFTPServer: return { server.localAddress != nil }
            case let server as HTTPServer: return { server.isListening }
            default: return { true }
            }
        }
        let announced = bound

        services.append(PolicyReloader(reloader: reloader))
        let serviceGroup = ServiceGroup(configuration: .init(
            services: services.map { .init(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        do {
            try await withThrowingTaskGroup(of: Bool.self) { tasks in
                tasks.addTask {
                    try await serviceGroup.run()
                    return true
                }
                tasks.addTask {
                    // Bounded: 30 s of 20 ms looks; a bind failure ends the service group first.
                    for _ in 0..<1_500 where !Task.isCancelled {
                        if ready.allSatisfy({ $0() }) {
                            for line in announced { logger.notice("serving: \(line)") }
                            return false
                        }
                        try? await Task.sleep(for: .milliseconds(20))
                    }
                    if !Task.isCancelled { logger.warning("not every listener reported bound within 30 s") }
                    return false
                }
                while let servicesEnded = try await tasks.next() {
                    if servicesEnded { tasks.cancelAll() }
                }
            }
        } catch {
            try? await group.shutdownGracefully()
            throw ExitMessage("bootpolicy serve: \(error)")
        }
        try? await group.shutdownGracefully()
    }

    static func bootstrapLogging(format: String, level: String) -> Logger {
        let lvl = Logger.Level(rawValue: level) ?? .info
        LoggingSystem.bootstrap { label in
            var handler: LogHandler = format == "json" ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = lvl
            return handler
        }
        var logger = Logger(label: "bootpolicy")
        logger.logLevel = lvl
        return logger
    }
}

/// Reloads the chain (SIGHUP, `POST /api/v1/reload`): a new chain replaces the old only when
/// every policy loads. The API tokens file is read again too; a broken one keeps the old
/// tokens. One reload at a time.
final class ChainReloader: Sendable {
    let engine: PolicyEngine
    let tokens: TokenBox
    let reread: @Sendable () throws -> Configuration
    let logger: Logger
    private let lock = NIOLock()

    init(engine: PolicyEngine, tokens: TokenBox, reread: @escaping @Sendable () throws -> Configuration, logger: Logger) {
        self.engine = engine
        self.tokens = tokens
        self.reread = reread
        self.logger = logger
    }

    func reload(by who: String) -> ControlAPI.ReloadOutcome {
        lock.withLock {
            let configuration: Configuration
            let specs: [PolicySpec]
            do {
                configuration = try reread()
                specs = try PolicySetup.specs(from: configuration)
            } catch {
                logger.error("reload refused, the running policies stay (\(who)): \(error)")
                return .refused("\(error)")
            }
            reloadTokens(configuration.api.tokens)
            switch engine.reload(specs: specs) {
            case .success:
                let chain = specs.map(\.name)
                logger.notice("policies reloaded (\(who))", metadata: ["chain": "\(chain.joined(separator: " -> "))"])
                return .loaded(chain: chain)
            case .failure(let error):
                logger.error("reload refused, the running policies stay (\(who)): \(error)")
                return .refused("\(error)")
            }
        }
    }

    private func reloadTokens(_ path: String?) {
        guard let path else {
            if tokens.current != nil { logger.warning("api tokens: the configuration names no tokens file now; the loaded tokens stay until restart") }
            return
        }
        do {
            let loaded = try APITokens.load(path: path)
            tokens.replace(loaded)
            logger.notice("api tokens reloaded: \(loaded.tokens.count) from \(path)")
        } catch {
            logger.error("api tokens not reloaded, the loaded ones stay: \(error)")
        }
    }
}

/// The API tokens in force, replaced at reload.
final class TokenBox: Sendable {
    private let box: NIOLockedValueBox<APITokens?>
    init(_ tokens: APITokens?) { box = NIOLockedValueBox(tokens) }
    var current: APITokens? { box.withLockedValue { $0 } }
    func replace(_ tokens: APITokens) { box.withLockedValue { $0 = tokens } }
}

/// Reloads on SIGHUP.
struct PolicyReloader: Service, CustomStringConvertible {
    var description: String { "PolicyReloader" }
    let reloader: ChainReloader

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        for await _ in signals.cancelOnGracefulShutdown() {
            _ = reloader.reload(by: "SIGHUP")
        }
    }
}
