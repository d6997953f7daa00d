import Foundation
import Metrics

/// One DHCPv6 address range served statefully (`--dhcp-range fd77::100,fd77::1ff[,64][,LEASE]`):
/// the addresses handed out in IA_NA, the on-link prefix they lie in, and their lifetimes.
public struct DHCPv6Range: Sendable, Equatable, CustomStringConvertible {
    public var start: IPv6Address
    public var end: IPv6Address
    /// The prefix the range lies in (64 unless said): Confirm answers NotOnLink outside it, and
    /// a request is served from the range when it arrives on an interface with an address in it.
    public var prefixLength: Int
    /// Valid lifetime, seconds; preferred is the same, T1 half and T2 0.8 of it (RFC 8415 §21.4).
    public var leaseTime: UInt32
    /// Addresses in one range at most: a /64 is far larger, but a pool's search is bounded.
    public static let maximumSize: UInt64 = 1 << 20

    public init(start: IPv6Address, end: IPv6Address, prefixLength: Int = 64, leaseTime: UInt32 = DHCPRange.defaultLease) throws(DHCPRangeError) {
        self.start = start
        self.end = end
        self.prefixLength = prefixLength
        self.leaseTime = leaseTime
        guard start.high == end.high, start.low <= end.low else {
            throw DHCPRangeError("range \(start)-\(end): the end must follow the start within one /64")
        }
        guard (8...128).contains(prefixLength) else {
            throw DHCPRangeError("range \(start)-\(end): prefix length \(prefixLength) must be 8-128")
        }
        guard end.isIn(start, prefixLength: prefixLength) else {
            throw DHCPRangeError("range \(start)-\(end): both ends must lie in one /\(prefixLength)")
        }
        guard !start.isLinkLocal, !start.isMulticast, !start.isLoopback, !start.isAny else {
            throw DHCPRangeError("range \(start)-\(end): a link-local, multicast, loopback or unspecified range cannot be handed out")
        }
        guard end.low - start.low < Self.maximumSize else {
            throw DHCPRangeError("range \(start)-\(end): more than \(Self.maximumSize) addresses; narrow it")
        }
        guard leaseTime >= DHCPRange.minimumLease else {
            throw DHCPRangeError("range \(start)-\(end): lease \(leaseTime) s is shorter than \(DHCPRange.minimumLease) s")
        }
    }

    public var description: String { "\(start)-\(end)" }
    public var size: UInt64 { end.low - start.low + 1 }
    public func contains(_ a: IPv6Address) -> Bool { a.high == start.high && start.low <= a.low && a.low <= end.low }
    /// On the link this range serves.
    public func isOnLink(_ a: IPv6Address) -> Bool { a.isIn(start, prefixLength: prefixLength) }
    public var t1: UInt32 { leaseTime == UInt32.max ? UInt32.max : leaseTime / 2 }
    public var t2: UInt32 { leaseTime == UInt32.max ? UInt32.max : UInt32((UInt64(leaseTime) * 4) / 5) }

    /// `START,END[,PREFIXLEN][,LEASE]`, dnsmasq's IPv6 form (LEASE: seconds, or with m/h/d, or
    /// `infinite`); nil when START is not an IPv6 address (it is an IPv4 range then).
    public static func parse(_ text: String) throws(DHCPRangeError) -> DHCPv6Range? {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard let first = parts.first, first.contains(":") else { return nil }
        guard let start = IPv6Address(first) else { throw DHCPRangeError("\(text): \(first) is not an IPv6 address") }
        guard parts.count >= 2, let end = IPv6Address(parts[1]) else {
            throw DHCPRangeError("\(text): expected START,END[,PREFIXLEN][,LEASE] with IPv6 addresses")
        }
        var prefix = 64
        var lease = DHCPRange.defaultLease
        var rest = Array(parts.dropFirst(2))
        // dnsmasq: a bare number of at most 128 in third place is the prefix length.
        if let p = rest.first, let n = Int(p.hasPrefix("/") ? String(p.dropFirst()) : p), rest.count == 2 || n <= 128 || p.hasPrefix("/") {
            prefix = n
            rest.removeFirst()
        }
        if let l = rest.first {
            lease = try DHCPRange.parseLease(l)
            rest.removeFirst()
        }
        guard rest.isEmpty else { throw DHCPRangeError("\(text): unexpected \(rest.joined(separator: ","))") }
        return try DHCPv6Range(start: start, end: end, prefixLength: prefix, leaseTime: lease)
    }
}

