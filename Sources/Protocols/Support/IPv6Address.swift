#if canImport(Glibc)
import Glibc
#endif

/// An IPv6 address as its sixteen bytes on the wire, with RFC 5952 text (`fd77::1`,
/// `fe80::5054:ff:fe77:2`). Parsing and printing go through inet_pton/inet_ntop, which
/// already implement both RFCs; a zone (`%eth0`) is not part of the address.
public struct IPv6Address: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The address as two host-order halves: `high` is bytes 0-7.
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Sixteen bytes in network order; nil unless exactly sixteen.
    public init?<C: Collection>(bytes: C) where C.Element == UInt8 {
        guard bytes.count == 16 else { return nil }
        var h: UInt64 = 0, l: UInt64 = 0
        for (i, b) in bytes.enumerated() {
            if i < 8 { h = h << 8 | UInt64(b) } else { l = l << 8 | UInt64(b) }
        }
        high = h
        low = l
    }

    /// Text as inet_pton(AF_INET6) accepts it, optionally in brackets; nil otherwise.
    public init?(_ text: String) {
        var t = Substring(text)
        if t.hasPrefix("["), t.hasSuffix("]") { t = t.dropFirst().dropLast() }
        // Byte tests, not Foundation's substring search (a DHCPv6 answer parses one or two):
        // inet_pton refuses anything but ASCII, so nothing else could have passed.
        guard t.utf8.contains(UInt8(ascii: ":")), !t.utf8.contains(UInt8(ascii: "%")) else { return nil }
        var raw = in6_addr()
        let ok = String(t).withCString { inet_pton(AF_INET6, $0, &raw) } == 1
        guard ok else { return nil }
        guard let parsed = withUnsafeBytes(of: &raw, { IPv6Address(bytes: $0) }) else { return nil }
        self = parsed
    }

    public static let any = IPv6Address(high: 0, low: 0)
    public static let loopback = IPv6Address(high: 0, low: 1)
    /// All_DHCP_Relay_Agents_and_Servers (RFC 8415 §7.1).
    public static let allDHCPAgents = IPv6Address(high: 0xff02_0000_0000_0000, low: 0x0001_0002)

    public var bytes: [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * UInt64($0))) }
            + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * UInt64($0))) }
    }

    public var isAny: Bool { high == 0 && low == 0 }
    public var isLoopback: Bool { high == 0 && low == 1 }
    /// fe80::/10.
    public var isLinkLocal: Bool { high >> 54 == 0x3fa }
    /// ff00::/8.
    public var isMulticast: Bool { high >> 56 == 0xff }

    /// The MAC an EUI-64 interface identifier was made from (RFC 4291 App. A: ff:fe in the
    /// middle, the universal/local bit flipped back); nil for any other identifier (a
    /// random or stable-privacy address says nothing about the hardware).
    public var eui64MAC: [UInt8]? {
        let b = bytes
        guard b[11] == 0xff, b[12] == 0xfe else { return nil }
        return [b[8] ^ 0x02, b[9], b[10], b[13], b[14], b[15]]
    }

    /// The address inside `prefix`/`length` with this address's low bits: offsets in a range.
    public func adding(_ n: UInt64) -> IPv6Address? {
        let (l, overflow) = low.addingReportingOverflow(n)
        if !overflow { return IPv6Address(high: high, low: l) }
        let (h, o2) = high.addingReportingOverflow(1)
        return o2 ? nil : IPv6Address(high: h, low: l)
    }

    /// True when the first `length` bits equal `network`'s.
    public func isIn(_ network: IPv6Address, prefixLength length: Int) -> Bool {
        let length = max(0, min(128, length))
        func mask(_ bits: Int) -> UInt64 { bits <= 0 ? 0 : bits >= 64 ? .max : ~(UInt64.max >> UInt64(bits)) }
        return high & mask(length) == network.high & mask(length)
            && low & mask(length - 64) == network.low & mask(length - 64)
    }

    public var description: String {
        var raw = in6_addr()
        withUnsafeMutableBytes(of: &raw) {
            $0.storeBytes(of: high.bigEndian, toByteOffset: 0, as: UInt64.self)
            $0.storeBytes(of: low.bigEndian, toByteOffset: 8, as: UInt64.self)
        }
        // On the stack: every DHCPv6 answer prints an address or two.
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: Int(INET6_ADDRSTRLEN)) { out in
            guard inet_ntop(AF_INET6, &raw, out.baseAddress, socklen_t(out.count)) != nil else { return "::" }
            return String(cString: out.baseAddress!)
        }
    }

    /// `[fd77::2]`: the form a URL holds (RFC 3986 §3.2.2).
    public var bracketed: String { "[\(description)]" }

    public static func < (a: IPv6Address, b: IPv6Address) -> Bool {
        a.high != b.high ? a.high < b.high : a.low < b.low
    }
}
