import Foundation
import Logging
import NIOConcurrencyHelpers
import Protocols

/// Everything bootpolicy knows about a client, in one place:
/// - **facts**: its last DHCP request, kept as the datagram (`DatagramCache`), so that its TFTP
///   and HTTP requests can be told its architecture, firmware, classes and UUID;
/// - **addresses**: the MAC last seen at an IP address, for file requests that carry no MAC;
/// - **scripts**: the iPXE script its last DHCP decision generated, served when it fetches the
///   decided file;
/// - **state**: what policies keep with `state.set` (`ClientStateStore`).
///
/// Facts and addresses live in memory only (a client that boots again says them again). State
/// and scripts are also written to the durable backend when there is one, and loaded from it
/// at start, so they outlive a restart.
public final class ClientDirectory: @unchecked Sendable {
    public struct Limits: Sendable, Equatable {
        /// Clients whose facts and scripts are kept.
        public var clients: Int
        /// Seconds facts and scripts are kept after they were learnt.
        public var ttl: TimeInterval
        /// Bytes of one generated script; a longer one is not kept (the DHCP answer still goes).
        public var maxScriptBytes: Int
        public init(clients: Int = 16_384, ttl: TimeInterval = 3600, maxScriptBytes: Int = 256 << 10) {
            self.clients = clients
            self.ttl = ttl
            self.maxScriptBytes = maxScriptBytes
        }
    }

    public let limits: Limits
    public let state: ClientStateStore
    private let lock = NIOLock()
    private let facts: DatagramCache
    private var scripts: ClientCache<StoredScript>
    private var addresses: RecentMap<String, String>
    private let logger: Logger
    /// The full-DHCP leases the backend held at open (the lease pool starts from them).
    public private(set) var loadedLeases: [Lease] = []
    /// The DHCPv6 bindings it held (the DHCPv6 pool starts from them).
    public private(set) var loadedLeases6: [Lease6] = []

    /// A directory in memory only (tests, `explain`, policy tests, `serve` without `--state`).
    /// `now`: the state store's clock (policy tests move it to expire state).
    public convenience init(limits: Limits = Limits(), stateLimits: StateLimits = StateLimits(),
                            logger: Logger = Logger(label: "bootpolicy.clients"),
                            now: @escaping @Sendable () -> Date = { Date() }) {
        self.init(limits: limits, state: ClientStateStore(limits: stateLimits, now: now), scripts: [:], logger: logger)
    }

    /// A directory in memory whose policy state is `state` (a shadow chain's overlay).
    public convenience init(limits: Limits = Limits(), state: ClientStateStore, logger: Logger) {
        self.init(limits: limits, state: state, scripts: [:], logger: logger)
    }

    init(limits: Limits, state: ClientStateStore, scripts stored: [String: StoredScript], logger: Logger) {
        self.limits = limits
        self.state = state
        self.logger = logger
        facts = DatagramCache(capacity: limits.clients, ttl: limits.ttl)
        scripts = ClientCache(capacity: limits.clients, ttl: limits.ttl)
        addresses = RecentMap(capacity: max(16, limits.clients))
        // Oldest first, so the newest are the last pushed out when there are too many.
        for (mac, script) in stored.sorted(by: { $0.value.stored < $1.value.stored }) {
            scripts.set(mac, script, now: script.stored)
        }
    }

    /// A directory whose state and scripts are kept in `backend`, loaded from it now. The
    /// writer thread starts here and stops with `close()`.
    public static func open(backend: StateBackend, limits: Limits = Limits(), stateLimits: StateLimits = StateLimits(),
                            logger: Logger) throws(StateError) -> ClientDirectory {
        let loaded: StoredClients
        do {
            loaded = try backend.load(now: Date())
        } catch {
            throw StateError("state store \(backend.description): cannot read it: \(error)")
        }
        let writer = StateWriter(backend: backend, scriptTTL: limits.ttl, logger: logger)
        let store = ClientStateStore(limits: stateLimits, writer: writer, loaded: loaded.states, now: { Date() })
        let directory = ClientDirectory(limits: limits, state: store, scripts: loaded.scripts, logger: logger)
        directory.loadedLeases = loaded.leases
        directory.loadedLeases6 = loaded.leases6
        writer.start()
        backend.follow(store)
        return directory
    }

    /// Where the lease pool makes leases durable: this directory's writer, in the same group
    /// commits as client state (memory when the directory has no backend).
    public var leaseJournal: LeaseJournal {
        guard let writer = state.writer else { return MemoryLeaseJournal() }
        return WriterLeaseJournal(writer: writer)
    }

    /// Where the DHCPv6 pool makes bindings durable.
    public var lease6Journal: Lease6Journal {
        guard let writer = state.writer else { return MemoryLease6Journal() }
        return WriterLease6Journal(writer: writer)
    }

    /// The store's lease feed when several servers share it (PostgreSQL), else nil.
    public var sharedLeaseStore: SharedLeaseStore? { state.writer?.backend as? SharedLeaseStore }

    /// Commits what is still queued and closes the backend.
    public func close() {
        state.writer?.close()
    }

    /// Where state is kept: "memory" or the backend (`sqlite:/var/lib/bootpolicy/state.db`).
    public var location: String { state.location }

    // MARK: facts

    /// Keeps a DHCP request's datagram as what is known of this client.
    func learn(mac: String, datagram: UnsafeRawBufferPointer) {
        lock.withLock { facts.set(mac, datagram) }
    }

    /// What the client's last DHCP request said, decoded again.
    public func dhcpFacts(mac: String) -> BootRequest? {
        guard !mac.isEmpty, let stored = lock.withLock({ facts.get(mac) }),
              let message = try? DHCPMessage(bytes: stored) else { return nil }
        return BootRequest(dhcp: message, serverPort: nil, interface: nil, source: nil)
    }

    // MARK: addresses

    func learn(mac: String, address: String) {
        lock.withLock { addresses.set(address, mac) }
    }

    /// The MAC of the client last seen at `address` (from its DHCP, TFTP or HTTP requests).
    public func mac(forAddress address: String) -> String? {
        lock.withLock { addresses[address] }
    }

    // MARK: scripts

    /// Keeps the script a DHCP decision generated; made durable with the next commit when it
    /// changed. Returns false when the script is over the size bound and was not kept.
    @discardableResult
    func keep(script: StoredScript, for mac: String) -> Bool {
        guard script.text.utf8.count <= limits.maxScriptBytes else {
            logger.warning("generated script not kept: \(script.text.utf8.count) bytes is more than \(limits.maxScriptBytes)",
                           metadata: ["mac": "\(mac)", "policy": "\(script.policy ?? "?")"])
            return false
        }
        lock.withLock {
            let previous = scripts.get(mac, now: script.stored)
            scripts.set(mac, script, now: script.stored)
            // A booting client gets the same script on every DHCP round: write only a change.
            if previous?.text != script.text || previous?.filename != script.filename || previous?.policy != script.policy {
                state.writer?.enqueue(.script(mac: mac, script))
            }
        }
        return true
    }

    public func script(for mac: String) -> StoredScript? {
        guard !mac.isEmpty else { return nil }
        return lock.withLock { scripts.get(mac) }
    }
}