/// One IA_NA address held by a client (its DUID and IAID), until when.
public struct Lease6: Sendable, Equatable {
    public var address: IPv6Address
    /// The client's DUID as hex, "/", its IAID as 8 hex digits: the binding's key (RFC 8415
    /// §4.2). Empty for a declined address.
    public var client: String
    /// "aa:bb:..." when the request named one (relay option 79, DUID-LL/LLT, EUI-64), else "".
    public var mac: String
    public var expires: Date
    public var state: Lease.State

    public init(address: IPv6Address, client: String, mac: String, expires: Date, state: Lease.State = .bound) {
        self.address = address
        self.client = client
        self.mac = mac
        self.expires = expires
        self.state = state
    }

    public func isLive(at now: Date) -> Bool { state.holds(until: expires, at: now) }

    public static func key(duid: [UInt8], iaid: UInt32) -> String {
        Lease.hex(duid) + "/" + Lease.hex(be32(iaid))
    }
}

/// Where DHCPv6 bindings are made durable before the Reply that grants them leaves.
public protocol Lease6Journal: Sendable {
    /// Queues the lease's new state; the mark to wait for.
    func record(_ lease: Lease6) -> UInt64
    func awaitDurable(through mark: UInt64) -> Bool
    /// For a store several servers share: grants `lease` there, durably, only if no other
    /// client holds its address (as `LeaseJournal.claim` does for DHCPv4, in the same table).
    /// Nil: the store is this server's alone and the pool's memory decides.
    func claim(_ lease: Lease6, now: Date) -> Lease6Claim?
}

extension Lease6Journal {
    public func claim(_ lease: Lease6, now: Date) -> Lease6Claim? { nil }
}

/// What a shared store said to a DHCPv6 claim.
public enum Lease6Claim: Sendable, Equatable {
    /// Committed: the binding is this client's.
    case granted
    /// Another client (through another server) holds the address; its record, when known.
    case held(Lease6?)
    /// The store did not answer: no Reply may claim the binding.
    case unavailable(String)
}

/// Nothing durable: tests, and `--state none`.
public struct MemoryLease6Journal: Lease6Journal {
    public init() {}
    public func record(_ lease: Lease6) -> UInt64 { 0 }
    public func awaitDurable(through mark: UInt64) -> Bool { true }
}

/// The stateful DHCPv6 addresses of every range and who holds which. As `LeasePool`:
/// advertised addresses live in memory only; a binding is journaled before its Reply.
public final class DHCPv6LeasePool: @unchecked Sendable {
    public enum Failure: Error, Sendable, Equatable {
        case exhausted
        /// Not in a served range, or held by another client or quarantined.
        case notAssignable
        /// The shared store did not answer the claim: no Reply may grant the address (the
        /// client retries).
        case storeUnavailable(String)
    }

    public let ranges: [DHCPv6Range]
    public let journal: Lease6Journal
    public let declineQuarantine: TimeInterval
    public let offerHold: TimeInterval
    private let lock = NSLock()
    private var byAddress: [IPv6Address: Lease6] = [:]
    private var byClient: [String: IPv6Address] = [:]
    private var offers: [String: (address: IPv6Address, until: Date)] = [:]
    private var offered: [IPv6Address: String] = [:]
    private var cursor: [UInt64]
    /// Per range: no address can be found before this time (a walk found the range full).
    private var exhaustedUntil: [Date?]
    private let leasesGauge = Gauge(label: "bootpolicy_dhcp6_leases")
    private let exhaustedCounter = Counter(label: "bootpolicy_dhcp6_pool_exhausted_total")

    public init(ranges: [DHCPv6Range], journal: Lease6Journal = MemoryLease6Journal(), loaded: [Lease6] = [],
                declineQuarantine: TimeInterval = 600, offerHold: TimeInterval = 60) {
        self.ranges = ranges
        self.journal = journal
        self.declineQuarantine = declineQuarantine
        self.offerHold = offerHold
        cursor = ranges.map { _ in 0 }
        exhaustedUntil = ranges.map { _ in nil }
        let now = Date()
        for lease in loaded where lease.isLive(at: now) && ranges.contains(where: { $0.contains(lease.address) }) { put(lease) }
        leasesGauge.record(byAddress.count)
    }

