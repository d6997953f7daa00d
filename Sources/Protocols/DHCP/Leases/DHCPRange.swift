/// One pool of addresses served in full DHCP mode, with the options its clients are told
/// (RFC 2132). `--dhcp-range START,END[,NETMASK][,LEASE]` or a `dhcp.ranges` entry.
public struct DHCPRange: Sendable, Equatable, CustomStringConvertible {
    /// A classless static route (RFC 3442, option 121).
    public struct Route: Sendable, Equatable {
        public var destination: IPv4Network
        public var gateway: IPv4Address
        public init(destination: IPv4Network, gateway: IPv4Address) {
            self.destination = destination
            self.gateway = gateway
        }
    }

    public var start: IPv4Address
    public var end: IPv4Address
    /// The subnet the range lies in: its mask is option 1, and a request is served from this
    /// range when it arrives on an interface in it (or from a relay in it).
    public var subnet: IPv4Network
    /// Seconds; `infinite` is `UInt32.max` (RFC 2132 §9.2).
    public var leaseTime: UInt32
    public var routers: [IPv4Address] = []
    public var dnsServers: [IPv4Address] = []
    public var domain: String?
    public var ntpServers: [IPv4Address] = []
    public var mtu: Int?
    public var routes: [Route] = []

    public static let infinite = UInt32.max
    /// dnsmasq's default lease.
    public static let defaultLease: UInt32 = 3600
    /// Shorter leases are refused: clients renew at half the lease, and below this they would
    /// spend more time renewing than using it.
    public static let minimumLease: UInt32 = 10
    /// Addresses in one range: the pool's memory and its worst-case search are bounded by it.
    public static let maximumSize = 1 << 20

    public init(start: IPv4Address, end: IPv4Address, subnet: IPv4Network, leaseTime: UInt32 = DHCPRange.defaultLease) throws(DHCPRangeError) {
        self.start = start
        self.end = end
        self.subnet = subnet
        self.leaseTime = leaseTime
        try check()
    }

    /// "192.168.77.100-192.168.77.150": the range's name in logs and metrics.
    public var description: String { "\(start)-\(end)" }

    public var size: Int { Int(end.rawValue - start.rawValue) + 1 }

    public func contains(_ address: IPv4Address) -> Bool { start <= address && address <= end }

    public var netmask: IPv4Address { IPv4Address(rawValue: IPv4Network.mask(subnet.prefixLength)) }

    public var broadcastAddress: IPv4Address {
        IPv4Address(rawValue: subnet.address.rawValue | ~IPv4Network.mask(subnet.prefixLength))
    }

    /// Not the subnet's network or broadcast address: an address a client may hold.
    public func isAssignable(_ address: IPv4Address) -> Bool {
        guard contains(address) else { return false }
        if subnet.prefixLength >= 31 { return true }  // RFC 3021: no network/broadcast on /31
        return address != subnet.address && address != broadcastAddress
    }

    public func check() throws(DHCPRangeError) {
        guard start <= end else { throw DHCPRangeError("\(start) is after \(end)") }
        guard subnet.contains(start), subnet.contains(end) else {
            throw DHCPRangeError("\(self) is not inside its subnet \(subnet)")
        }
        guard size <= Self.maximumSize else {
            throw DHCPRangeError("\(self) holds \(size) addresses; at most \(Self.maximumSize) per range")
        }
        guard leaseTime >= Self.minimumLease else {
            throw DHCPRangeError("lease of \(leaseTime) s is shorter than the minimum of \(Self.minimumLease) s")
        }
        let first = start.rawValue >> 24
        // Loopback is allowed: trial runs and tests serve 127.0.0.0/8.
        guard first != 0, first < 224 else {
            throw DHCPRangeError("\(self) is not unicast address space")
        }
        if let mtu, !(68...65535).contains(mtu) { throw DHCPRangeError("mtu \(mtu) is outside 68-65535") }
        if let domain, domain.utf8.count > 255 || domain.isEmpty { throw DHCPRangeError("domain must be 1-255 bytes") }
        for list in [routers, dnsServers, ntpServers] where list.count > 63 {
            throw DHCPRangeError("at most 63 addresses per option (one option holds 255 bytes)")
        }
        // Option 121 holds up to 9 bytes a route, and a default route may be added.
        if routes.count > 27 { throw DHCPRangeError("at most 27 routes (option 121 holds 255 bytes)") }
    }

    /// The parts of `START,END[,NETMASK][,LEASE]` as dnsmasq spells them. The netmask may be
    /// left out (nil): the caller takes it from the interface whose network holds the range.
    public struct Spec: Sendable, Equatable {
        public var start: IPv4Address
        public var end: IPv4Address
        public var prefixLength: Int?
        public var leaseTime: UInt32
    }

    public static func parse(_ text: String) throws(DHCPRangeError) -> Spec {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingSpaces }
        guard parts.count >= 2, parts.count <= 4 else {
            throw DHCPRangeError("'\(text)': expected START,END[,NETMASK][,LEASE]")
        }
        guard let start = IPv4Address(parts[0]) else { throw DHCPRangeError("'\(parts[0])' is not an IPv4 address") }
        guard let end = IPv4Address(parts[1]) else { throw DHCPRangeError("'\(parts[1])' is not an IPv4 address") }
        var prefix: Int?
        var lease = defaultLease
        var rest = Array(parts.dropFirst(2))
        if let first = rest.first, first.contains(".") || first.hasPrefix("/") {
            prefix = try prefixLength(first)
            rest.removeFirst()
        }
        if let last = rest.first {
            guard rest.count == 1 else { throw DHCPRangeError("'\(text)': expected START,END[,NETMASK][,LEASE]") }
            lease = try parseLease(last)
        }
        return Spec(start: start, end: end, prefixLength: prefix, leaseTime: lease)
    }

    /// "255.255.255.0" or "/24" (a mask must be contiguous ones).
    public static func prefixLength(_ text: String) throws(DHCPRangeError) -> Int {
        if text.hasPrefix("/") {
            guard let n = Int(text.dropFirst()), (1...32).contains(n) else { throw DHCPRangeError("'\(text)' is not a prefix length /1-/32") }
            return n
        }
        guard let mask = IPv4Address(text) else { throw DHCPRangeError("'\(text)' is not a netmask") }
        let ones = mask.rawValue.leadingZeroBitCount == 0 ? (~mask.rawValue).leadingZeroBitCount : 0
        guard ones > 0, IPv4Network.mask(ones) == mask.rawValue else { throw DHCPRangeError("'\(text)' is not a contiguous netmask") }
        return ones
    }

    /// dnsmasq's lease syntax: seconds, or a number with s, m, h, d or w, or `infinite`.
    public static func parseLease(_ text: String) throws(DHCPRangeError) -> UInt32 {
        let t = text.lowercased()
        if t == "infinite" { return infinite }
        let units: [Character: UInt64] = ["s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800]
        var digits = Substring(t)
        var unit: UInt64 = 1
        if let last = t.last, let u = units[last] {
            unit = u
            digits = t.dropLast()
        }
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), let n = UInt64(digits), n <= UInt64(UInt32.max - 1) / unit else {
            throw DHCPRangeError("lease '\(text)': expected seconds, or a number with s, m, h, d or w, or infinite")
        }
        return UInt32(n * unit)
    }
}

public struct DHCPRangeError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
