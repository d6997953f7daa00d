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
    /// Who this process runs as (Privileges.settle), for the first log line.
    var standing: Privileges.Standing = .unprivileged

    func run() async throws {
        let logger = Self.bootstrapLogging(format: configuration.log.format, level: configuration.log.level)
        let identity = Privileges.describe(standing)
        if identity.warning { logger.warning("\(identity.text)") } else { logger.notice("\(identity.text)") }
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

        // A policy's config.http_port, unless it sets one, is the port the HTTP server serves on
        // (for a configured 0 the kernel's choice, filled in once it is bound).
        let configuredHTTPPort = configuration.http.enabled && configuration.http.port != 0 ? configuration.http.port : nil
        let specs: [PolicySpec]
        let engine: PolicyEngine
        let data: PolicyData
        do {
            data = try PolicySetup.data(from: configuration)
        } catch {
            throw ExitMessage("bootpolicy serve: cannot load data: \(error)")
        }
        do {
            specs = try PolicySetup.specs(from: configuration, httpPort: configuredHTTPPort)
            engine = try PolicyEngine(specs: specs, limits: PolicySetup.limits(from: configuration), logger: logger,
                                      stateStore: directory.state, scriptTokens: scripts.tokens, data: data,
                                      server: PolicySetup.server(from: configuration, httpPort: configuredHTTPPort))
        } catch {
            throw ExitMessage("bootpolicy serve: cannot load policies: \(error)")
        }
        logger.info("policies loaded", metadata: ["chain": "\(specs.map(\.name).joined(separator: " -> "))", "version": "\(engine.chain.version)"])
        DataWatcher.logLoaded(engine.chain, logger: logger)

        // The shadow chain and the decision journal: both only watch the live decisions.
        let (shadow, journal) = try Self.observers(configuration: configuration, directory: directory, scripts: scripts,
                                                   data: data, httpPort: configuredHTTPPort, logger: logger)
        defer { Self.stop(shadow, journal) }

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
        let notifier = SystemdNotifier(logger: logger)
        let reloader = ChainReloader(engine: engine, tokens: apiTokens, reread: reread, logger: logger, notifier: notifier,
                                     httpPort: configuredHTTPPort, shadow: shadow, scriptTokens: scripts.tokens)
        let watcher = DataWatcher(paths: data.sources.map(\.path), logger: logger) { _ = reloader.reload(by: $0) }
        reloader.dataWatcher = watcher

        let timeline = ClientTimeline()
        let decider = BootPipeline(chain: engine, directory: directory, logger: logger)
        decider.observers = [shadow] + (journal.map { [JournalRecorder(journal: $0, engine: engine)] } ?? [])
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, System.coreCount))
        let started = Date()
        var services: [Service] = []
        // "serving:" (and READY=1 to the service manager) is said once every listener has told
        // the gate it is bound, with the ports it really took, not when the servers are merely
        // built.
        let gate = ListenerGate(logger: logger) { arrivals in
            let httpPorts = Set(arrivals.filter { $0.service == "http" }.flatMap { $0.addresses.map(\.port) })
            if configuredHTTPPort == nil, httpPorts.count == 1, let port = httpPorts.first {
                reloader.adoptBoundHTTPPort(port, configuration: configuration)
            }
            for arrival in arrivals { logger.notice("serving: \(arrival.line)") }
            notifier.ready(status: "serving: " + arrivals.map(\.line).joined(separator: "; "),
                           listeners: arrivals.flatMap { a in a.addresses.map { "\(a.service)=\($0)" } }.joined(separator: " "))
        }

        let listenHost = configuration.listen ?? "0.0.0.0"
        var fullPool: LeasePool?
        if configuration.dhcp.enabled {
            let on = interfaces.isEmpty ? listenHost : interfaces.map(\.description).joined(separator: ", ")
            let full = try ServerFactory.fullDHCP(configuration: configuration, directory: directory, logger: logger)
            fullPool = full?.pool
            let dhcp = try ServerFactory.dhcp(configuration: configuration, interfaces: interfaces, decider: decider,
                                              timeline: timeline, logger: logger, full: full,
                                              onServerRunning: gate.slot("proxydhcp") { addresses in
                                                  var ports: [Int] = []
                                                  for a in addresses where !ports.contains(a.port) { ports.append(a.port) }
                                                  // "dhcp" when full DHCP serves some subnet (with or without proxy for the rest).
                                                  let name = full == nil ? "proxydhcp" : (configuration.proxy ? "dhcp+proxydhcp" : "dhcp")
                                                  return "\(name) \(ports.map(String.init).joined(separator: ",")) on \(on)"
                                              })
            services.append(dhcp)
        }
        var pool6: DHCPv6LeasePool?
        if configuration.dhcp6.enabled {
            let on = interfaces.isEmpty ? "[\(configuration.dhcp6.listen ?? "::")]" : interfaces.map(\.name).joined(separator: ", ")
            let ranged = !configuration.dhcp6.ranges.isEmpty
            let server6 = try ServerFactory.dhcp6(configuration: configuration, interfaces: interfaces, decider: decider,
                                                    timeline: timeline, directory: directory, logger: logger,
                                                    onServerRunning: gate.slot("dhcpv6") { addresses in
                                                        var ports: [Int] = []
                                                        for a in addresses where !ports.contains(a.port) { ports.append(a.port) }
                                                        return "dhcpv6\(ranged ? "" : " (boot-only)") \(ports.map(String.init).joined(separator: ",")) on \(on)"
                                                    })
            pool6 = server6.configuration.responder.pool
            services.append(server6)
        }
        // TFTP and HTTP bind each interface's own address, never the wildcard: with --interface
        // nothing answers on the host's other networks. With DHCPv6, also its IPv6 address
        // (the host of the tftp:// and http:// URLs DHCPv6 clients are given).
        var hosts = interfaces.isEmpty ? [listenHost] : interfaces.map(\.address)
        if configuration.dhcp6.enabled {
            hosts += interfaces.compactMap(\.address6)
            if interfaces.isEmpty, let l = configuration.dhcp6.listen, IPv6Address(l).map({ !$0.isAny }) == true, !hosts.contains(l) {
                hosts.append(l)
            }
        }
        if configuration.tftp.enabled, let root = configuration.tftp.root {
            for host in hosts {
                services.append(try ServerFactory.tftp(configuration: configuration, host: host, root: root,
                                                       decider: decider, timeline: timeline, group: group, logger: logger,
                                                       onServerRunning: gate.slot("tftp") { addresses in
                                                           "tftp \(addresses.map(\.description).joined(separator: ", ")) root \(root)"
                                                       }))
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
            var api = ControlAPI(store: directory.state, tokens: apiTokens, reload: { reloader.reload(by: $0) }, logger: logger)
            api.leases = fullPool
            api.leases6 = pool6
            api.shadow = shadow
            api.journal = journal
            if configuration.api.protectStatus && configuration.api.tokens == nil {
                throw ExitMessage("bootpolicy serve: api.protect_status needs api.tokens (serve --api-tokens FILE): without tokens nobody could read the status page")
            }
            let routes = OperatorRoutes(registry: registry, timeline: timeline, started: started,
                                        guardedBy: configuration.api.protectStatus ? api : nil, shadow: shadow).routes
                .merging(api.routes) { a, _ in a }
            let rootNote = configuration.http.root.map { " root \($0)" } ?? ""
            // HTTPS beside HTTP (http.tls): the same routes, policies and limits.
            var identity: TLSIdentity?
            if let tls = configuration.http.tls {
                do {
                    identity = try TLSIdentity(certificate: tls.certificate, key: tls.key)
                } catch {
                    throw ExitMessage("bootpolicy serve: \(error)")
                }
                logger.notice("https: \(identity!.summary) (\(tls.certificate))")
                reloader.tls = identity
            }
            for host in configuration.http.address.map({ [$0] }) ?? hosts {
                if let identity, let tls = configuration.http.tls {
                    var secure = HTTPServer.Configuration(host: host, port: tls.port, root: configuration.http.root,
                                                          requestTimeout: h.requestTimeout, idleTimeout: h.idleTimeout,
                                                          maxConnections: h.maxConnections, maxConnectionsPerClient: h.maxConnectionsPerClient,
                                                          maxBodyBytes: h.maxBodyBytes, scriptAccess: scripts.access)
                    secure.tls = identity
                    services.append(try ServerFactory.checked("https", HTTPServer(
                        configuration: secure,
                        decider: decider, sink: timeline, macLookup: { ServerFactory.neighbours.mac(for: $0) ?? directory.mac(forAddress: $0) },
                        routes: routes, group: group, logger: logger,
                        onServerRunning: gate.slot("https") { addresses in
                            "https \(addresses.map(\.description).joined(separator: ", "))\(rootNote)"
                        })))
                }
                services.append(try ServerFactory.checked("http", HTTPServer(
                    configuration: .init(host: host, port: configuration.http.port, root: configuration.http.root,
                                         requestTimeout: h.requestTimeout, idleTimeout: h.idleTimeout,
                                         maxConnections: h.maxConnections, maxConnectionsPerClient: h.maxConnectionsPerClient,
                                         maxBodyBytes: h.maxBodyBytes, scriptAccess: scripts.access),
                    decider: decider, sink: timeline, macLookup: { ServerFactory.neighbours.mac(for: $0) ?? directory.mac(forAddress: $0) },
                    routes: routes, group: group, logger: logger,
                    onServerRunning: gate.slot("http") { addresses in
                        "http \(addresses.map(\.description).joined(separator: ", "))\(rootNote) (status page /, /metrics, /api/clients, control API /api/v1)"
                    })))
            }
        }
        gate.seal()

        services.append(PolicyReloader(reloader: reloader))
        services.append(watcher)
        // Last: a service group shuts its services down in reverse order, so STOPPING=1 goes
        // out as soon as shutdown begins.
        services.append(ShutdownNotice(notifier: notifier))
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
                    // Only a warning: a bind failure ends the service group (and this wait) first.
                    try? await Task.sleep(for: .seconds(30))
                    if !Task.isCancelled && !gate.fired { logger.warning("not every listener reported bound within 30 s") }
                    return false
                }
                while let servicesEnded = try await tasks.next() {
                    if servicesEnded { tasks.cancelAll() }
                }
            }
        } catch {
            notifier.stopping()
            try? await group.shutdownGracefully()
            throw ExitMessage("bootpolicy serve: \(error)")
        }
        notifier.stopping()
        try? await group.shutdownGracefully()
    }

    /// Built outside `run`: in that async function the same code crashed the release
    /// compiler (LLVM's coroutine splitting, signal 11, Swift 6.3).
    static func observers(configuration: Configuration, directory: ClientDirectory, scripts: ScriptKey.Setup, data: PolicyData,
                          httpPort: Int?, logger: Logger) throws -> (ShadowChain, DecisionJournal?) {
        let shadow = ShadowChain(live: directory.state, logger: logger)
        do {
            shadow.install(try shadow.prepare(specs: PolicySetup.shadowSpecs(from: configuration, httpPort: httpPort),
                                              limits: PolicySetup.shadowLimits(from: configuration),
                                              cpuPercent: configuration.shadowCPUPercent, scriptTokens: scripts.tokens,
                                              data: data, server: PolicySetup.server(from: configuration, httpPort: httpPort)))
        } catch {
            throw ExitMessage("bootpolicy serve: cannot load the shadow chain: \(error)")
        }
        let journal: DecisionJournal?
        do {
            journal = try JournalSetup.journal(from: configuration, logger: logger)
        } catch {
            throw ExitMessage("bootpolicy serve: \(error)")
        }
        if let journal {
            logger.notice("decision journal: \(journal.store.description)",
                          metadata: ["max_entries": "\(journal.settings.maxEntries)", "max_age_s": "\(Int(journal.settings.maxAge))"])
        } else {
            logger.notice("decision journal: off (journal.enabled: false)")
        }
        journal?.start()
        shadow.start()
        return (shadow, journal)
    }

    static func stop(_ shadow: ShadowChain, _ journal: DecisionJournal?) {
        shadow.stop()
        journal?.close()
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
    let notifier: SystemdNotifier?
    /// The HTTP port policies are told (`PolicySetup.specs`): the one serving, not a new one
    /// in the re-read configuration (a reload does not rebind).
    private let httpPort: NIOLockedValueBox<Int?>
    private let lock = NIOLock()
    private let watcherBox = NIOLockedValueBox<DataWatcher?>(nil)
    /// Told the data files of each configuration that loads.
    var dataWatcher: DataWatcher? {
        get { watcherBox.withLockedValue { $0 } }
        set { watcherBox.withLockedValue { $0 = newValue } }
    }
    private let tlsBox = NIOLockedValueBox<TLSIdentity?>(nil)
    /// The HTTPS identity, read again from its files at each reload.
    var tls: TLSIdentity? {
        get { tlsBox.withLockedValue { $0 } }
        set { tlsBox.withLockedValue { $0 = newValue } }
    }

    /// The shadow chain, reloaded with the live one (nil: tests that have none).
    let shadow: ShadowChain?
    let scriptTokens: ScriptTokens

    init(engine: PolicyEngine, tokens: TokenBox, reread: @escaping @Sendable () throws -> Configuration, logger: Logger,
         notifier: SystemdNotifier? = nil, httpPort: Int? = nil, shadow: ShadowChain? = nil, scriptTokens: ScriptTokens = .random()) {
        self.shadow = shadow
        self.scriptTokens = scriptTokens
        self.engine = engine
        self.tokens = tokens
        self.reread = reread
        self.logger = logger
        self.notifier = notifier
        self.httpPort = NIOLockedValueBox(httpPort)
    }

    /// The HTTP server was configured with port 0 and took `port`: the chain is loaded again
    /// so that policies build their URLs with it, before anything is announced as serving.
    func adoptBoundHTTPPort(_ port: Int, configuration: Configuration) {
        lock.withLock {
            httpPort.withLockedValue { $0 = port }
            do {
                let specs = try PolicySetup.specs(from: configuration, httpPort: port)
                let server = PolicySetup.server(from: configuration, httpPort: port)
                // The shadow too: its URLs must carry the same port, or every one would differ.
                let shadowNext = try shadow?.prepare(specs: PolicySetup.shadowSpecs(from: configuration, httpPort: port),
                                                     limits: PolicySetup.shadowLimits(from: configuration),
                                                     cpuPercent: configuration.shadowCPUPercent, scriptTokens: scriptTokens, data: engine.chain.data, server: server)
                if case .failure(let error) = engine.reload(specs: specs, server: server) { throw error }
                if let shadowNext { shadow?.install(shadowNext) }
                logger.info("policies told the HTTP port \(port)", metadata: ["version": "\(engine.chain.version)"])
            } catch {
                logger.error("policies could not be told the HTTP port \(port): \(error)")
            }
        }
    }

    func reload(by who: String) -> ControlAPI.ReloadOutcome {
        let announced = notifier?.reloading() ?? false
        let outcome = reloadChain(by: who)
        if announced {
            switch outcome {
            case .loaded: notifier?.reloaded("policies reloaded by \(who)")
            case .refused: notifier?.reloaded("reload by \(who) refused, the running policies stay")
            }
        }
        return outcome
    }

    private func reloadChain(by who: String) -> ControlAPI.ReloadOutcome {
        lock.withLock {
            let configuration: Configuration
            let specs: [PolicySpec]
            let data: PolicyData
            let port = httpPort.withLockedValue { $0 }
            // A reload does not rebind: the server facts of the running chain stay, bar the
            // configured address.
            var server = engine.chain.server
            let shadowNext: ShadowChain.Prepared?
            do {
                configuration = try reread()
                specs = try PolicySetup.specs(from: configuration, httpPort: port)
                data = try PolicySetup.data(from: configuration)
                server.address = configuration.serverAddress
                // The candidate is checked before anything changes: a broken shadow refuses
                // the whole reload, as a broken live policy does.
                do {
                    shadowNext = try shadow?.prepare(specs: PolicySetup.shadowSpecs(from: configuration, httpPort: port),
                                                     limits: PolicySetup.shadowLimits(from: configuration),
                                                     cpuPercent: configuration.shadowCPUPercent, scriptTokens: scriptTokens, data: data, server: server)
                } catch {
                    throw ConfigError("shadow chain: \(error)")
                }
            } catch {
                logger.error("reload refused, the running policies stay (\(who)): \(error)")
                return .refused("\(error)")
            }
            reloadTokens(configuration.api.tokens)
            reloadTLS()
            switch engine.reload(specs: specs, data: data, server: server) {
            case .success:
                if let shadowNext { shadow?.install(shadowNext) }
                let chain = specs.map(\.name)
                logger.notice("policies reloaded (\(who))", metadata: ["chain": "\(chain.joined(separator: " -> "))", "version": "\(engine.chain.version)"])
                DataWatcher.logLoaded(engine.chain, logger: logger)
                dataWatcher?.watch(data.sources.map(\.path))
                return .loaded(chain: chain)
            case .failure(let error):
                logger.error("reload refused, the running policies stay (\(who)): \(error)")
                return .refused("\(error)")
            }
        }
    }

    /// New certificate files take effect for the next connection; broken ones leave the
    /// served identity as it was.
    private func reloadTLS() {
        guard let tls else { return }
        do {
            let summary = try tls.reload()
            logger.notice("https: certificate reloaded: \(summary)")
        } catch {
            logger.error("https: certificate not reloaded, the served one stays: \(error)")
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

/// Says `STOPPING=1` once graceful shutdown begins (it is the service group's last service,
/// so the first one told).
struct ShutdownNotice: Service, CustomStringConvertible {
    var description: String { "ShutdownNotice" }
    let notifier: SystemdNotifier

    func run() async {
        // Returns on graceful shutdown. It throws on cancellation, when the group ends for an
        // error: that error is the one to report, and Runtime says STOPPING=1 then.
        do { try await gracefulShutdown() } catch { return }
        notifier.stopping()
    }
}

/// Where every listener reports in (`onServerRunning`): once the last one has, `whenAll` runs,
/// once, with each listener's addresses in the order the slots were taken.
final class ListenerGate: Sendable {
    struct Arrival: Sendable {
        var service: String
        var addresses: [ListeningAddress]
        /// The `serving:` line, e.g. `tftp 127.0.0.1:40124 root /srv/tftp`.
        var line: String
    }

    private struct State {
        var slots: [(service: String, describe: @Sendable ([ListeningAddress]) -> String)] = []
        var arrivals: [Int: Arrival] = [:]
        var sealed = false
        var fired = false
    }

    private let state = NIOLockedValueBox(State())
    private let whenAll: @Sendable ([Arrival]) -> Void
    let logger: Logger

    init(logger: Logger, whenAll: @escaping @Sendable ([Arrival]) -> Void) {
        self.logger = logger
        self.whenAll = whenAll
    }

    /// True once `whenAll` has run.
    var fired: Bool { state.withLockedValue { $0.fired } }

    /// A listener's callback; `describe` makes its `serving:` line from its addresses.
    func slot(_ service: String, describe: @escaping @Sendable ([ListeningAddress]) -> String) -> OnServerRunning {
        let index = state.withLockedValue { s -> Int in
            precondition(!s.sealed, "ListenerGate: a slot taken after seal()")
            s.slots.append((service, describe))
            return s.slots.count - 1
        }
        return { [self] addresses in arrive(index, addresses) }
    }

    /// No more slots; with none at all (every server disabled) `whenAll` runs now.
    func seal() {
        state.withLockedValue { $0.sealed = true }
        fireIfComplete()
    }

    private func arrive(_ index: Int, _ addresses: [ListeningAddress]) {
        state.withLockedValue { s in
            let slot = s.slots[index]
            s.arrivals[index] = Arrival(service: slot.service, addresses: addresses, line: slot.describe(addresses))
        }
        fireIfComplete()
    }

    private func fireIfComplete() {
        let complete: [Arrival]? = state.withLockedValue { s in
            guard s.sealed, !s.fired, s.arrivals.count == s.slots.count else { return nil }
            s.fired = true
            return s.slots.indices.compactMap { s.arrivals[$0] }
        }
        if let complete { whenAll(complete) }
    }
}
