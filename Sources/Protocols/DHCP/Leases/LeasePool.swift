import Foundation
import Logging
import Metrics

/// The addresses of every served range and who holds which: the one place that decides that
/// no address goes to two clients. Offers live in memory only (a client that is offered an
/// address and never asks for it costs nothing durable); a lease is written to the journal
/// before the ACK that grants it is sent (the caller waits for the mark `bind` returns).
///
/// One lock guards the maps; an ICMP probe (which waits on the network) runs outside it.
public final class LeasePool: @unchecked Sendable {
    public struct Settings: Sendable, Equatable {
        /// How long a declined (or ping-answered) address is kept from every client.
        public var declineQuarantine: TimeInterval
        /// How long an offered address stays set aside for the client it was offered to.
        public var offerHold: TimeInterval
        /// Addresses pinned by MAC ("aa:bb:cc:dd:ee:ff" -> address) from the config.
        public var reservations: [String: IPv4Address]
        /// An address a probe found unused is not probed again for this long.
        public var probeCache: TimeInterval
        /// Start handing out new addresses at a random point of each range, not its start:
        /// servers sharing one pool then rarely offer the same address at the same moment.
        public var spreadStart = false

        public init(declineQuarantine: TimeInterval = 600, offerHold: TimeInterval = 60,
                    reservations: [String: IPv4Address] = [:], probeCache: TimeInterval = 60) {
            self.declineQuarantine = declineQuarantine
            self.offerHold = offerHold
            self.reservations = reservations
            self.probeCache = probeCache
        }
    }

    /// Why no address could be given.
    public enum Failure: Error, Sendable, Equatable {
        /// Every address of the range is held, quarantined or reserved.
        case exhausted
        /// The address asked for is not one this range may give (outside it, the network or
        /// broadcast address, another client's reservation).
        case notAssignable
        /// Another client holds it (or it is quarantined).
        case heldByAnother
        /// The shared store could not be asked (PostgreSQL down): nothing may be granted.
        case storeUnavailable(String)
    }

    public let ranges: [DHCPRange]
    public let settings: Settings
    public let journal: LeaseJournal
    let probe: AddressProbe?
    let logger: Logger
    private let lock = NSLock()
    private var byAddress: [UInt32: Lease] = [:]
    /// Client key -> its addresses (one per range at most, but kept as a list to be safe).
    private var byClient: [String: [UInt32]] = [:]
    private var offers: [String: (address: UInt32, until: Date)] = [:]
    private var offered: [UInt32: String] = [:]
    /// Per range: the next address never handed out, so a fresh pool is O(1) per offer.
    private var cursor: [UInt32]
    /// Per range: no address can be found before this time (a scan found the range full).
    private var exhaustedUntil: [Date?]
    /// Per range: free addresses the last scan found and no offer has taken yet, best last.
    private var spare: [[UInt32]]
    static let spareLimit = 64
    private var probedFree: [UInt32: Date] = [:]
    private let reservedAddresses: [UInt32: String]
    private let exhaustedCounter = Counter(label: "bootpolicy_dhcp_pool_exhausted_total")
    private let conflictCounter = Counter(label: "bootpolicy_dhcp_address_conflicts_total")
    private let leasesGauge = Gauge(label: "bootpolicy_dhcp_leases")

    public init(ranges: [DHCPRange], settings: Settings = Settings(), journal: LeaseJournal = MemoryLeaseJournal(),
                probe: AddressProbe? = nil, loaded: [Lease] = [], logger: Logger = Logger(label: "bootpolicy.leases")) {
        self.ranges = ranges
        self.settings = settings
        self.journal = journal
        self.probe = probe
        self.logger = logger
        cursor = ranges.map { settings.spreadStart ? $0.start.rawValue + UInt32.random(in: 0..<UInt32($0.size)) : $0.start.rawValue }
        exhaustedUntil = ranges.map { _ in nil }
        spare = ranges.map { _ in [] }
        var reserved: [UInt32: String] = [:]
        for (mac, address) in settings.reservations { reserved[address.rawValue] = mac.lowercased() }
        reservedAddresses = reserved
        for lease in loaded { put(lease) }
        leasesGauge.record(byAddress.count)
    }

    // MARK: lookups

    /// The range serving a request from `address` (the relay's giaddr, or our address on the
    /// arrival interface): the first whose subnet holds it.
    public func range(servingFrom address: IPv4Address) -> DHCPRange? {
        ranges.first { $0.subnet.contains(address) }
    }

    private func rangeIndex(_ range: DHCPRange) -> Int { ranges.firstIndex(of: range) ?? 0 }

    public func lease(at address: IPv4Address) -> Lease? { lock.withLock { byAddress[address.rawValue] } }

