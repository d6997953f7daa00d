import Foundation

/// One configured policy: a Lua file and its configuration table.
public struct PolicySpec: Sendable, Equatable {
    /// Name used in logs, metrics and `explain`. Empty: the policy's own `name` field, else
    /// the file name without `.lua`.
    public var name: String
    /// Path of the policy file; `require` finds modules next to it.
    public var path: String
    public var config: [String: PolicyValue]

    public init(name: String = "", path: String, config: [String: PolicyValue] = [:]) {
        self.name = name
        self.path = path
        self.config = config
    }

    public init(name: String = "", url: URL, config: [String: PolicyValue] = [:]) {
        self.init(name: name, path: url.path, config: config)
    }
}

/// Resource limits for every hook call (and for running a policy file at load).
public struct PolicyLimits: Sendable, Equatable {
    /// Lua VM instructions one hook call may execute (checked every 1,000).
    public var instructionBudget: Int
    /// CPU milliseconds (of the calling thread) one hook call may use. This is the time
    /// budget proper: a thread preempted on a busy host is not charged for the wait.
    public var cpuTime: Double
    /// Wall-clock milliseconds one hook call may take, a backstop well above `cpuTime`.
    public var wallClock: Double
    /// Bytes one Lua state may allocate (all policies of a chain share a state).
    public var memoryBytes: Int
    /// Number of Lua states (each holds every policy); this many decisions run in parallel.
    public var states: Int

    public init(
        instructionBudget: Int = 2_000_000, cpuTime: Double = 20, wallClock: Double = 250,
        memoryBytes: Int = 32 << 20, states: Int = PolicyLimits.defaultStates
    ) {
        self.instructionBudget = max(1_000, instructionBudget)
        self.cpuTime = max(0.1, cpuTime)
        self.wallClock = max(0.1, wallClock)
        self.memoryBytes = max(1 << 20, memoryBytes)
        self.states = max(1, states)
    }

    /// One state per core, 2...8.
    public static var defaultStates: Int { min(8, max(2, ProcessInfo.processInfo.activeProcessorCount)) }
}

/// What a policy may know about the server running it (`server` in every policy): the ports
/// it serves on and the configured address. Nil: that service is off or the fact unknown.
public struct ServerFacts: Sendable, Equatable {
    /// `server_address` from the configuration; nil means "the address the request reached".
    public var address: String?
    public var httpPort: Int?
    /// The HTTPS listener's port (`http.tls`), nil without one.
    public var httpsPort: Int?
    public var tftpPort: Int?
    /// The proxyDHCP/DHCP ports, for policies that explain themselves.
    public var dhcpPorts: [Int]

    public init(address: String? = nil, httpPort: Int? = nil, httpsPort: Int? = nil, tftpPort: Int? = nil, dhcpPorts: [Int] = []) {
        self.address = address
        self.httpPort = httpPort
        self.httpsPort = httpsPort
        self.tftpPort = tftpPort
        self.dhcpPorts = dhcpPorts
    }

    var wire: [UInt8] {
        var t: [String: PolicyValue] = [:]
        if let address { t["address"] = .string(address) }
        if let httpPort { t["http_port"] = .integer(httpPort) }
        if let httpsPort { t["https_port"] = .integer(httpsPort) }
        if let tftpPort { t["tftp_port"] = .integer(tftpPort) }
        if !dhcpPorts.isEmpty { t["dhcp_ports"] = .list(dhcpPorts.map { .integer($0) }) }
        var w = LuaWire.Writer(capacity: 64)
        w.policyValue(.table(t))
        return w.bytes
    }
}
