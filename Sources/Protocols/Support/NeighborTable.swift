import CLinux
import Foundation

/// The kernel's IPv4 neighbour table (/proc/self/net/arp: the same table, and visible under systemd's ProcSubset=pid): which MAC an address belongs to. A client
/// that sends us a TFTP or HTTP request has ARPed for our address first, so its entry is there
/// even when we never saw its DHCP (another host's proxy, a static address).
public enum NeighborTable {
    public static func mac(for address: String, table: String = "/proc/self/net/arp") -> String? {
        guard let text = try? String(contentsOfFile: table, encoding: .utf8) else { return nil }
        return parse(text)[address]
    }

    /// The IPv6 neighbours (NDP) as address text -> MAC: a DHCPv6 client's TFTP and HTTP
    /// requests come from the address the site server gave it, which only this table ties to
    /// its MAC. Empty when netlink cannot be read.
    public static func ipv6(limit: Int = 16_384) -> [String: String] {
        var raw = [UInt8](repeating: 0, count: limit * 22)
        let n = raw.withUnsafeMutableBufferPointer { Int(clinux_neighbours6($0.baseAddress, Int32(limit))) }
        guard n > 0 else { return [:] }
        var out: [String: String] = [:]
        for i in 0..<n {
            let entry = raw[(i * 22)..<(i * 22 + 22)]
            guard let address = IPv6Address(bytes: entry.prefix(16)) else { continue }
            let mac = Array(entry.suffix(6))
            guard mac != [0, 0, 0, 0, 0, 0] else { continue }
            out[address.description] = Hex.encode(mac, separator: ":")
        }
        return out
    }

    /// "IP address  HW type  Flags  HW address  Mask  Device" rows; incomplete entries skipped.
    static func parse(_ text: String) -> [String: String] {
        var result: [String: String] = [:]
        for line in text.split(separator: "\n").dropFirst() {
            let cols = line.split(separator: " ", omittingEmptySubsequences: true)
            guard cols.count >= 4, cols[2] != "0x0", let mac = MACAddress.normalize(String(cols[3])),
                  mac != "00:00:00:00:00:00" else { continue }
            result[String(cols[0])] = mac
        }
        return result
    }
}

/// The neighbour table as the servers consult it for every request that names no client: a
/// snapshot read again when an address is missing from it (at most every 50 ms) or when it is
/// over a second old, so a file request does not parse /proc/net/arp each time.
///
/// The kernel's entry is what the servers believe first about an on-link client: the kernel
/// must resolve the requester's MAC to answer it at all, and a forged DHCP request (any chaddr,
/// sent from the forger's own address) cannot change it. What DHCP taught is the fallback, for
/// clients behind a router.
public final class NeighborCache: @unchecked Sendable {
    private let lock = NSLock()
    private let table: String
    private var snapshot: [String: String] = [:]
    private var readAt: UInt64 = 0
    private let maxAge: UInt64 = 1_000_000_000, minGap: UInt64 = 50_000_000

    /// Also the IPv6 table (netlink), unless a test points `table` at a file of its own.
    private let ipv6: Bool

    public init(table: String = "/proc/self/net/arp") {
        self.table = table
        self.ipv6 = table == "/proc/self/net/arp"
    }

    public func mac(for given: String) -> String? {
        // IPv6 text in its canonical form (the table's keys), without a zone; an IPv4-mapped
        // address is the IPv4 one.
        var address = given
        if given.contains(":") {
            let bare = String(given.split(separator: "%").first ?? Substring(given))
            if bare.lowercased().hasPrefix("::ffff:"), !bare.dropFirst(7).contains(":") {
                address = String(bare.dropFirst(7))
            } else if let v6 = IPv6Address(bare) {
                address = v6.description
            }
        }
        lock.lock()
        defer { lock.unlock() }
        let now = DispatchTime.now().uptimeNanoseconds
        let age = now &- readAt
        if readAt != 0, age < maxAge, let known = snapshot[address] { return known }
        if readAt != 0, age < minGap { return snapshot[address] }
        snapshot = (try? String(contentsOfFile: table, encoding: .utf8)).map(NeighborTable.parse) ?? [:]
        if ipv6 { for (a, m) in NeighborTable.ipv6() { snapshot[a] = m } }
        readAt = now
        return snapshot[address]
    }
}
