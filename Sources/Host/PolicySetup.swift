import Clients
import Foundation
import Logging
import LuaBridge
import Protocols

/// From the configuration's `policies:` and `limits:` to what LuaBridge loads.
enum PolicySetup {
    /// `httpPort`: the port `serve`'s HTTP server serves on, given to every policy as
    /// `config.http_port` unless its config sets one (arch-aware builds its URLs with it).
    static func specs(from configuration: Configuration, httpPort: Int? = nil) throws -> [PolicySpec] {
        try specs(configuration.policies.isEmpty ? [Configuration.Policy(file: "default")] : configuration.policies, httpPort: httpPort)
    }

    /// The `shadow:` chain's; empty when none is configured.
    static func shadowSpecs(from configuration: Configuration, httpPort: Int? = nil) throws -> [PolicySpec] {
        try specs(configuration.shadow, httpPort: httpPort)
    }

    static func specs(_ policies: [Configuration.Policy], httpPort: Int?) throws -> [PolicySpec] {
        try policies.map { policy in
            let path = try PolicyLocator.resolve(policy.file)
            var config: [String: PolicyValue] = [:]
            switch policy.config {
            case .none, .some(.null): break
            case .some(.table(let table)): config = table.compactMapValues(policyValue)
            case .some(let other): throw ConfigError("policy \(policy.file): config must be a table of keys, not \(other)")
            }
            if let httpPort, config["http_port"] == nil { config["http_port"] = .integer(httpPort) }
            let name = policy.name ?? URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
            return PolicySpec(name: name, path: path, config: config)
        }
    }

    /// The configuration's `data:` files, in name order.
    static func dataSources(from configuration: Configuration) throws -> [DataSource] {
        try configuration.data.sorted { $0.key < $1.key }.map { name, entry in
            do {
                return try DataSource.parse(name: name, path: entry.file, key: entry.key, keyFormat: entry.keyFormat)
            } catch let error as DataError {
                throw ConfigError("data.\(name): \(error.message)")
            }
        }
    }

    /// Reads and checks every data file; the error reads `file:line:col: message`.
    static func data(from configuration: Configuration) throws -> PolicyData {
        let sources = try dataSources(from: configuration)
        do { return try PolicyData.load(sources) } catch { throw ConfigError(error.description) }
    }

    /// What policies are told about this server (`server.*`). `httpPort`: the one serving.
    static func server(from configuration: Configuration, httpPort: Int?) -> ServerFacts {
        ServerFacts(
            address: configuration.serverAddress,
            httpPort: configuration.http.enabled ? (httpPort ?? (configuration.http.port == 0 ? nil : configuration.http.port)) : nil,
            httpsPort: configuration.http.enabled ? configuration.http.tls.flatMap { $0.port == 0 ? nil : $0.port } : nil,
            tftpPort: configuration.tftp.enabled && configuration.tftp.root != nil ? configuration.tftp.port : nil,
            dhcpPorts: configuration.dhcp.enabled ? configuration.dhcp.ports : [])
    }

    /// A shadow chain's own budgets: `shadow_limits`, each unset one as `limits`, and one Lua
    /// state (it runs on one thread).
    static func shadowLimits(from configuration: Configuration) -> PolicyLimits {
        var merged = configuration
        let s = configuration.shadowLimits, l = configuration.limits
        merged.limits = Configuration.Limits(instructions: s.instructions ?? l.instructions, timeMs: s.timeMs ?? l.timeMs,
                                             memoryMB: s.memoryMB ?? l.memoryMB, states: s.states ?? 1)
        return limits(from: merged)
    }

    static func limits(from configuration: Configuration) -> PolicyLimits {
        let l = configuration.limits
        let defaults = PolicyLimits()
        return PolicyLimits(
            instructionBudget: l.instructions ?? defaults.instructionBudget,
            // time_ms is the CPU budget a hook gets; the wall-clock backstop (for a thread
            // the host does not schedule) stays well above it.
            cpuTime: l.timeMs.map(Double.init) ?? defaults.cpuTime,
            wallClock: l.timeMs.map { max(defaults.wallClock, 5 * Double($0)) } ?? defaults.wallClock,
            memoryBytes: l.memoryMB.map { $0 << 20 } ?? defaults.memoryBytes,
            states: l.states ?? defaults.states)
    }

    /// The chain a configuration names, loaded for a tool that decides without serving
    /// (`explain`, `diff`): its data, limits and server facts, no HTTP port bound.
    static func offlineEngine(from configuration: Configuration, stateStore: ClientStateStore, scriptTokens: ScriptTokens,
                              logger: Logger) throws -> PolicyEngine {
        try PolicyEngine(specs: try specs(from: configuration), limits: limits(from: configuration), logger: logger,
                         stateStore: stateStore, scriptTokens: scriptTokens, data: try data(from: configuration),
                         server: server(from: configuration, httpPort: nil))
    }

    static func policyValue(_ value: YAMLValue) -> PolicyValue? {
        switch value {
        case .string(let s): return .string(s)
        case .integer(let i): return .integer(i)
        case .number(let d): return .number(d)
        case .bool(let b): return .bool(b)
        case .list(let l): return .list(l.compactMap(policyValue))
        case .table(let t): return .table(t.compactMapValues(policyValue))
        case .null: return nil
        }
    }
}
