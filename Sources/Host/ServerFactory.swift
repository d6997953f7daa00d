import Clients
import Foundation
import Logging
import NIOCore
import Protocols
import ServiceLifecycle

/// Builds the protocol servers from the configuration.
enum ServerFactory {
    /// One neighbour-table snapshot for every server: who an on-link requester is.
    static let neighbours = NeighborCache()

    static func tftp(configuration: Configuration, host: String, root: String,
                     decider: BootPipeline, timeline: ClientTimeline, group: EventLoopGroup, logger: Logger,
                     onServerRunning: OnServerRunning? = nil) throws -> Service {
        let threads = configuration.tftp.threads ?? System.coreCount
        guard (1...64).contains(threads) else {
            throw ExitMessage("bootpolicy serve: tftp.threads must be between 1 and 64 (got \(threads))")
        }
        guard configuration.tftp.maxTransfersPerClient >= 1 else {
            throw ExitMessage("bootpolicy serve: tftp.max_transfers_per_client must be at least 1 (got \(configuration.tftp.maxTransfersPerClient))")
        }
        guard configuration.tftp.maxTransfers >= 1 else {
            throw ExitMessage("bootpolicy serve: tftp.max_transfers must be at least 1 (got \(configuration.tftp.maxTransfers))")
        }
        do {
            return try TFTPServer(
                configuration: .init(root: root, host: host, port: configuration.tftp.port,
                                     maxConcurrentTransfers: configuration.tftp.maxTransfers,
                                     maxTransfersPerClient: configuration.tftp.maxTransfersPerClient, transferThreads: threads),
                decider: decider, events: timeline,
                macLookup: { [directory = decider.directory] in Self.neighbours.mac(for: $0) ?? directory.mac(forAddress: $0) },
                logger: logger, eventLoopGroup: group, onServerRunning: onServerRunning)
        } catch {
            throw ExitMessage("bootpolicy serve: --tftp-root: \(error)")
        }
    }
}

extension ServerFactory {
    /// A server whose construction failed becomes a start-up refusal that names it.
    static func checked<S>(_ what: String, _ make: @autoclosure () throws -> S) throws -> S {
        do { return try make() } catch { throw ExitMessage("bootpolicy serve: \(error)") }
    }

    static func dhcp(configuration: Configuration, interfaces: [BoundInterface], decider: BootDecider,
                     timeline: ClientTimeline, logger: Logger, full: FullDHCPResponder? = nil,
                     onServerRunning: OnServerRunning? = nil) throws -> Service {
        var serverAddress: IPv4Address?
        if let text = configuration.serverAddress {
            guard let address = IPv4Address(text) else { throw ExitMessage("bootpolicy serve: --server-address \(text): not an IPv4 address") }
            serverAddress = address
        }
        let threads = configuration.dhcp.threads ?? ProxyDHCPServer.Configuration.defaultThreadsPerSocket
        guard (1...16).contains(threads) else {
            throw ExitMessage("bootpolicy serve: dhcp.threads must be between 1 and 16 (got \(threads))")
        }
        return ProxyDHCPServer(
            configuration: .init(interfaces: interfaces.map(\.name), bindAddress: configuration.listen ?? "0.0.0.0",
                                 ports: configuration.dhcp.ports, serverAddress: serverAddress, threadsPerSocket: threads,
                                 fullDHCP: full, proxy: configuration.proxy),
            decider: decider, events: timeline, logger: logger, onServerRunning: onServerRunning)
    }
}

