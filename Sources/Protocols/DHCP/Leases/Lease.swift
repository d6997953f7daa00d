import Foundation

/// One address's record in full DHCP mode: who holds it and until when.
public struct Lease: Sendable, Equatable {
    public enum State: String, Sendable, Equatable {
        /// Whether an address in this state, until `expires`, is kept from other clients at `now`
        /// (DHCPv4 leases and DHCPv6 bindings alike).
        public func holds(until expires: Date, at now: Date) -> Bool {
            switch self {
            case .bound, .declined: return expires > now
            case .released: return false
            }
        }

        /// ACKed: the client holds the address until `expires`.
        case bound
        /// The client gave it back (DHCPRELEASE); free, but offered to the same client first.
        case released
        /// A client said the address is in use by someone else (DHCPDECLINE), or an ICMP echo
        /// before an offer was answered: nobody is offered it until `expires`.
        case declined
    }

    public var address: IPv4Address
    /// Option 61 as hex when the client sent one, else the hardware type and chaddr as hex
    /// ("01" + the MAC for Ethernet): a client that sends option 61 = 01:MAC is the same client
    /// as one that sends none. Empty for a declined address (it belongs to nobody).
    public var client: String
    /// "aa:bb:cc:dd:ee:ff" (chaddr), for people and for reservations by MAC.
    public var mac: String
    public var hostname: String?
    public var expires: Date
    public var state: State

    public init(address: IPv4Address, client: String, mac: String, hostname: String? = nil, expires: Date, state: State = .bound) {
        self.address = address
        self.client = client
        self.mac = mac
        self.hostname = hostname
        self.expires = expires
        self.state = state
    }

    /// Held by its client (or quarantined) at `now`: not to be given to anyone else.
    public func isLive(at now: Date) -> Bool { state.holds(until: expires, at: now) }

    /// The client key of a request: option 61, else htype + chaddr (RFC 2131 §4.2).
    public static func clientKey(of message: DHCPMessage) -> String {
        if let id = message.options[code: 61], !id.isEmpty { return hex(id) }
        return hex([message.htype] + message.chaddr.prefix(Int(min(message.hlen, 16))))
    }

    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Where leases are made durable before the ACK that grants them leaves. `record` queues a
/// lease and returns a mark; `awaitDurable(through:)` waits until every lease up to that mark
/// is on disk (false: not within the journal's time limit, so the ACK must not be sent).
public protocol LeaseJournal: Sendable {
    func record(_ lease: Lease) -> UInt64
    func awaitDurable(through mark: UInt64) -> Bool
    /// "sqlite:/var/lib/bootpolicy/state.db", or "memory".
    var location: String { get }
    /// For a store several servers share: grants `lease` there, durably, only if no other
    /// client holds its address (bound and unexpired, or quarantined). Nil: the store is this
    /// server's alone and the pool's memory decides (then `record` makes it durable).
    func claim(_ lease: Lease, now: Date) -> LeaseClaim?
}

/// What a shared store said to a claim.
public enum LeaseClaim: Sendable, Equatable {
    /// Committed: the lease is this client's.
    case granted
    /// Another client (through another server) holds the address; its record, when known.
    case held(Lease?)
    /// The store did not answer: no ACK may claim the lease.
    case unavailable(String)
}

extension LeaseJournal {
    public func claim(_ lease: Lease, now: Date) -> LeaseClaim? { nil }
}

/// Leases kept only in memory (a trial run with `--state memory`): forgotten at restart.
public struct MemoryLeaseJournal: LeaseJournal {
    public init() {}
    public func record(_ lease: Lease) -> UInt64 { 0 }
    public func awaitDurable(through mark: UInt64) -> Bool { true }
    public var location: String { "memory" }
}
