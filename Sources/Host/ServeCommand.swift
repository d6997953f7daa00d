import ArgumentParser
import Foundation
import Logging

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the ProxyDHCP, TFTP and HTTP servers, every request decided by the policy chain.",
        discussion: "Flags override the config file. With no --policy the shipped default policy runs: it answers as `dnsmasq --dhcp-range=ADDR,proxy --dhcp-match=IPXEBOOT,175 --dhcp-boot=net:IPXEBOOT,bootstrap.ipxe --dhcp-boot=undionly.kpxe --enable-tftp` does in its working form. SIGHUP re-reads the config and reloads the policies; the new chain replaces the old only if all of it loads."
    )

    @Option(name: .customLong("interface"), help: ArgumentHelp("Serve on this interface (repeatable). Its IPv4 address becomes the server address.", valueName: "name"))
    var interfaces: [String] = []

    @Option(help: ArgumentHelp("Bind to this address instead of interfaces (e.g. 127.0.0.1 for a trial run).", valueName: "address"))
    var listen: String?

    @Flag(inversion: .prefixedNo, help: "ProxyDHCP: answer PXE clients of subnets no --dhcp-range serves, beside the site's DHCP server. --no-proxy: answer only the ranges' subnets.")
    var proxy: Bool = true

    @Option(name: .customLong("policy"), help: ArgumentHelp("A policy file, or a shipped policy by name (default, arch-aware). Repeat for a chain, in order.", valueName: "file"))
    var policies: [String] = []

    @Option(help: ArgumentHelp("YAML config file (ports, roots, per-policy config, limits, logging).", valueName: "file"))
    var config: String?

    @Option(help: ArgumentHelp("Serve TFTP from this directory.", valueName: "dir"))
    var tftpRoot: String?

    @Option(help: ArgumentHelp("TFTP port (default 69; 0: one the kernel picks, reported in the serving: line and to NOTIFY_SOCKET).", valueName: "port"))
    var tftpPort: Int?

    @Flag(help: "Do not run the TFTP server.")
    var noTftp = false

    @Option(help: ArgumentHelp("HTTP port for scripts, files, /metrics and the status page (default 8080; 0: one the kernel picks).", valueName: "port"))
    var httpPort: Int?

    @Option(help: ArgumentHelp("Serve static files (kernels, initrds, ISOs) over HTTP from this directory.", valueName: "dir"))
    var httpRoot: String?

    @Flag(help: "Do not run the HTTP server.")
    var noHttp = false

    @Option(name: .customLong("dhcp-port"), help: ArgumentHelp("ProxyDHCP ports (repeatable; default 67 and 4011; 0: one the kernel picks, answered as 67).", valueName: "port"))
    var dhcpPorts: [Int] = []

    @Option(name: .customLong("dhcp-range"), help: ArgumentHelp("Full DHCP for this range's subnet: START,END[,NETMASK][,LEASE] as dnsmasq spells it (repeatable; NETMASK defaults to the interface's; LEASE in s, m, h, d, w or infinite, default 1h).", valueName: "range"))
    var dhcpRanges: [String] = []

    @Flag(help: "Full DHCP: offer addresses without first checking with an ICMP echo that nothing answers on them.")
    var noPing = false

    @Flag(help: "Also serve DHCPv6 (UDP 547, and 4011 for UEFI's follow-up) on every --interface: boot file URLs (option 59) for netboot clients beside the site's DHCPv6 server, and addresses for the links of IPv6 --dhcp-range entries.")
    var dhcp6 = false

    @Option(name: .customLong("dhcp6-port"), help: ArgumentHelp("DHCPv6 ports: the first has 547's role, the second 4011's (default 547 and 4011; 0: one the kernel picks).", valueName: "port"))
    var dhcp6Ports: [Int] = []

    @Option(name: .customLong("dhcp6-listen"), help: ArgumentHelp("Without --interface: bind DHCPv6 to this IPv6 address (e.g. ::1 for a trial run).", valueName: "address"))
    var dhcp6Listen: String?

    @Flag(help: "Do not run the ProxyDHCP server.")
    var noDhcp = false

    @Option(help: ArgumentHelp("Address to give as next-server and option 54 when a policy names none (default: the address of the arrival interface).", valueName: "address"))
    var serverAddress: String?

    @Option(help: ArgumentHelp("Keep per-client state and generated scripts in this SQLite file, so they survive a restart (created if absent; \"memory\" keeps them in memory only). Default: $STATE_DIRECTORY/state.db under systemd's StateDirectory=, else memory only.", valueName: "path"))
    var state: String?

    @Option(help: ArgumentHelp("Bearer tokens for the control API under /api/v1, one `<read|write> <token> [name]` a line; the file must not be readable by others. Without it API reads are open and writes are off.", valueName: "file"))
    var apiTokens: String?

    @Option(help: ArgumentHelp("When a `?mac=` in an HTTP URL is believed: token (only with the token `ipxe.script_token` put beside it; default), neighbour (only from that machine's own address) or open (anyone may read any machine's script).", valueName: "mode"))
    var scriptAccess: String?

    @Option(help: ArgumentHelp("The key script tokens are signed with (created, mode 600, if absent). Default: beside the --state file; with state in memory or PostgreSQL, a key new each run. Servers sharing a database need the same file.", valueName: "file"))
    var scriptKey: String?

    @Option(help: ArgumentHelp("Started as root, give root up for this user before opening anything, keeping only CAP_NET_BIND_SERVICE and CAP_NET_RAW (default: bootpolicy if that user exists, else nobody; root keeps root, with a warning).", valueName: "name"))
    var user: String?

    @Option(help: ArgumentHelp("Log format: text (a line per exchange, like dnsmasq --log-dhcp) or json.", valueName: "format"))
    var logFormat: String?

    @Option(help: ArgumentHelp("Log level: trace, debug, info, notice, warning, error.", valueName: "level"))
    var logLevel: String?

    func validate() throws {
        if let f = logFormat, !["text", "json"].contains(f) { throw ValidationError("--log-format must be text or json, not '\(f)'") }
        if let l = logLevel, Logger.Level(rawValue: l) == nil { throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error") }
        for p in dhcpPorts + [tftpPort, httpPort].compactMap({ $0 }) where !(0...65535).contains(p) {
            throw ValidationError("port \(p) is out of range")
        }
    }

    /// The config file, then the flags on top.
    func resolvedConfiguration() throws -> Configuration {
        var c = try config.map(Configuration.load(path:)) ?? Configuration()
        if !interfaces.isEmpty { c.interfaces = interfaces }
        if let listen { c.listen = listen }
        if !policies.isEmpty { c.policies = policies.map { Configuration.Policy(file: $0) } }
        if let tftpRoot { c.tftp.root = tftpRoot }
        if let tftpPort { c.tftp.port = tftpPort }
        if noTftp { c.tftp.enabled = false }
        if let httpPort { c.http.port = httpPort }
        if let httpRoot { c.http.root = httpRoot }
        if noHttp { c.http.enabled = false }
        if !dhcpPorts.isEmpty { c.dhcp.ports = dhcpPorts }
        // An IPv6 START makes a DHCPv6 range, as for dnsmasq.
        let (v6Ranges, v4Ranges) = (dhcpRanges.filter { $0.split(separator: ",").first?.contains(":") == true },
                                    dhcpRanges.filter { $0.split(separator: ",").first?.contains(":") != true })
        if !v4Ranges.isEmpty { c.dhcp.ranges = v4Ranges.map(Configuration.DHCP.Range.init(range:)) }
        if !v6Ranges.isEmpty {
            c.dhcp6.ranges = v6Ranges
            c.dhcp6.enabled = true
        }
        if dhcp6 { c.dhcp6.enabled = true }
        if !dhcp6Ports.isEmpty { c.dhcp6.ports = dhcp6Ports }
        if let dhcp6Listen { c.dhcp6.listen = dhcp6Listen }
        if noPing { c.dhcp.ping = false }
        if !proxy { c.proxy = false }
        if !c.proxy && c.dhcp.ranges.isEmpty && c.dhcp6.ranges.isEmpty {
            throw ConfigError("--no-proxy answers only the subnets of full-DHCP ranges: give --dhcp-range START,END (or keep proxy mode)")
        }
        if noDhcp { c.dhcp.enabled = false }
        if let serverAddress { c.serverAddress = serverAddress }
        if let state { c.state.store = state }
        if let apiTokens { c.api.tokens = apiTokens }
        if let scriptAccess { c.http.scriptAccess = scriptAccess }
        if let scriptKey { c.http.scriptKey = scriptKey }
        if c.state.store == nil, let dir = ProcessInfo.processInfo.environment["STATE_DIRECTORY"], !dir.isEmpty {
            // systemd's StateDirectory= (possibly several, colon-separated): the first is ours.
            c.state.store = URL(fileURLWithPath: String(dir.split(separator: ":").first ?? Substring(dir)))
                .appendingPathComponent("state.db").path
        }
        if let user { c.user = user }
        if let logFormat { c.log.format = logFormat }
        if let logLevel { c.log.level = logLevel }
        if c.policies.isEmpty { c.policies = [Configuration.Policy(file: "default")] }
        if c.tftp.enabled && c.tftp.root == nil {
            throw ConfigError("TFTP needs a root: give --tftp-root DIR (or --no-tftp)")
        }
        // The config file's ports too: a bind of 70000 would trap, not refuse.
        if c.dhcp6.enabled, !(1...2).contains(c.dhcp6.ports.count) {
            throw ConfigError("dhcp6.ports: give one or two ports (547's role, then 4011's), not \(c.dhcp6.ports.count)")
        }
        for (key, port) in c.dhcp.ports.map({ ("dhcp.ports", $0) }) + c.dhcp6.ports.map({ ("dhcp6.ports", $0) }) + [("tftp.port", c.tftp.port), ("http.port", c.http.port)]
            + (c.http.tls.map { [("http.tls.port", $0.port)] } ?? [])
            where !(0...65535).contains(port) {
            throw ConfigError("\(key): port \(port) is out of range (0-65535; 0 lets the kernel pick one)")
        }
        if c.interfaces.isEmpty && c.listen == nil {
            throw ConfigError("name where to serve: --interface NAME (repeatable), or --listen ADDRESS; bootpolicy never picks interfaces on its own")
        }
        return c
    }

    func run() async throws {
        // Set when this image is the one root execed as the user: every refusal then says so,
        // since what the user cannot read root could.
        let gaveUpFor = ProcessInfo.processInfo.environment[Privileges.marker]
        do {
            try await serve()
        } catch let error as ExitMessage {
            guard let user = gaveUpFor else { throw error }
            throw ExitMessage(error.description + "\n(serve gave root up for user \(user) at start: that user must be able to read the config, policies and roots and to write the state; --user root keeps root)")
        }
    }

    private func serve() async throws {
        let config: Configuration
        do {
            config = try resolvedConfiguration()
        } catch {
            throw ExitMessage("bootpolicy serve: \(error)")
        }
        // Before anything is opened: started as root, this execs itself as the user.
        let standing: Privileges.Standing
        do {
            standing = try Privileges.settle(user: config.user)
        } catch {
            throw ExitMessage("bootpolicy serve: \(error)")
        }
        let command = self
        try await Runtime(configuration: config, reread: { try command.resolvedConfiguration() }, standing: standing).run()
    }
}

/// An error whose text is the whole message (no "Error:" prefix noise), exit code 1.
struct ExitMessage: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