    /// The range serving a link that has `address` (the arrival interface's, or a relay's
    /// link-address).
    public func range(onLinkWith address: IPv6Address) -> DHCPv6Range? { ranges.first { $0.isOnLink(address) } }

    public var count: Int { lock.withLock { byAddress.count } }
    public var leases: [Lease6] { lock.withLock { Array(byAddress.values) } }
    public func lease(of client: String) -> Lease6? {
        lock.withLock { byClient[client].flatMap { byAddress[$0] }.flatMap { $0.client == client ? $0 : nil } }
    }

    private func isFree(_ a: IPv6Address, for client: String, now: Date) -> Bool {
        if let lease = byAddress[a], lease.isLive(at: now), lease.client != client { return false }
        if let other = offered[a], other != client, let o = offers[other], o.until > now { return false }
        return true
    }

    /// An address to advertise to `client`: the one it holds, the one it asks for when free,
    /// its last offer, else the next free one. Set aside for `offerHold`.
    public func offer(client: String, in range: DHCPv6Range, requested: IPv6Address? = nil, now: Date = Date()) -> Result<IPv6Address, Failure> {
        lock.withLock {
            if let held = byClient[client], let lease = byAddress[held], lease.client == client, lease.state == .bound,
               lease.isLive(at: now), range.contains(held) {
                return .success(held)
            }
            // A new client past the offer cap waits: decided before any scan, so a flood
            // costs a lookup per Solicit, not a walk over the range.
            let isNew = offers[client] == nil
            if isNew, offers.count >= Self.maximumOffers { pruneOffers(now: now) }
            guard !isNew || offers.count < Self.maximumOffers else {
                exhaustedCounter.increment()
                return .failure(.exhausted)
            }
            var chosen: IPv6Address?
            if let requested, range.contains(requested), isFree(requested, for: client, now: now) { chosen = requested }
            if chosen == nil, let o = offers[client], range.contains(o.address), isFree(o.address, for: client, now: now) { chosen = o.address }
            if chosen == nil, let i = ranges.firstIndex(of: range), (exhaustedUntil[i] ?? .distantPast) <= now {
                let size = range.size
                var step: UInt64 = 0
                while step < size {
                    let candidate = IPv6Address(high: range.start.high, low: range.start.low + (cursor[i] + step) % size)
                    step += 1
                    if isFree(candidate, for: client, now: now) {
                        chosen = candidate
                        cursor[i] = (cursor[i] + step) % size
                        break
                    }
                }
                // A whole range found held is not walked again for a second (as LeasePool).
                if chosen == nil { exhaustedUntil[i] = now.addingTimeInterval(1) }
            }
            guard let address = chosen else {
                exhaustedCounter.increment()
                return .failure(.exhausted)
            }
            if let old = offers[client], offered[old.address] == client { offered[old.address] = nil }
            offers[client] = (address, now.addingTimeInterval(offerHold))
            offered[address] = client
            return .success(address)
        }
    }

    /// Advertised addresses set aside at once, at most: a flood of Solicits from made-up DUIDs
    /// costs memory up to here (about 300 bytes each), then expired offers are dropped and,
    /// while every one is still held, new clients wait (counted as exhausted).
    public static let maximumOffers = 65_536
    private var prunedAt = Date.distantPast

    /// Drops offers past their hold (at most once a second: a full table of live offers is
    /// not scanned again for every Solicit).
    private func pruneOffers(now: Date) {
        guard now.timeIntervalSince(prunedAt) >= 1 else { return }
        prunedAt = now
        for (client, o) in offers where o.until <= now {
            offers[client] = nil
            if offered[o.address] == client { offered[o.address] = nil }
        }
    }

    /// Advertised addresses set aside now (tests, metrics).
    public var offerCount: Int { lock.withLock { offers.count } }

