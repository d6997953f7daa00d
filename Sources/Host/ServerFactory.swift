import Clients
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
                     timeline: ClientTimeline, logger: Logger, onServerRunning: OnServerRunning? = nil) throws -> Service {
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
                                 ports: configuration.dhcp.ports, serverAddress: serverAddress, threadsPerSocket: threads),
            decider: decider, events: timeline, logger: logger, onServerRunning: onServerRunning)
    }
}