    /// Every record, by address.
    public var all: [Lease] { lock.withLock { byAddress.values.sorted { $0.address < $1.address } } }

    /// The client's record in `range`'s subnet, if any.
    public func lease(of client: String, in range: DHCPRange) -> Lease? {
        lock.withLock { clientLease(client, in: range) }
    }

    private func clientLease(_ client: String, in range: DHCPRange) -> Lease? {
        for a in byClient[client] ?? [] {
            if let l = byAddress[a], l.client == client, range.subnet.contains(l.address) { return l }
        }
        return nil
    }

    // MARK: offers

    /// An address for `client` in `range` (DHCPDISCOVER): its reservation (`pinned`, or the
    /// config's by MAC) when nobody else holds it; else its current or last address; else the
    /// address it asks for (option 50) when free; else a free one. Addresses with no live
    /// record are probed first when a probe is configured.
    public func offer(client: String, mac: String, in range: DHCPRange, requested: IPv4Address? = nil,
                      pinned: IPv4Address? = nil, now: Date = Date()) -> Result<IPv4Address, Failure> {
        var tried: Set<UInt32> = []
        // At most a few probes per DISCOVER: each may wait the probe's timeout.
        for _ in 0..<4 {
            let candidate: (address: UInt32, probe: Bool)? = lock.withLock {
                chooseLocked(client: client, mac: mac, range: range, requested: requested, pinned: pinned, now: now, skip: tried)
            }
            guard let candidate else {
                exhaustedCounter.increment()
                return .failure(.exhausted)
            }
            if candidate.probe, let probe, probe.inUse(IPv4Address(rawValue: candidate.address)) {
                conflictCounter.increment()
                logger.warning("dhcp: \(IPv4Address(rawValue: candidate.address)) answers ICMP echo but has no lease: quarantined for \(Int(settings.declineQuarantine)) s")
                quarantine(candidate.address, now: now)
                tried.insert(candidate.address)
                continue
            }
            lock.withLock {
                if candidate.probe { probedFree[candidate.address] = now }
                if let old = offers[client], old.address != candidate.address { offered[old.address] = nil }
                offers[client] = (candidate.address, now.addingTimeInterval(settings.offerHold))
                offered[candidate.address] = client
            }
            return .success(IPv4Address(rawValue: candidate.address))
        }
        exhaustedCounter.increment()
        return .failure(.exhausted)
    }

    /// The client declined our offer implicitly (it chose another server): the address goes back.
    public func forgetOffer(client: String) {
        lock.withLock {
            if let old = offers.removeValue(forKey: client) { offered[old.address] = nil }
        }
    }

    private func chooseLocked(client: String, mac: String, range: DHCPRange, requested: IPv4Address?, pinned: IPv4Address?,
                              now: Date, skip: Set<UInt32>) -> (address: UInt32, probe: Bool)? {
        func usable(_ a: UInt32) -> Bool { !skip.contains(a) && isFreeLocked(a, for: client, mac: mac, range: range, now: now) }
        func needsProbe(_ a: UInt32) -> Bool {
            guard probe != nil else { return false }
            if let l = byAddress[a], l.client == client, l.expires > now { return false }
            if let t = probedFree[a], now.timeIntervalSince(t) < settings.probeCache { return false }
            return true
        }
        let reservation = pinned ?? settings.reservations[mac.lowercased()]
        if let r = reservation?.rawValue, range.subnet.contains(IPv4Address(rawValue: r)), usable(r) { return (r, needsProbe(r)) }
        if let o = offers[client], o.until > now, range.contains(IPv4Address(rawValue: o.address)), usable(o.address) {
            return (o.address, false)
        }
        if let l = clientLease(client, in: range), range.contains(l.address), l.state != .declined, usable(l.address.rawValue) {
            return (l.address.rawValue, needsProbe(l.address.rawValue))
        }
        if let r = requested?.rawValue, range.isAssignable(IPv4Address(rawValue: r)), usable(r) { return (r, needsProbe(r)) }
        let index = rangeIndex(range)
        if let until = exhaustedUntil[index], until > now { return nil }
        // Never-used addresses first, from the cursor: O(1) while the range fills. The cursor
        // passes every address it looks at; one offered and never taken is found by the scan.
        while cursor[index] <= range.end.rawValue {
            let a = cursor[index]
            cursor[index] += 1
            if byAddress[a] == nil, usable(a) { return (a, needsProbe(a)) }
        }
        // Then the candidates the last scan found, best first (checked again: time passed).
        while let c = spare[index].popLast() {
            if usable(c) { return (c, needsProbe(c)) }
        }
        // Then a scan of the whole range for free addresses: never used first, then the records
        // that ended longest ago (their clients are the least likely to come back). It keeps
        // the best `spareLimit`, so a range in steady use pays one scan per that many offers.
        var found: [(address: UInt32, expires: Date)] = []
        var soonest: Date?
        var a = range.start.rawValue
        while a <= range.end.rawValue {
            defer { a &+= 1 }
            if usable(a) {
                found.append((a, byAddress[a]?.expires ?? .distantPast))
            } else {
                // When the range is full, it has room again when the first lease or offer ends.
                var ends: Date?
                if let l = byAddress[a], l.isLive(at: now) { ends = l.expires }
                if let holder = offered[a], let o = offers[holder], o.address == a, o.until > now { ends = min(ends ?? o.until, o.until) }
                if let ends, soonest == nil || ends < soonest! { soonest = ends }
            }
            if a == UInt32.max { break }
        }
        found.sort { $0.expires < $1.expires }
        spare[index] = Array(found.prefix(Self.spareLimit).map(\.address).reversed())
        if let best = spare[index].popLast() { return (best, needsProbe(best)) }
        // Full: no need to scan again until the first lease runs out (or one is released).
        exhaustedUntil[index] = min(soonest ?? now.addingTimeInterval(settings.offerHold), now.addingTimeInterval(settings.offerHold))
        return nil
    }

