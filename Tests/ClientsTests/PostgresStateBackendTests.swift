import Foundation
import Logging
import Testing
@testable import Clients
import Protocols
import TestSupport

/// The PostgreSQL store against a real server: the throwaway one scripts/pg.sh starts
/// (TestSupport's `TestPostgres`). Without it these tests are skipped, visibly; under CI,
/// BOOTPOLICY_REQUIRE_POSTGRES=1 or BOOTPOLICY_REQUIRE_ALL=1 a missing server fails them.
extension TestPostgres {
    static let logger: Logger = {
        var l = Logger(label: "test.postgres")
        l.logLevel = .critical
        return l
    }()

    static func open(_ url: String) throws -> ClientDirectory {
        try ClientDirectory.open(backend: PostgresStateBackend(url: url, logger: logger), logger: logger)
    }
}

@Suite(.requires(TestPostgres.requirement), .serialized)
struct PostgresStateBackendTests {
    static let mac = "52:54:00:00:00:01"

    @Test func stateAndScriptsOutliveAReopen() throws {
        let db = try TestPostgres.freshDatabase()
        defer { TestPostgres.dropDatabase(db.name) }
        let d = try expectStateOutlivesAReopen(policy: nil) { try TestPostgres.open(db.url) }
        defer { d.close() }
        // The rows are plain JSON a person can read with psql.
        #expect(try TestPostgres.psql("SELECT value_json FROM client_state WHERE mac = '\(Self.mac)'", database: db.name)
                == #"{"at":"rack7","installed":true,"n":3,"x":1.5}"#)
        #expect(try TestPostgres.psql("SELECT id FROM bootpolicy_schema ORDER BY id", database: db.name) == "v1: client_state, client_script\nv2: dhcp_lease")
    }

    @Test func twoServersStartingAtOnceMigrateOnce() throws {
        let db = try TestPostgres.freshDatabase()
        defer { TestPostgres.dropDatabase(db.name) }
        let results = NIOLockedBox<[String]>([])
        let workers = (0..<4).map { _ in
            TestPostgres.Worker {
                do {
                    let b = try PostgresStateBackend(url: db.url, logger: TestPostgres.logger)
                    b.close()
                    results.mutate { $0.append("ok") }
                } catch {
                    results.mutate { $0.append("\(error)") }
                }
            }
        }
        #expect(workers.allSatisfy { $0.join(timeout: 30) })
        #expect(results.value == ["ok", "ok", "ok", "ok"], "\(results.value)")
        #expect(try TestPostgres.psql("SELECT count(*) FROM bootpolicy_schema", database: db.name) == "\(PostgresStateBackend.migrations.count)")
    }