extension ServerFactory {
    /// The ranges and reservations of `dhcp`, each checked as `serve` needs them; a problem
    /// is an error naming the range. A range without a netmask takes it from the interface
    /// whose network (in `networks`) holds it, as dnsmasq does. `bootpolicy check` runs this
    /// too, so a config is refused before it reaches a server.
    /// With `guessing` (check, away from the server), a range whose netmask nothing here
    /// gives is checked as a /24 and named in `guessed` instead of refused.
    static func dhcpPlan(_ dhcp: Configuration.DHCP, networks: [IPv4Network], guessing: Bool = false,
                         guessed: inout [String]) throws -> (ranges: [DHCPRange], reservations: [String: IPv4Address]) {
        var ranges: [DHCPRange] = []
        for entry in dhcp.ranges {
            let spec: DHCPRange.Spec
            do { spec = try DHCPRange.parse(entry.range) } catch { throw DHCPPlanError("--dhcp-range \(entry.range): \(error)") }
            var prefix = spec.prefixLength
            if prefix == nil {
                // The interface whose network holds the range gives the mask, as dnsmasq does.
                prefix = networks.first { $0.contains(spec.start) && $0.contains(spec.end) }?.prefixLength
            }
            if prefix == nil && guessing {
                guessed.append(entry.range)
                prefix = 24
            }
            guard let prefix else {
                throw DHCPPlanError("--dhcp-range \(entry.range): no interface here has an address in its network, so its netmask is unknown; add it (START,END,NETMASK)")
            }
            do {
                var range = try DHCPRange(start: spec.start, end: spec.end,
                                          subnet: IPv4Network(address: spec.start, prefixLength: prefix), leaseTime: spec.leaseTime)
                func addresses(_ list: [String], _ key: String) throws -> [IPv4Address] {
                    try list.map { text in
                        guard let a = IPv4Address(text) else { throw DHCPRangeError("\(key): '\(text)' is not an IPv4 address") }
                        return a
                    }
                }
                range.routers = try addresses(entry.routers, "routers")
                range.dnsServers = try addresses(entry.dns, "dns")
                range.ntpServers = try addresses(entry.ntp, "ntp")
                range.domain = entry.domain
                range.mtu = entry.mtu
                range.routes = try entry.routes.map { text in
                    let parts = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
                    guard parts.count == 2, let destination = IPv4Network(parts[0]), let gateway = IPv4Address(parts[1]) else {
                        throw DHCPRangeError("routes: '\(text)': expected 'DESTINATION/PREFIX GATEWAY'")
                    }
                    return DHCPRange.Route(destination: destination, gateway: gateway)
                }
                try range.check()
                if let other = ranges.first(where: { $0.subnet == range.subnet || $0.contains(range.start) || $0.contains(range.end) }) {
                    throw DHCPRangeError("overlaps \(other) (one range per subnet)")
                }
                ranges.append(range)
            } catch {
                throw DHCPPlanError("dhcp.ranges \(entry.range): \(error)")
            }
        }
        var reservations: [String: IPv4Address] = [:]
        for r in dhcp.reservations {
            guard let address = IPv4Address(r.address), ranges.contains(where: { $0.subnet.contains(address) }) else {
                throw DHCPPlanError("dhcp.reservations \(r.mac): '\(r.address)' is not an address in a served subnet")
            }
            let mac = r.mac.lowercased()
            guard mac.split(separator: ":").count == 6, mac.allSatisfy({ $0.isHexDigit || $0 == ":" }) else {
                throw DHCPPlanError("dhcp.reservations: '\(r.mac)' is not a MAC address (aa:bb:cc:dd:ee:ff)")
            }
            if let other = reservations.first(where: { $0.value == address }) {
                throw DHCPPlanError("dhcp.reservations: \(address) is reserved for both \(other.key) and \(mac)")
            }
            reservations[mac] = address
        }
        guard (1...5000).contains(dhcp.pingTimeoutMs) else { throw DHCPPlanError("dhcp.ping_timeout_ms must be 1-5000 (got \(dhcp.pingTimeoutMs))") }
        guard dhcp.declineQuarantine >= 0 else { throw DHCPPlanError("dhcp.decline_quarantine must not be negative") }
        return (ranges, reservations)
    }

    /// The full-DHCP pool for `dhcp.ranges`, or nil when none is configured. Every problem is
    /// a refusal at start that names the range: a server that half-serves a subnet is worse
    /// than one that does not start.
    static func fullDHCP(configuration: Configuration, directory: ClientDirectory, logger: Logger) throws -> FullDHCPResponder? {
        let dhcp = configuration.dhcp
        guard !dhcp.ranges.isEmpty else { return nil }
        let plan: (ranges: [DHCPRange], reservations: [String: IPv4Address])
        do {
            var guessed: [String] = []
            plan = try dhcpPlan(dhcp, networks: localNetworks(), guessed: &guessed)
        } catch {
            throw ExitMessage("bootpolicy serve: \(error)")
        }
        let (ranges, reservations) = plan
        var probe: AddressProbe?
        if dhcp.ping {
            switch ICMPEchoProbe.open(timeout: Double(dhcp.pingTimeoutMs) / 1000) {
            case let .success(p): probe = p
            case let .failure(why):
                logger.warning("full dhcp: addresses are offered without an ICMP check: \(why) (--no-ping silences this)")
            }
        }
        if directory.location == "memory" {
            logger.warning("full dhcp: leases are kept in memory only and forgotten at restart; give --state FILE to keep them")
        }
        var settings = LeasePool.Settings(declineQuarantine: TimeInterval(dhcp.declineQuarantine), reservations: reservations)
        settings.spreadStart = directory.sharedLeaseStore != nil
        let pool = LeasePool(ranges: ranges, settings: settings,
                             journal: directory.leaseJournal, probe: probe, loaded: directory.loadedLeases, logger: logger)
        if let shared = directory.sharedLeaseStore {
            shared.followLeases { [pool] in pool.remoteChanged($0) }
        }
        logger.notice("full dhcp: \(ranges.map { "\($0) (\($0.subnet), lease \($0.leaseTime == DHCPRange.infinite ? "infinite" : "\($0.leaseTime) s"))" }.joined(separator: ", "))",
                      metadata: ["leases": "\(directory.loadedLeases.count)", "ping": "\(probe != nil)", "store": "\(directory.location)"])
        return FullDHCPResponder(pool: pool)
    }

