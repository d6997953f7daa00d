import Foundation

/// The kernel's IPv4 neighbour table (/proc/net/arp): which MAC an address belongs to. A client
/// that sends us a TFTP or HTTP request has ARPed for our address first, so its entry is there
/// even when we never saw its DHCP (another host's proxy, a static address).
public enum NeighborTable {
    public static func mac(for address: String, table: String = "/proc/net/arp") -> String? {
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