    /// May `client` be given `a` now (in `range`'s subnet)?
    private func isFreeLocked(_ a: UInt32, for client: String, mac: String, range: DHCPRange, now: Date) -> Bool {
        let address = IPv4Address(rawValue: a)
        guard range.subnet.contains(address) else { return false }
        if let owner = reservedAddresses[a], owner != mac.lowercased() { return false }
        // A reservation may lie outside the dynamic range, but never on the network or
        // broadcast address.
        // (Only a reservation's path asks about an address outside the range.)
        if !range.contains(address) {
            guard DHCPRange.isHostAddress(address, in: range.subnet) else { return false }
        } else if !range.isAssignable(address) {
            return false
        }
        if let holder = offered[a], holder != client, let o = offers[holder], o.address == a, o.until > now { return false }
        if let l = byAddress[a], l.isLive(at: now), l.client != client || l.state == .declined { return false }
        return true
    }

    // MARK: leases

    /// Grants `address` to `client` (DHCPREQUEST): writes the lease and returns it with the
    /// journal mark to wait for before the ACK is sent. Any other address the client held in
    /// the same subnet is let go.
    public func bind(client: String, mac: String, hostname: String?, address: IPv4Address, in range: DHCPRange,
                     pinned: IPv4Address? = nil, now: Date = Date()) -> Result<(lease: Lease, mark: UInt64), Failure> {
        let expires = range.leaseTime == DHCPRange.infinite ? Date.distantFuture : now.addingTimeInterval(TimeInterval(range.leaseTime))
        let lease = Lease(address: address, client: client, mac: mac, hostname: hostname, expires: expires, state: .bound)
        // Checked here first (no I/O for what memory already refuses), then, for a shared
        // store, claimed there: the store's answer is the one that counts.
        let local: Failure? = lock.withLock { localRefusal(lease, range: range, pinned: pinned, now: now) }
        if let local { return .failure(local) }
        var claimed = false
        switch journal.claim(lease, now: now) {
        case nil: break
        case .granted?: claimed = true
        case let .held(holder)?:
            // Remembered, so the next DISCOVER is offered another address.
            lock.withLock {
                put(holder ?? Lease(address: address, client: "", mac: "", expires: now.addingTimeInterval(settings.offerHold), state: .declined))
                if let o = offers.removeValue(forKey: client) { offered[o.address] = nil }
            }
            return .failure(.heldByAnother)
        case let .unavailable(why)?:
            return .failure(.storeUnavailable(why))
        }
        let result: Result<[Lease], Failure> = lock.withLock {
            // (A granted claim is the shared store's word: memory follows it.)
            if !claimed, let again = localRefusal(lease, range: range, pinned: pinned, now: now) { return .failure(again) }
            var written: [Lease] = []
            // One address per client per subnet: the old one is released.
            for old in byClient[client] ?? [] where old != address.rawValue {
                if var l = byAddress[old], l.client == client, range.subnet.contains(l.address), l.state == .bound {
                    l.state = .released
                    l.expires = now
                    put(l)
                    written.append(l)
                }
            }
            put(lease)
            if let o = offers.removeValue(forKey: client) { offered[o.address] = nil }
            written.append(lease)
            return .success(written)
        }
        switch result {
        case let .failure(f): return .failure(f)
        case let .success(written):
            var mark: UInt64 = 0
            // A claimed lease is durable already; the releases beside it go through the journal.
            for l in written where !(claimed && l == lease) { mark = max(mark, journal.record(l)) }
            leasesGauge.record(lock.withLock { byAddress.count })
            return .success((written.last!, mark))
        }
    }