    /// Binds `address` to `client` until now + the range's lease; the journal mark to wait for.
    /// With a shared store (PostgreSQL, several servers) the store is asked first and its
    /// answer counts: an address another server bound for another client is refused, and
    /// remembered so that the client's next Solicit is advertised another.
    public func bind(client: String, mac: String, address: IPv6Address, in range: DHCPv6Range, now: Date = Date()) -> Result<(Lease6, UInt64), Failure> {
        let expires = range.leaseTime == UInt32.max ? Date.distantFuture : now.addingTimeInterval(TimeInterval(range.leaseTime))
        let lease = Lease6(address: address, client: client, mac: mac, expires: expires)
        // With a shared store the claim decides, not memory: a stand-in put below for a holder
        // the store did not name would otherwise refuse that holder itself when it moves to
        // this server (a CI run of the two-server test found it). Alone, memory decides.
        guard range.contains(address) else { return .failure(.notAssignable) }
        var claimed = false
        switch journal.claim(lease, now: now) {
        case nil: break
        case .granted?: claimed = true
        case let .held(holder)?:
            lock.withLock {
                put(holder ?? Lease6(address: address, client: "", mac: "", expires: now.addingTimeInterval(offerHold), state: .declined))
                if let o = offers.removeValue(forKey: client), offered[o.address] == client { offered[o.address] = nil }
                leasesGauge.record(byAddress.count)
            }
            return .failure(.notAssignable)
        case let .unavailable(why)?:
            return .failure(.storeUnavailable(why))
        }
        let bound: Bool = lock.withLock {
            // (A granted claim is the shared store's word: memory follows it.)
            if !claimed, !isFree(address, for: client, now: now) { return false }
            if let previous = byClient[client], previous != address, byAddress[previous]?.client == client {
                byAddress[previous] = nil
            }
            put(lease)
            if let o = offers.removeValue(forKey: client), offered[o.address] == client { offered[o.address] = nil }
            leasesGauge.record(byAddress.count)
            return true
        }
        guard bound else { return .failure(.notAssignable) }
        // A claimed binding is committed already.
        return .success((lease, claimed ? 0 : journal.record(lease)))
    }

    /// The client's live binding of `address`, if it has one.
    public func binding(client: String, address: IPv6Address, now: Date = Date()) -> Lease6? {
        lock.withLock {
            guard let lease = byAddress[address], lease.client == client, lease.state == .bound, lease.isLive(at: now) else { return nil }
            return lease
        }
    }

    /// Release: the address is free again (0 when the client did not hold it).
    public func release(client: String, address: IPv6Address, now: Date = Date()) -> UInt64 {
        let released: Lease6? = lock.withLock {
            guard var lease = byAddress[address], lease.client == client, lease.state == .bound else { return nil }
            lease.state = .released
            lease.expires = now
            byAddress[address] = nil
            byClient[client] = nil
            leasesGauge.record(byAddress.count)
            return lease
        }
        return released.map { journal.record($0) } ?? 0
    }

    /// Decline: the address is kept from every client for `declineQuarantine`.
    public func decline(client: String, address: IPv6Address, now: Date = Date()) -> UInt64 {
        guard ranges.contains(where: { $0.contains(address) }) else { return 0 }
        let lease: Lease6 = lock.withLock {
            if byAddress[address]?.client == client { byClient[client] = nil }
            let lease = Lease6(address: address, client: "", mac: "", expires: now.addingTimeInterval(declineQuarantine), state: .declined)
            byAddress[address] = lease
            leasesGauge.record(byAddress.count)
            return lease
        }
        return journal.record(lease)
    }

    /// Bindings another server sharing the store committed (its lease feed), in this pool's
    /// ranges: taken as they are, and an advertisement of those addresses to another client
    /// withdrawn, so a Solicit here is advertised what is free in the table rather than what
    /// a Request would then be refused. Only an optimisation: the claim decides.
    public func remoteChanged(_ leases: [Lease6], now: Date = Date()) {
        lock.withLock {
            for lease in leases where ranges.contains(where: { $0.contains(lease.address) }) {
                let a = lease.address
                if lease.isLive(at: now) {
                    if let holder = offered[a], holder != lease.client {
                        offered[a] = nil
                        offers[holder] = nil
                    }
                    // The client moved there to another address: its old one here is free.
                    if let previous = byClient[lease.client], previous != a, byAddress[previous]?.client == lease.client {
                        byAddress[previous] = nil
                    }
                    put(lease)
                } else if let mine = byAddress[a], mine.client == lease.client {
                    // Released or expired there: free here too.
                    byAddress[a] = nil
                    if byClient[lease.client] == a { byClient[lease.client] = nil }
                }
            }
            leasesGauge.record(byAddress.count)
        }
    }

    private func put(_ lease: Lease6) {
        byAddress[lease.address] = lease
        if !lease.client.isEmpty { byClient[lease.client] = lease.address }
    }
}
