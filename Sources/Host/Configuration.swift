import Foundation
import Yams

/// Everything `bootpolicy serve` needs. Read from `--config FILE` (YAML), then the command-line
/// flags override it; every field has a safe default (proxy mode, nothing bound until asked).
struct Configuration: Codable, Equatable {
    struct DHCP: Codable, Equatable {
        /// Ports for ProxyDHCP: 67 (broadcast DISCOVER) and 4011 (PXE boot-server requests).
        var ports: [Int] = [67, 4011]
        var enabled: Bool = true
        /// Threads per socket; nil: one per core, at most 4.
        var threads: Int?
        /// Full DHCP for these ranges' subnets (`--dhcp-range`).
        var ranges: [Range] = []
        /// Addresses pinned by MAC (full DHCP).
        var reservations: [Reservation] = []
        /// ICMP echo before offering an address with no lease (`--no-ping` turns it off).
        var ping: Bool = true
        var pingTimeoutMs: Int = 100
        /// Seconds a declined address is offered to nobody.
        var declineQuarantine: Int = 600

        /// One `dhcp.ranges` entry: `range` is `START,END[,NETMASK][,LEASE]` as for
        /// `--dhcp-range`; the rest are the options its clients are told.
        struct Range: Codable, Equatable {
            var range: String
            var routers: [String] = []
            var dns: [String] = []
            var domain: String?
            var ntp: [String] = []
            var mtu: Int?
            /// "DESTINATION/PREFIX GATEWAY" (option 121).
            var routes: [String] = []
            init(range: String) { self.range = range }
            init(from decoder: Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                range = try c.decode(String.self, forKey: .range)
                routers = try c.decodeIfPresent([String].self, forKey: .routers) ?? []
                dns = try c.decodeIfPresent([String].self, forKey: .dns) ?? []
                domain = try c.decodeIfPresent(String.self, forKey: .domain)
                ntp = try c.decodeIfPresent([String].self, forKey: .ntp) ?? []
                mtu = try c.decodeIfPresent(Int.self, forKey: .mtu)
                routes = try c.decodeIfPresent([String].self, forKey: .routes) ?? []
            }
        }
        struct Reservation: Codable, Equatable {
            var mac: String
            var address: String
        }
        enum CodingKeys: String, CodingKey {
            case ports, enabled, threads, ranges, reservations, ping, pingTimeoutMs = "ping_timeout_ms", declineQuarantine = "decline_quarantine"
        }
        init() {}
        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            ports = try c.decodeIfPresent([Int].self, forKey: .ports) ?? ports
            enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? enabled
            threads = try c.decodeIfPresent(Int.self, forKey: .threads)
            ranges = try c.decodeIfPresent([Range].self, forKey: .ranges) ?? []
            reservations = try c.decodeIfPresent([Reservation].self, forKey: .reservations) ?? []
            ping = try c.decodeIfPresent(Bool.self, forKey: .ping) ?? ping
            pingTimeoutMs = try c.decodeIfPresent(Int.self, forKey: .pingTimeoutMs) ?? pingTimeoutMs
            declineQuarantine = try c.decodeIfPresent(Int.self, forKey: .declineQuarantine) ?? declineQuarantine
        }
    }
    /// DHCPv6 (`--dhcp6`): boot-only answers to netboot clients beside the site's DHCPv6
    /// server, and stateful IA_NA addresses for the links of `ranges`.
    struct DHCP6: Codable, Equatable {
        var enabled = false
        /// [DHCPv6, EDK2 boot-server follow-up]: 547 and 4011.
        var ports: [Int] = [547, 4011]
        /// `START,END[,PREFIXLEN][,LEASE]` with IPv6 addresses (`--dhcp-range fd77::100,fd77::1ff`).
        var ranges: [String] = []
        /// Without `interfaces`: the address to bind (e.g. ::1 for a trial run).
        var listen: String?
        enum CodingKeys: String, CodingKey { case enabled, ports, ranges, listen }
        init() {}
        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? enabled
            ports = try c.decodeIfPresent([Int].self, forKey: .ports) ?? ports
            ranges = try c.decodeIfPresent([String].self, forKey: .ranges) ?? []
            listen = try c.decodeIfPresent(String.self, forKey: .listen)
        }
    }

    struct TFTP: Codable, Equatable {
        var enabled: Bool = true
        var root: String?
        var port: Int = 69
        var maxTransfers: Int = 512
        var maxTransfersPerClient: Int = 8
        /// Transfer threads; nil: one per core.
        var threads: Int?
        enum CodingKeys: String, CodingKey {
            case enabled, root, port, maxTransfers = "max_transfers", maxTransfersPerClient = "max_transfers_per_client", threads
        }
        init() {}
        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? enabled
            root = try c.decodeIfPresent(String.self, forKey: .root)
            port = try c.decodeIfPresent(Int.self, forKey: .port) ?? port
            maxTransfers = try c.decodeIfPresent(Int.self, forKey: .maxTransfers) ?? maxTransfers
            maxTransfersPerClient = try c.decodeIfPresent(Int.self, forKey: .maxTransfersPerClient) ?? maxTransfersPerClient
            threads = try c.decodeIfPresent(Int.self, forKey: .threads)
        }
    }
    struct HTTP: Codable, Equatable {
        var enabled: Bool = true
        var port: Int = 8080
        var root: String?
        var address: String?
        var requestTimeout: Double = 10
        var idleTimeout: Double = 60
        var maxConnections: Int = 4096
        var maxConnectionsPerClient: Int = 64
        /// The largest request body read (API writes, policy callbacks).
        var maxBodyBytes: Int = 1 << 20
        /// When a `?mac=` in a URL is believed: `token` (with its `ipxe.script_token`),
        /// `neighbour` (the requester's own MAC) or `open`.
        var scriptAccess = "token"
        /// The key script tokens are signed with (created if absent).
        var scriptKey: String?
        /// HTTPS beside HTTP: the same routes and policies, `req.scheme == "https"`.
        var tls: TLS?
        struct TLS: Codable, Equatable {
            /// PEM: the server certificate, then any intermediates.
            var certificate: String
            /// PEM private key of the certificate.
            var key: String
            var port: Int = 8443
            init(certificate: String, key: String) { self.certificate = certificate; self.key = key }
            init(from decoder: Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                certificate = try c.decode(String.self, forKey: .certificate)
                key = try c.decode(String.self, forKey: .key)
                port = try c.decodeIfPresent(Int.self, forKey: .port) ?? port
            }
        }
        enum CodingKeys: String, CodingKey {
            case enabled, port, root, address, requestTimeout = "request_timeout", idleTimeout = "idle_timeout"
            case maxConnections = "max_connections", maxConnectionsPerClient = "max_connections_per_client"
            case maxBodyBytes = "max_body_bytes", scriptAccess = "script_access", scriptKey = "script_key", tls
        }
        init() {}
        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? enabled
            port = try c.decodeIfPresent(Int.self, forKey: .port) ?? port
            root = try c.decodeIfPresent(String.self, forKey: .root)
            address = try c.decodeIfPresent(String.self, forKey: .address)
            requestTimeout = try c.decodeIfPresent(Double.self, forKey: .requestTimeout) ?? requestTimeout
            idleTimeout = try c.decodeIfPresent(Double.self, forKey: .idleTimeout) ?? idleTimeout
            maxConnections = try c.decodeIfPresent(Int.self, forKey: .maxConnections) ?? maxConnections
            maxConnectionsPerClient = try c.decodeIfPresent(Int.self, forKey: .maxConnectionsPerClient) ?? maxConnectionsPerClient
            maxBodyBytes = try c.decodeIfPresent(Int.self, forKey: .maxBodyBytes) ?? maxBodyBytes
            scriptAccess = try c.decodeIfPresent(String.self, forKey: .scriptAccess) ?? scriptAccess
            scriptKey = try c.decodeIfPresent(String.self, forKey: .scriptKey)
            tls = try c.decodeIfPresent(TLS.self, forKey: .tls)
        }
    }
    /// The control API under /api/v1 (docs/api.md).
    struct API: Codable, Equatable {
        /// The bearer tokens file; without one, API reads are open and writes are off.
        var tokens: String?
        /// The status page, /api/clients and /metrics need a token too (they list the
        /// network's machines); needs `tokens`.
        var protectStatus = false
        init() {}
        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            tokens = try c.decodeIfPresent(String.self, forKey: .tokens)
            protectStatus = try c.decodeIfPresent(Bool.self, forKey: .protectStatus) ?? false
        }
        enum CodingKeys: String, CodingKey { case tokens, protectStatus = "protect_status" }
    }
    struct Policy: Codable, Equatable {
        var file: String
        var name: String?
        var config: YAMLValue?
    }
    struct Limits: Codable, Equatable {
        var instructions: Int?
        var timeMs: Int?
        var memoryMB: Int?
        var states: Int?
        /// Only in `shadow_limits` (the schema refuses it in `limits`).
        var cpuPercent: Double?
        enum CodingKeys: String, CodingKey { case instructions, timeMs = "time_ms", memoryMB = "memory_mb", states, cpuPercent = "cpu_percent" }
    }
    /// Where per-client state and generated scripts are kept, and their bounds.
    struct State: Codable, Equatable {
        /// A SQLite file path, or nil / "memory" for memory only (lost at restart).
        var store: String?
        /// Seconds a client's state lives when `state.set` names no ttl.
        var ttl: Double = 3600
        var maxClients: Int = 100_000
        var maxClientBytes: Int = 4096
        /// SQLite's synchronous: full (a commit survives power loss) or normal (survives a crash).
        var sync: String = "full"
        enum CodingKeys: String, CodingKey { case store, ttl, maxClients = "max_clients", maxClientBytes = "max_client_bytes", sync }
        init() {}
        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            store = try c.decodeIfPresent(String.self, forKey: .store)
            ttl = try c.decodeIfPresent(Double.self, forKey: .ttl) ?? ttl
            maxClients = try c.decodeIfPresent(Int.self, forKey: .maxClients) ?? maxClients
            maxClientBytes = try c.decodeIfPresent(Int.self, forKey: .maxClientBytes) ?? maxClientBytes
            sync = try c.decodeIfPresent(String.self, forKey: .sync) ?? sync
        }
    }
    /// The decision journal: every decision, kept for `bootpolicy why` and `diff`.
    struct Journal: Codable, Equatable {
        var enabled = true
        /// A SQLite file; by default beside a SQLite state file (`state.db` -> `state.decisions.db`),
        /// else in memory.
        var path: String?
        /// Seconds an entry is kept.
        var maxAge: Double = 7 * 86_400
        var maxEntries: Int?
        enum CodingKeys: String, CodingKey { case enabled, path, maxAge = "max_age", maxEntries = "max_entries" }
        init() {}
        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? enabled
            path = try c.decodeIfPresent(String.self, forKey: .path)
            maxAge = try c.decodeIfPresent(Double.self, forKey: .maxAge) ?? maxAge
            maxEntries = try c.decodeIfPresent(Int.self, forKey: .maxEntries)
        }
    }
    struct Log: Codable, Equatable {
        var format: String = "text"
        var level: String = "info"
        init() {}
        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            format = try c.decodeIfPresent(String.self, forKey: .format) ?? format
            level = try c.decodeIfPresent(String.self, forKey: .level) ?? level
        }
    }

    /// A data file policies read as `data.<name>`: `machines: machines.yaml`, or
    /// `machines: { file: machines.csv, key: mac, key_format: mac }`.
    struct DataFile: Codable, Equatable {
        var file: String
        var key: String?
        var keyFormat: String?
        enum CodingKeys: String, CodingKey { case file, key, keyFormat = "key_format" }
        init(file: String, key: String? = nil, keyFormat: String? = nil) {
            self.file = file
            self.key = key
            self.keyFormat = keyFormat
        }
        init(from decoder: Decoder) throws {
            if let single = try? decoder.singleValueContainer(), let file = try? single.decode(String.self) {
                self.file = file
                return
            }
            let c = try decoder.container(keyedBy: CodingKeys.self)
            file = try c.decode(String.self, forKey: .file)
            key = try c.decodeIfPresent(String.self, forKey: .key)
            keyFormat = try c.decodeIfPresent(String.self, forKey: .keyFormat)
        }
    }

    var interfaces: [String] = []
    /// Address to bind on when no interface is named (tests use 127.0.0.1).
    var listen: String?
    var proxy: Bool = true
    /// The address put in next-server / option 54 when the policy says nothing; by default the
    /// address of the interface the request arrived on.
    var serverAddress: String?
    var dhcp = DHCP()
    var dhcp6 = DHCP6()
    var tftp = TFTP()
    var http = HTTP()
    var policies: [Policy] = []
    /// A candidate chain run beside the live one, never answering (docs/safe-changes.md).
    var shadow: [Policy] = []
    var shadowLimits = Limits()
    /// `shadow_limits.cpu_percent`: the share of one core the shadow may use; past it, shed.
    var shadowCPUPercent: Double { shadowLimits.cpuPercent ?? 2 }
    var journal = Journal()
    var data: [String: DataFile] = [:]
    var limits = Limits()
    var log = Log()
    var state = State()
    var api = API()
    /// Who `serve` runs as when started as root (`--user`): default `bootpolicy`, else
    /// `nobody`; `root` keeps root (with a warning).
    var user: String?

    enum CodingKeys: String, CodingKey {
        case interfaces, listen, proxy, serverAddress = "server_address", dhcp, dhcp6, tftp, http, policies, data, limits, log, state, api
        case shadow, shadowLimits = "shadow_limits", journal, user
    }

    init() {}

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        interfaces = try c.decodeIfPresent([String].self, forKey: .interfaces) ?? []
        listen = try c.decodeIfPresent(String.self, forKey: .listen)
        proxy = try c.decodeIfPresent(Bool.self, forKey: .proxy) ?? true
        serverAddress = try c.decodeIfPresent(String.self, forKey: .serverAddress)
        dhcp = try c.decodeIfPresent(DHCP.self, forKey: .dhcp) ?? DHCP()
        dhcp6 = try c.decodeIfPresent(DHCP6.self, forKey: .dhcp6) ?? DHCP6()
        tftp = try c.decodeIfPresent(TFTP.self, forKey: .tftp) ?? TFTP()
        http = try c.decodeIfPresent(HTTP.self, forKey: .http) ?? HTTP()
        policies = try c.decodeIfPresent([Policy].self, forKey: .policies) ?? []
        shadow = try c.decodeIfPresent([Policy].self, forKey: .shadow) ?? []
        shadowLimits = try c.decodeIfPresent(Limits.self, forKey: .shadowLimits) ?? Limits()
        guard shadowCPUPercent >= 0.1, shadowCPUPercent <= 100 else {
            throw DecodingError.dataCorruptedError(forKey: .shadowLimits, in: c,
                                                   debugDescription: "shadow_limits.cpu_percent must be from 0.1 to 100 (got \(shadowCPUPercent))")
        }
        journal = try c.decodeIfPresent(Journal.self, forKey: .journal) ?? Journal()
        data = try c.decodeIfPresent([String: DataFile].self, forKey: .data) ?? [:]
        limits = try c.decodeIfPresent(Limits.self, forKey: .limits) ?? Limits()
        log = try c.decodeIfPresent(Log.self, forKey: .log) ?? Log()
        state = try c.decodeIfPresent(State.self, forKey: .state) ?? State()
        api = try c.decodeIfPresent(API.self, forKey: .api) ?? API()
        user = try c.decodeIfPresent(String.self, forKey: .user)
    }

    /// Reads a YAML file; errors name the file and, where Yams knows it, the line.
    static func load(path: String) throws -> Configuration {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError("\(path): cannot read: \(error.localizedDescription)")
        }
        do {
            // A misspelt key would otherwise be ignored and its default silently used.
            // Before any decoding: Yams reads a YAML 1.1 base-60 integer ("1:30") with
            // unchecked arithmetic, and one too large for Int traps (found by ConfigFuzz).
            if let node = try Yams.compose(yaml: text), let bad = Self.oversizedSexagesimal(in: node) {
                throw ConfigError("\(path):\(bad.line): '\(bad.text.prefix(40))' is a base-60 number (YAML 1.1) too large for an integer; quote it if it is text")
            }
            if case .table(let top) = try YAMLDecoder().decode(YAMLValue.self, from: text) {
                if let unknown = unknownKeys(top).first {
                    throw ConfigError("\(path): unknown key '\(unknown)' (known: \(knownKeys(at: unknown)))")
                }
            }
            let config = try YAMLDecoder().decode(Configuration.self, from: text)
            // Relative paths in a config file are relative to the file, not to the cwd.
            return config.resolvingPaths(relativeTo: URL(fileURLWithPath: path).deletingLastPathComponent().path)
        } catch let error as DecodingError {
            throw ConfigError("\(path): \(describe(error))")
        } catch let error as ConfigError {
            throw error
        } catch {
            throw ConfigError("\(path): \(error)")
        }
    }

    /// A scalar Yams would read as a base-60 integer whose value does not fit an Int. Yams
    /// tries that for any scalar with a ":" decoded as an integer (YAMLValue tries every
    /// scalar so), keeping the parts that read as numbers and multiplying by 60 unchecked.
    static func oversizedSexagesimal(in node: Node) -> (text: String, line: Int)? {
        switch node {
        case .scalar(let scalar):
            guard scalar.string.contains(":") else { return nil }
            var text = Substring(scalar.string)
            if text.first == "-" || text.first == "+" { text = text.dropFirst() }
            func number(_ part: Substring) -> Int? {
                let p = part.filter { $0 != "_" }
                if p.hasPrefix("0x") { return Int(p.dropFirst(2), radix: 16) }
                if p.hasPrefix("0o") { return Int(p.dropFirst(2), radix: 8) }
                if p.hasPrefix("0b") { return Int(p.dropFirst(2), radix: 2) }
                return Int(p)
            }
            var value = 0, base = 1, overflow = false
            for d in text.split(separator: ":", omittingEmptySubsequences: false).compactMap(number).reversed() {
                let (m, o1) = d.multipliedReportingOverflow(by: base)
                let (v, o2) = value.addingReportingOverflow(m)
                let (b, o3) = base.multipliedReportingOverflow(by: 60)
                if o1 || o2 || o3 { overflow = true; break }
                value = v
                base = b
            }
            return overflow ? (scalar.string, (node.mark?.line ?? 0)) : nil
        case .mapping(let mapping):
            for (key, value) in mapping {
                if let bad = oversizedSexagesimal(in: key) ?? oversizedSexagesimal(in: value) { return bad }
            }
            return nil
        case .sequence(let sequence):
            for item in sequence {
                if let bad = oversizedSexagesimal(in: item) { return bad }
            }
            return nil
        default:
            return nil
        }
    }

    static let schema: [String: Set<String>] = [
        "": ["interfaces", "listen", "proxy", "server_address", "dhcp", "dhcp6", "tftp", "http", "policies", "data", "limits", "log", "state", "api",
             "shadow", "shadow_limits", "journal", "user"],
        "dhcp": ["ports", "enabled", "threads", "ranges", "reservations", "ping", "ping_timeout_ms", "decline_quarantine"],
        "dhcp6": ["enabled", "ports", "ranges", "listen"],
        "tftp": ["enabled", "root", "port", "max_transfers", "max_transfers_per_client", "threads"],
        "http": ["enabled", "port", "root", "address", "request_timeout", "idle_timeout", "max_connections", "max_connections_per_client",
                 "max_body_bytes", "script_access", "script_key", "tls"],
        "http.tls": ["certificate", "key", "port"],
        "limits": ["instructions", "time_ms", "memory_mb", "states"],
        "shadow_limits": ["instructions", "time_ms", "memory_mb", "states", "cpu_percent"],
        "journal": ["enabled", "path", "max_age", "max_entries"],
        "log": ["format", "level"],
        "state": ["store", "ttl", "max_clients", "max_client_bytes", "sync"],
        "api": ["tokens", "protect_status"],
        "policies[]": ["file", "name", "config"],
        "dhcp.ranges[]": ["range", "routers", "dns", "domain", "ntp", "mtu", "routes"],
        "dhcp.reservations[]": ["mac", "address"],
    ]

    /// Dotted paths of keys the schema does not know (a policy's own `config` is free-form).
    static func unknownKeys(_ top: [String: YAMLValue]) -> [String] {
        var out: [String] = []
        for (key, value) in top.sorted(by: { $0.key < $1.key }) {
            guard schema[""]!.contains(key) else { out.append(key); continue }
            if case .table(let section) = value, let known = schema[key] {
                out += section.keys.sorted().filter { !known.contains($0) }.map { "\(key).\($0)" }
            }
            if key == "data", case .table(let files) = value {
                for (name, entry) in files.sorted(by: { $0.key < $1.key }) {
                    if case .table(let t) = entry {
                        out += t.keys.sorted().filter { !["file", "key", "key_format"].contains($0) }.map { "data.\(name).\($0)" }
                    }
                }
                continue
            }
            if key == "http", case .table(let section) = value, case .table(let tls)? = section["tls"] {
                out += tls.keys.sorted().filter { !schema["http.tls"]!.contains($0) }.map { "http.tls.\($0)" }
            }
            if key == "dhcp", case .table(let section) = value {
                // Entries of dhcp.ranges and dhcp.reservations: a misspelt "gateway" for
                // "routers" would otherwise be dropped without a word.
                for (list, known) in [("ranges", schema["dhcp.ranges[]"]!), ("reservations", schema["dhcp.reservations[]"]!)] {
                    guard case .list(let items)? = section[list] else { continue }
                    for (i, item) in items.enumerated() {
                        if case .table(let t) = item {
                            out += t.keys.sorted().filter { !known.contains($0) }.map { "dhcp.\(list)[\(i)].\($0)" }
                        }
                    }
                }
            }
            if key == "policies" || key == "shadow", case .list(let list) = value {
                for (i, item) in list.enumerated() {
                    if case .table(let p) = item {
                        out += p.keys.sorted().filter { !schema["policies[]"]!.contains($0) }.map { "\(key)[\(i)].\($0)" }
                    }
                }
            }
        }
        return out
    }

    static func knownKeys(at dotted: String) -> String {
        if dotted.hasPrefix("data.") { return "file, key, key_format" }
        for list in ["dhcp.ranges", "dhcp.reservations"] where dotted.hasPrefix(list + "[") {
            return (schema[list + "[]"] ?? []).sorted().joined(separator: ", ")
        }
        let section = dotted.contains("[") ? "policies[]" : (dotted.split(separator: ".").count > 1 ? String(dotted.split(separator: ".")[0]) : "")
        return (schema[section] ?? []).sorted().joined(separator: ", ")
    }

    func resolvingPaths(relativeTo dir: String) -> Configuration {
        func abs(_ p: String?) -> String? {
            guard let p, !p.hasPrefix("/") else { return p }
            return URL(fileURLWithPath: p, relativeTo: URL(fileURLWithPath: dir, isDirectory: true)).standardizedFileURL.path
        }
        var copy = self
        copy.tftp.root = abs(tftp.root)
        copy.http.root = abs(http.root)
        copy.api.tokens = abs(api.tokens)
        copy.http.scriptKey = abs(http.scriptKey)
        if let store = state.store, store != "memory", !store.contains("://") { copy.state.store = abs(store) }
        copy.data = data.mapValues { entry in
            var e = entry
            e.file = abs(entry.file) ?? entry.file
            return e
        }
        copy.journal.path = abs(journal.path)
        func located(_ policy: Policy) -> Policy {
            var p = policy
            // A bare name with no such file beside the config is a shipped policy
            // (`file: arch-aware`), looked up as on the command line.
            if let beside = abs(p.file), p.file.contains("/") || FileManager.default.fileExists(atPath: beside) { p.file = beside }
            return p
        }
        copy.policies = policies.map(located)
        copy.shadow = shadow.map(located)
        return copy
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ ctx: DecodingError.Context) -> String {
            ctx.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .typeMismatch(let type, let ctx): return "\(path(ctx)): expected \(type): \(ctx.debugDescription)"
        case .valueNotFound(_, let ctx): return "\(path(ctx)): missing value"
        case .keyNotFound(let key, let ctx): return "\(path(ctx)).\(key.stringValue): required key missing"
        case .dataCorrupted(let ctx): return "\(path(ctx)): \(ctx.debugDescription) \(ctx.underlyingError.map { "\($0)" } ?? "")"
        @unknown default: return "\(error)"
        }
    }
}

struct ConfigError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A free-form YAML (or JSON) value: what a policy's own `config:` block holds, and the
/// control API's request bodies before they are checked.
indirect enum YAMLValue: Codable, Equatable {
    case string(String), integer(Int), number(Double), bool(Bool), list([YAMLValue]), table([String: YAMLValue]), null

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int.self) { self = .integer(i) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let l = try? c.decode([YAMLValue].self) { self = .list(l) }
        else if let t = try? c.decode([String: YAMLValue].self) { self = .table(t) }
        else { throw DecodingError.dataCorruptedError(in: c, debugDescription: "unsupported YAML value") }
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .string(let s): try c.encode(s)
        case .integer(let i): try c.encode(i)
        case .number(let d): try c.encode(d)
        case .bool(let b): try c.encode(b)
        case .list(let l): try c.encode(l)
        case .table(let t): try c.encode(t)
        case .null: try c.encodeNil()
        }
    }
}