    @Test func aNewerSchemaIsRefused() throws {
        let db = try TestPostgres.freshDatabase()
        defer { TestPostgres.dropDatabase(db.name) }
        try PostgresStateBackend(url: db.url, logger: TestPostgres.logger).close()
        _ = try TestPostgres.psql("INSERT INTO bootpolicy_schema VALUES ('v9: from the future', 0)", database: db.name)
        #expect {
            try PostgresStateBackend(url: db.url, logger: TestPostgres.logger)
        } throws: { error in
            "\(error)".contains("was written by a newer bootpolicy (schema v9: from the future)")
        }
    }

    @Test func badURLsAndUnreachableServersAreClearErrors() throws {
        for (url, needle) in [("postgres://127.0.0.1/db", "no user"), ("postgres://u@127.0.0.1/", "no database name"),
                              ("mysql://u@h/db", "is not a postgres://"), ("postgres://u@h/db?sslmode=require", "only ?sslmode=disable")] {
            #expect(throws: StateError.self) { try PostgresStateBackend(url: url, logger: TestPostgres.logger) }
            do { _ = try PostgresStateBackend(url: url, logger: TestPostgres.logger) } catch {
                #expect("\(error)".contains(needle), "\(url): \(error)")
            }
        }
        let started = Date()
        do {
            _ = try PostgresStateBackend(url: "postgres://u:secret@127.0.0.1:1/db", logger: TestPostgres.logger)
            Issue.record("connected to port 1?")
        } catch {
            #expect(!"\(error)".contains("secret"), "the password must not be shown: \(error)")
            #expect("\(error)".contains("postgres://u@127.0.0.1:1/db"), "\(error)")
        }
        #expect(Date().timeIntervalSince(started) < 10, "bounded")
    }

    /// Two servers on one database: each sees the other's writes within a second, and writes
    /// of the same client from both at once end the same in both and in the database.
    @Test func twoServersShareOneTruth() throws {
        let db = try TestPostgres.freshDatabase()
        defer { TestPostgres.dropDatabase(db.name) }
        let a = try TestPostgres.open(db.url), b = try TestPostgres.open(db.url)
        defer { a.close(); b.close() }
        Thread.sleep(forTimeInterval: 0.3)  // both listeners up
        var delays: [TimeInterval] = []
        for i in 0..<20 {
            let mac = String(format: "52:54:00:00:01:%02x", i)
            try a.state.set(mac: mac, ["installed": true, "i": .integer(i)])
            #expect(a.state.waitDurable(through: a.state.mark))
            let seen = TestPostgres.within(1) { b.state.get(mac: mac)?["i"] == .integer(i) }
            #expect(seen != nil, "B did not see A's write of \(mac) within 1 s")
            if let seen { delays.append(seen) }
        }
        print("postgres feed: A's write seen by B after median \(Int((delays.sorted()[delays.count / 2]) * 1000)) ms, max \(Int((delays.max() ?? 0) * 1000)) ms")
        try b.state.clear(mac: "52:54:00:00:01:00")
        #expect(b.state.waitDurable(through: b.state.mark))
        #expect(TestPostgres.within(1) { a.state.get(mac: "52:54:00:00:01:00") == nil } != nil, "A did not see B's clear")

        // Both write the same clients at once, many times; every copy converges on the row.
        let macs = (0..<8).map { String(format: "52:54:00:00:02:%02x", $0) }
        let writers = [("a", a), ("b", b)].map { name, d in
            TestPostgres.Worker {
                for n in 0..<200 {
                    try? d.state.set(mac: macs[n % macs.count], ["by": .string(name), "n": .integer(n)])
                    if n % 16 == 0 { _ = d.state.waitDurable(through: d.state.mark) }
                }
                _ = d.state.waitDurable(through: d.state.mark)
            }
        }
        #expect(writers.allSatisfy { $0.join(timeout: 60) })
        for mac in macs {
            let converged = try TestPostgres.within(2) {
                let row = try TestPostgres.psql("SELECT value_json FROM client_state WHERE mac = '\(mac)'", database: db.name)
                let want = StateJSON.decode(row)
                return want != nil && a.state.get(mac: mac) == want && b.state.get(mac: mac) == want
            }
            #expect(converged != nil, "\(mac): A \(String(describing: a.state.get(mac: mac))), B \(String(describing: b.state.get(mac: mac)))")
        }
    }

    /// Two DHCPv6 servers on one database with the same range (64 addresses) and 96 clients
    /// binding through both at once: the table's claim decides, so no address is granted to
    /// two clients, every granted binding is the one the table holds, and a client that moves
    /// to the other server keeps its address. (Without the claim each server's memory granted
    /// what the other had bound.)
    @Test func twoServersNeverBindOneIPv6AddressTwice() throws {
        let db = try TestPostgres.freshDatabase()
        defer { TestPostgres.dropDatabase(db.name) }
        let a = try TestPostgres.open(db.url), b = try TestPostgres.open(db.url)
        defer { a.close(); b.close() }
        let range = try #require(try DHCPv6Range.parse("fd77::100,fd77::13f,64,1h"))
        let pools = [DHCPv6LeasePool(ranges: [range], journal: a.lease6Journal),
                     DHCPv6LeasePool(ranges: [range], journal: b.lease6Journal)]
        final class Granted: @unchecked Sendable {
            let lock = NSLock()
            var byAddress: [IPv6Address: [String]] = [:]
            var refused = 0
        }
        let granted = Granted()
        let workers = pools.enumerated().map { n, pool in
            TestPostgres.Worker {
                for i in 0..<48 {
                    let client = String(format: "0001000100000000%02x%02x/00000001", n, i)
                    // As a client would: Solicit, Request; a refused Request starts over.
                    for _ in 0..<4 {
                        guard case let .success(address) = pool.offer(client: client, in: range) else { break }
                        if case let .success((_, mark)) = pool.bind(client: client, mac: "", address: address, in: range) {
                            _ = pool.journal.awaitDurable(through: mark)
                            granted.lock.withLock { granted.byAddress[address, default: []].append(client) }
                            break
                        }
                        granted.lock.withLock { granted.refused += 1 }
                    }
                }
            }
        }
        #expect(workers.allSatisfy { $0.join(timeout: 60) })
        let twice = granted.byAddress.filter { $0.value.count > 1 }
        #expect(twice.isEmpty, "granted to two clients: \(twice)")
        #expect(granted.byAddress.count == 64, "every address granted once: \(granted.byAddress.count)")
        print("postgres dhcpv6 claims: \(granted.byAddress.count) bindings over two servers, \(granted.refused) Requests refused (held by the other)")
        for (address, clients) in granted.byAddress {
            let row = try TestPostgres.psql("SELECT client_id FROM dhcp_lease WHERE address = '\(address)' AND state = 'bound'", database: db.name)
            #expect(row == clients.first, "\(address): the table holds \(row), granted to \(clients)")
        }
        // Every client renews through each server: its own row, so granted again, also where
        // a server's memory holds a stand-in for a holder a claim did not name (a CI run found
        // an owner refused by such a stand-in).
        for (address, clients) in granted.byAddress {
            for pool in pools {
                let again = pool.bind(client: clients[0], mac: "", address: address, in: range)
                guard case .success = again else { Issue.record("\(clients[0]) renewing \(address): \(again)"); return }
            }
        }
        let (address, _) = try #require(granted.byAddress.first)
        // And another client through B is refused that address.
        let other = pools[1].bind(client: "00010001ffffffffffff/00000001", mac: "", address: address, in: range)
        guard case .failure(.notAssignable) = other else { Issue.record("another client got it through B: \(other)"); return }
    }

    /// The DHCPv6 lease feed: a binding made through A reaches B's memory, so B advertises
    /// that client the same address, withdraws an advertisement of it to another client and
    /// stops advertising it; a release through A frees it in B. (Without the feed, B learns
    /// of A's binding only when a Request for it is refused.)
    @Test func aDHCPv6BindingThroughOneServerReachesTheOther() throws {
        let db = try TestPostgres.freshDatabase()
        defer { TestPostgres.dropDatabase(db.name) }
        let a = try TestPostgres.open(db.url), b = try TestPostgres.open(db.url)
        defer { a.close(); b.close() }
        let range = try #require(try DHCPv6Range.parse("fd77::200,fd77::203,64,1h"))
        let poolA = DHCPv6LeasePool(ranges: [range], journal: a.lease6Journal)
        let poolB = DHCPv6LeasePool(ranges: [range], journal: b.lease6Journal)
        try #require(b.sharedLeaseStore).followLeases6 { [poolB] in poolB.remoteChanged($0) }
        let x = "00010001aaaaaaaaaaaa/00000001", y = "00010001bbbbbbbbbbbb/00000001"
        // B advertises an address to Y; A binds that same address to X (A knows nothing of B's
        // advertisement, and the table has no row for it, so the claim grants it).
        guard case let .success(address) = poolB.offer(client: y, in: range) else { Issue.record("B advertised nothing"); return }
        guard case let .success((_, mark)) = poolA.bind(client: x, mac: "52:54:00:00:0a:01", address: address, in: range) else {
            Issue.record("A did not bind \(address)"); return
        }
        #expect(poolA.journal.awaitDurable(through: mark))
        let seen = TestPostgres.within(2) { poolB.lease(of: x)?.address == address }
        #expect(seen != nil, "B did not learn of A's binding of \(address) within 2 s")
        if let seen { print("postgres dhcpv6 lease feed: A's binding known to B after \(Int(seen * 1000)) ms") }
        #expect(poolB.offer(client: x, in: range) == .success(address), "B advertises X another address")
        let toY = poolB.offer(client: y, in: range)
        #expect(toY != .success(address), "B still advertises X's address to Y")
        // Released through A: free in B again.
        _ = poolA.journal.awaitDurable(through: poolA.release(client: x, address: address))
        #expect(TestPostgres.within(2) { poolB.lease(of: x) == nil } != nil, "B kept X's released binding")
    }

    /// The database dies under writes and comes back: no crash; writes are refused while it
    /// is down; every write acknowledged (durable) before is there after; the servers recover
    /// by themselves, and a change made while a listener was away reaches it.
    @Test func theDatabaseDiesAndComesBack() throws {
        try #require(TestPostgres.dir != nil, "BP_PG_DIR is needed to stop and start the server")
        let db = try TestPostgres.freshDatabase()
        defer { TestPostgres.dropDatabase(db.name) }
        let a = try TestPostgres.open(db.url), b = try TestPostgres.open(db.url)
        defer { a.close(); b.close() }
        let acked = NIOLockedBox<[String: Int]>([:])
        let refusedWhileDown = NIOLockedBox(0)
        let stop = NIOLockedBox(false)
        let writer = TestPostgres.Worker {
            var n = 0
            while !stop.value && n < 100_000 {
                n += 1
                let mac = String(format: "52:54:00:03:%02x:%02x", (n / 256) % 256, n % 256)
                do {
                    try a.state.set(mac: mac, ["n": .integer(n)])
                    if a.state.waitDurable(through: a.state.mark, timeout: 1) { acked.mutate { $0[mac] = n } }
                } catch {
                    if (error as? StateError)?.unavailable == true { refusedWhileDown.mutate { $0 += 1 } }
                    Thread.sleep(forTimeInterval: 0.005)
                }
            }
        }
        for round in 0..<2 {
            Thread.sleep(forTimeInterval: 0.7)
            let before = acked.value.count
            try TestPostgres.pgctl("kill")
            let down = TestPostgres.within(5) { a.state.unavailableReason != nil && b.state.unavailableReason != nil }
            #expect(down != nil, "round \(round): the servers did not notice the database went away")
            #expect(throws: StateError.self) { try b.state.set(mac: "52:54:00:04:00:01", ["x": 1]) }
            // Reads go on from memory meanwhile.
            #expect(a.state.count >= before)
            Thread.sleep(forTimeInterval: 1.5)  // longer than one durability wait, so the writer meets a refusal
            try TestPostgres.pgctl("restart")
            let back = TestPostgres.within(10) { a.state.unavailableReason == nil && b.state.unavailableReason == nil }
            #expect(back != nil, "round \(round): no recovery: \(a.state.unavailableReason ?? "-") / \(b.state.unavailableReason ?? "-")")
        }
        Thread.sleep(forTimeInterval: 0.5)
        stop.mutate { $0 = true }
        #expect(writer.join(timeout: 30))
        #expect(refusedWhileDown.value > 0, "writes were not refused while the database was down")

        // Every acknowledged write is in the database.
        let rows = try TestPostgres.psql("SELECT mac || '=' || value_json FROM client_state", database: db.name)
        var inDB: [String: Int] = [:]
        for line in rows.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if case .integer(let n)? = StateJSON.decode(String(parts[1]))?["n"] { inDB[String(parts[0])] = n }
        }
        let lost = acked.value.filter { inDB[$0.key] != $0.value }
        print("postgres kill: \(acked.value.count) acknowledged writes, \(refusedWhileDown.value) refused while down, \(lost.count) lost")
        #expect(acked.value.count > 50, "too few writes to mean anything")
        #expect(lost.isEmpty, "lost acknowledged writes: \(lost.prefix(5))")

        // A row changed behind B's back while its listener is away reaches B at reconnection.
        _ = try TestPostgres.psql("INSERT INTO client_state VALUES ('52:54:00:05:00:01', '{\"sneaky\":true}', extract(epoch from now()) + 3600, 0)",
                                  database: db.name)
        #expect(b.state.get(mac: "52:54:00:05:00:01") == nil, "no NOTIFY was sent, so B cannot know yet")
        _ = try TestPostgres.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '\(db.name)' AND pid <> pg_backend_pid()",
                                  database: db.name)
        #expect(TestPostgres.within(5) { b.state.get(mac: "52:54:00:05:00:01") == ["sneaky": true] } != nil,
                "B did not resync after its listener was cut")
    }
}

/// A value behind a lock, for the test threads.
final class NIOLockedBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var v: T
    init(_ v: T) { self.v = v }
    var value: T { lock.lock(); defer { lock.unlock() }; return v }
    func mutate(_ f: (inout T) -> Void) { lock.lock(); f(&v); lock.unlock() }
}
