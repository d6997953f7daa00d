import Foundation

/// The kernel's IPv4 neighbour table (/proc/self/net/arp: the same table, and visible under systemd's ProcSubset=pid): which MAC an address belongs to. A client
/// that sends us a TFTP or HTTP request has ARPed for our address first, so its entry is there
/// even when we never saw its DHCP (another host's proxy, a static address).
public enum NeighborTable {
    public static func mac(for address: String, table: String = "/proc/self/net/arp") -> String? {
        guard let text = try? String(contentsOfFile: table, encoding: .utf8) else { return nil }
        return parse(text)[address]
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

    public init(table: String = "/proc/self/net/arp") {
        self.table = table
    }

    public func mac(for address: String) -> String? {
        lock.lock()
        defer { lock.unlock() }
        let now = DispatchTime.now().uptimeNanoseconds
        let age = now &- readAt
        if readAt != 0, age < maxAge, let known = snapshot[address] { return known }
        if readAt != 0, age < minGap { return snapshot[address] }
        snapshot = (try? String(contentsOfFile: table, encoding: .utf8)).map(NeighborTable.parse) ?? [:]
        readAt = now
        return snapshot[address]
    }
}