    /// A `dhcp.ranges` / `dhcp.reservations` problem, worded for the log and for `check`.
    struct DHCPPlanError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// The IPv4 networks of this host's (or namespace's) interfaces.
    static func localNetworks() -> [IPv4Network] {
        guard let devices = try? System.enumerateDevices() else { return [] }
        return devices.compactMap { d in
            guard case let .v4(a)? = d.address, case let .v4(m)? = d.netmask else { return nil }
            let address = IPv4Address(rawValue: UInt32(bigEndian: a.address.sin_addr.s_addr))
            let mask = UInt32(bigEndian: m.address.sin_addr.s_addr)
            return IPv4Network(address: address, prefixLength: mask.nonzeroBitCount)
        }
    }
}

extension ServerFactory {
    /// The IPv6 ranges of `dhcp6.ranges`, each checked; an error names the range.
    static func dhcp6Ranges(_ dhcp6: Configuration.DHCP6) throws -> [DHCPv6Range] {
        var ranges: [DHCPv6Range] = []
        for text in dhcp6.ranges {
            let range: DHCPv6Range
            do {
                guard let r = try DHCPv6Range.parse(text) else { throw DHCPRangeError("START is not an IPv6 address") }
                range = r
            } catch {
                throw DHCPPlanError("dhcp6.ranges \(text): \(error)")
            }
            if let other = ranges.first(where: { $0.isOnLink(range.start) || range.isOnLink($0.start) }) {
                throw DHCPPlanError("dhcp6.ranges \(text): on the same link as \(other) (one range per prefix)")
            }
            ranges.append(range)
        }
        return ranges
    }

    /// Our DUID: DUID-LL of the first interface's MAC (stable while the NIC is), else DUID-UUID
    /// from /etc/machine-id (stable for the installation), else a DUID-LL made up for this run.
    static func serverDUID(interfaces: [BoundInterface]) -> DUID {
        for i in interfaces {
            if let mac = BoundInterface.hardwareAddress(of: i.name) { return DUID(bytes: [0, 3, 0, 1] + mac)! }
        }
        if let id = try? String(contentsOfFile: "/etc/machine-id", encoding: .utf8),
           let bytes = Hex.decode(id.trimmingCharacters(in: .whitespacesAndNewlines)), bytes.count == 16 {
            return DUID(bytes: [0, 4] + bytes)!
        }
        return DUID(bytes: [0, 3, 0, 1, 0x02] + (0..<5).map { _ in UInt8.random(in: 0...255) })!
    }

    static func dhcp6(configuration: Configuration, interfaces: [BoundInterface], decider: BootDecider, timeline: ClientTimeline,
                      directory: ClientDirectory, logger: Logger,
                      onServerRunning: OnServerRunning? = nil) throws -> DHCPv6Server {
        let ranges: [DHCPv6Range]
        do { ranges = try dhcp6Ranges(configuration.dhcp6) } catch { throw ExitMessage("bootpolicy serve: \(error)") }
        var pool: DHCPv6LeasePool?
        if !ranges.isEmpty {
            pool = DHCPv6LeasePool(ranges: ranges, journal: directory.lease6Journal, loaded: directory.loadedLeases6,
                                   declineQuarantine: TimeInterval(configuration.dhcp.declineQuarantine))
            if let shared = directory.sharedLeaseStore, let pool {
                shared.followLeases6 { [pool] in pool.remoteChanged($0) }
            }
            if directory.location == "memory" {
                logger.warning("dhcpv6: bindings are kept in memory only and forgotten at restart; give --state FILE to keep them")
            }
            logger.notice("dhcpv6 ranges (\(directory.loadedLeases6.count) bindings loaded): \(ranges.map { "\($0) (/\($0.prefixLength), lease \($0.leaseTime == UInt32.max ? "infinite" : "\($0.leaseTime) s"))" }.joined(separator: ", "))")
        }
        let listen = configuration.dhcp6.listen
        if interfaces.isEmpty {
            guard let listen else {
                throw ExitMessage("bootpolicy serve: --dhcp6 with --listen: name the IPv6 address to bind with --dhcp6-listen (e.g. ::1), or serve on --interface")
            }
            guard IPv6Address(listen) != nil else { throw ExitMessage("bootpolicy serve: --dhcp6-listen \(listen): not an IPv6 address") }
        }
        for i in interfaces where i.address6 == nil {
            logger.warning("dhcpv6: \(i.name) has no global or unique-local IPv6 address: bare file names cannot become tftp:// URLs there (policies must give full URLs), and no DHCPv6 range serves it")
        }
        let duid = serverDUID(interfaces: interfaces)
        let responder = DHCPv6Responder(serverDUID: duid, pool: pool, proxy: configuration.proxy)
        logger.notice("dhcpv6: server DUID \(duid) (\(duid.typeName))\(pool == nil ? ", boot-only" : "")")
        return DHCPv6Server(
            configuration: .init(interfaces: interfaces.map { .init(name: $0.name, address: $0.address6.flatMap(IPv6Address.init)) },
                                 bindAddress: listen ?? "::", ports: configuration.dhcp6.ports, responder: responder),
            decider: decider, events: timeline, logger: logger, onServerRunning: onServerRunning)
    }
}
