import Foundation
import Testing
@testable import Clients
import Protocols
import TestSupport

/// DHCPv6 bindings share the dhcp_lease table with DHCPv4 leases (by address text): written
/// through either store and read back as their own family, neither lost nor mistaken.
enum Lease6Store {
    static let v4 = Lease(address: IPv4Address(192, 168, 77, 120), client: "01525400770001", mac: "52:54:00:77:00:01",
                          hostname: "node1", expires: Date(timeIntervalSince1970: 4_000_000_000))
    static let v6 = Lease6(address: IPv6Address("fd77::120")!, client: Lease6.key(duid: [0, 3, 0, 1, 0x52, 0x54, 0, 0x79, 0, 2], iaid: 7),
                           mac: "52:54:00:79:00:02", expires: Date(timeIntervalSince1970: 4_000_000_000))
    static let declined = Lease6(address: IPv6Address("fd77::121")!, client: "", mac: "", expires: Date(timeIntervalSince1970: 4_000_000_000),
                                 state: .declined)

    static func roundTrip(_ open: () throws -> StateBackend) throws {
        let b = try open()
        try b.commit([.lease(v4), .lease6(v6), .lease6(declined)])
        b.close()
        let again = try open()
        defer { again.close() }
        let loaded = try again.load(now: Date())
        #expect(loaded.leases == [v4])
        #expect(Set(loaded.leases6.map(\.address)) == [v6.address, declined.address])
        #expect(loaded.leases6.first { $0.address == v6.address } == v6)
        #expect(loaded.leases6.first { $0.address == declined.address }?.state == .declined)
    }
}

@Suite struct Lease6SQLiteTests {
    @Test func bindingsOutliveAReopenBesideDHCPv4Leases() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bp-lease6-\(UUID().uuidString).db").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Lease6Store.roundTrip { try SQLiteStateBackend(path: path) }
    }
}

@Suite(.requires(TestPostgres.requirement), .serialized)
struct Lease6PostgresTests {
    @Test func bindingsOutliveAReopenBesideDHCPv4Leases() throws {
        let db = try TestPostgres.freshDatabase()
        defer { TestPostgres.dropDatabase(db.name) }
        try Lease6Store.roundTrip { try PostgresStateBackend(url: db.url, logger: TestPostgres.logger) }
    }
}
