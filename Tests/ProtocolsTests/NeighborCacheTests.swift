import Foundation
import Testing
@testable import Protocols

/// The neighbour-table snapshot: a missing address reads the table again (not more than every
/// 50 ms), a known one is trusted for at most a second.
@Suite struct NeighborCacheTests {
    func table(_ rows: [(String, String)]) -> String {
        "IP address       HW type     Flags       HW address            Mask     Device\n"
            + rows.map { "\($0.0)     0x1         0x2         \($0.1)     *        eth0\n" }.joined()
    }

    @Test func missingAddressesAreLookedUpAgainAndOldEntriesExpire() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bp-arp-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try table([("10.0.0.5", "52:54:00:00:00:05")]).write(toFile: path, atomically: true, encoding: .utf8)
        let cache = NeighborCache(table: path)
        #expect(cache.mac(for: "10.0.0.5") == "52:54:00:00:00:05")
        #expect(cache.mac(for: "10.0.0.6") == nil)
        // A new neighbour appears: found once the 50 ms gap has passed.
        try table([("10.0.0.5", "52:54:00:00:00:05"), ("10.0.0.6", "52:54:00:00:00:06")])
            .write(toFile: path, atomically: true, encoding: .utf8)
        Thread.sleep(forTimeInterval: 0.06)
        #expect(cache.mac(for: "10.0.0.6") == "52:54:00:00:00:06")
        // An address that moved to another MAC is believed anew within a second.
        try table([("10.0.0.5", "52:54:00:00:00:55")]).write(toFile: path, atomically: true, encoding: .utf8)
        Thread.sleep(forTimeInterval: 1.05)
        #expect(cache.mac(for: "10.0.0.5") == "52:54:00:00:00:55")
        #expect(NeighborCache(table: path + ".absent").mac(for: "10.0.0.5") == nil)
    }
}