    /// Why memory refuses `lease` (the lock is held), or nil.
    private func localRefusal(_ lease: Lease, range: DHCPRange, pinned: IPv4Address?, now: Date) -> Failure? {
        let a = lease.address.rawValue, address = lease.address, mac = lease.mac.lowercased()
        let reservation = pinned ?? settings.reservations[mac]
        let isOwnReservation = reservation == address && DHCPRange.isHostAddress(address, in: range.subnet)
        guard range.subnet.contains(address), range.isAssignable(address) || isOwnReservation else { return .notAssignable }
        if let owner = reservedAddresses[a], owner != mac { return .notAssignable }
        if let l = byAddress[a], l.isLive(at: now), l.client != lease.client || l.state == .declined { return .heldByAnother }
        if let holder = offered[a], holder != lease.client, let o = offers[holder], o.address == a, o.until > now {
            return .heldByAnother
        }
        return nil
    }

    /// DHCPRELEASE: the client gives its address back. Returns the journal mark (0: nothing
    /// changed, the address was not this client's).
    @discardableResult
    public func release(client: String, address: IPv4Address, now: Date = Date()) -> UInt64 {
        let changed: Lease? = lock.withLock {
            guard var l = byAddress[address.rawValue], l.client == client, l.state == .bound else { return nil }
            l.state = .released
            l.expires = now
            put(l)
            return l
        }
        guard let changed else { return 0 }
        return journal.record(changed)
    }

    /// DHCPDECLINE: the client found the address in use. Only an address offered or leased to
    /// this client can be declined, so a storm of DECLINEs quarantines nothing it was not given.
    @discardableResult
    public func decline(client: String, address: IPv4Address, now: Date = Date()) -> UInt64 {
        let allowed: Bool = lock.withLock {
            if let l = byAddress[address.rawValue], l.client == client, l.state != .declined { return true }
            if let o = offers[client], o.address == address.rawValue { return true }
            return false
        }
        guard allowed else { return 0 }
        conflictCounter.increment()
        return quarantine(address.rawValue, now: now)
    }

    @discardableResult
    private func quarantine(_ a: UInt32, now: Date) -> UInt64 {
        let lease: Lease = lock.withLock {
            if let holder = offered.removeValue(forKey: a) { offers[holder] = nil }
            probedFree[a] = nil
            let l = Lease(address: IPv4Address(rawValue: a), client: "", mac: "", hostname: nil,
                          expires: now.addingTimeInterval(settings.declineQuarantine), state: .declined)
            put(l)
            return l
        }
        return journal.record(lease)
    }

    /// Frees an address whatever its state (the control API and `bootpolicy leases release`).
    @discardableResult
    public func forceRelease(_ address: IPv4Address, now: Date = Date()) -> (lease: Lease, mark: UInt64)? {
        let changed: Lease? = lock.withLock {
            guard var l = byAddress[address.rawValue] else { return nil }
            l.state = .released
            l.expires = now
            put(l)
            return l
        }
        guard let changed else { return nil }
        return (changed, journal.record(changed))
    }

    /// Leases another server sharing the store committed (its lease feed): taken as they are,
    /// and any offer of those addresses to another client withdrawn.
    public func remoteChanged(_ leases: [Lease]) {
        lock.withLock {
            for lease in leases {
                let a = lease.address.rawValue
                if let holder = offered[a], holder != lease.client, lease.isLive(at: Date()) {
                    offered[a] = nil
                    offers[holder] = nil
                }
                put(lease)
            }
        }
    }

    /// Inserts or replaces a record (the lock is held, or the pool is being built).
    private func put(_ lease: Lease) {
        let a = lease.address.rawValue
        if let old = byAddress[a], old.client != lease.client {
            byClient[old.client]?.removeAll { $0 == a }
            if byClient[old.client]?.isEmpty == true { byClient[old.client] = nil }
        }
        byAddress[a] = lease
        if !lease.client.isEmpty, byClient[lease.client]?.contains(a) != true { byClient[lease.client, default: []].append(a) }
        if !lease.isLive(at: Date()) {
            // An address came free: a range that was full may have room again.
            for (i, r) in ranges.enumerated() where r.contains(lease.address) { exhaustedUntil[i] = nil }
        }
    }
}

extension DHCPRange {
    /// Not the network or broadcast address of `subnet` (both are allowed on a /31 or /32).
    static func isHostAddress(_ address: IPv4Address, in subnet: IPv4Network) -> Bool {
        guard subnet.contains(address) else { return false }
        if subnet.prefixLength >= 31 { return true }
        let broadcast = subnet.address.rawValue | ~IPv4Network.mask(subnet.prefixLength)
        return address != subnet.address && address.rawValue != broadcast
    }
}
