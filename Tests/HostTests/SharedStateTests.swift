import Foundation
import Protocols
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Two real `bootpolicy serve` processes on one PostgreSQL database, as two boot servers on
/// one segment run: what one learns or is told, the other answers by; and the database
/// dying under API writes loses none that were acknowledged.
@Suite(.requires(TestPostgres.requirement), .serialized)
struct SharedStateTests {
    let curl = "/usr/bin/curl"
    static let netbootOnce = ServerProcess.packageRoot.appendingPathComponent("examples/netboot-once.lua").path

    func call(_ server: ControlAPITests.Server, _ method: String, _ path: String, body: String? = nil) throws -> (status: Int, body: String) {
        try ControlAPITests().call(server, method, path, token: ControlAPITests.writeToken, body: body)
    }

    /// The script a server generated for `mac` at its last DHCP answer.
    func script(_ server: ControlAPITests.Server, _ mac: String) throws -> String {
        try runTool(curl, ["-sS", "-m", "10", server.scriptURL(mac)]).output
    }

    /// Asks `server` (as iPXE) until its script for `mac` contains `needle`; the seconds it took.
    func answers(_ server: ControlAPITests.Server, _ mac: [UInt8], _ needle: String, xid: inout UInt32) throws -> TimeInterval? {
        let text = mac.map { String(format: "%02x", $0) }.joined(separator: ":")
        return try TestPostgres.within(3) {
            xid += 1
            guard ServeStateTests.discover(port: server.dhcpPort, mac: mac, xid: xid) != nil else { return false }
            return try script(server, text).contains(needle)
        }
    }

    @Test func whatOneServerLearnsTheOtherAnswersBy() throws {
        let db = try TestPostgres.freshDatabase()
        defer { TestPostgres.dropDatabase(db.name) }
        let a = try ControlAPITests.Server(policy: Self.netbootOnce, state: db.url)
        let b = try ControlAPITests.Server(policy: Self.netbootOnce, state: db.url)
        let mac: [UInt8] = [0x02, 0x77, 0x05, 0x00, 0x00, 0x01]
        let text = "02:77:05:00:00:01"
        var xid: UInt32 = 0x0500

        // The machine's first boot reaches A, which hands out the installer and remembers it.
        #expect(try answers(a, mac, "installing \(text)", xid: &xid) != nil)
        // Its next boot reaches B: B knows, from A's write, that it was installed.
        let seen = try answers(b, mac, "was installed; booting from disk", xid: &xid)
        let lastFromB = try script(b, text)
        #expect(seen != nil, "B did not learn A's write:\n\(lastFromB)")

        // An operator asks B for a reinstall: A installs it again.
        #expect(try call(b, "DELETE", "/api/v1/clients/\(text)/state").status == 200)
        #expect(try answers(a, mac, "installing \(text)", xid: &xid) != nil, "A did not learn B's DELETE")

        // The installer tells A it is done: B sends it to disk.
        #expect(try call(a, "PUT", "/api/v1/clients/\(text)/state", body: #"{"installed": true, "by": "kickstart"}"#).status == 200)
        #expect(try answers(b, mac, "booting from disk", xid: &xid) != nil, "B did not learn A's PUT")
        let fromB = try ControlAPITests().call(b, "GET", "/api/v1/clients/\(text)/state", token: ControlAPITests.readToken)
        #expect(fromB.body.contains(#""by":"kickstart""#), "\(fromB)")
        print("shared state: B answered by A's write after \(Int((seen ?? 0) * 1000)) ms")
    }

    /// The database is killed twice while an installer fleet PUTs through the API: writes
    /// answer 503 while it is down (never 200 for a write that is not in the database), the
    /// server stays up and recovers by itself, and every 200 is in the database afterwards.
    @Test func theDatabaseDiesUnderAPIWrites() throws {
        try #require(TestPostgres.dir != nil, "BP_PG_DIR is needed to stop and start the server")
        let db = try TestPostgres.freshDatabase()
        defer { TestPostgres.dropDatabase(db.name) }
        let a = try ControlAPITests.Server(state: db.url)
        final class Tally: @unchecked Sendable {
            let lock = NSLock()
            var acked: [String: Int] = [:], unavailable = 0, other: [String] = []
            var stop = false
        }
        let tally = Tally()
        let writer = TestPostgres.Worker {
            var n = 0
            while !tally.lock.withLock({ tally.stop }) && n < 20_000 {
                n += 1
                let mac = String(format: "02:77:06:00:%02x:%02x", (n / 256) % 256, n % 256)
                let r = (try? ControlAPITests().call(a, "PUT", "/api/v1/clients/\(mac)/state", token: ControlAPITests.writeToken,
                                                    body: "{\"n\": \(n)}")) ?? (status: -1, body: "curl failed")
                tally.lock.withLock {
                    switch r.status {
                    case 200: tally.acked[mac] = n
                    case 503: tally.unavailable += 1
                    default: tally.other.append("\(r.status) \(r.body)")
                    }
                }
                if r.status != 200 { Thread.sleep(forTimeInterval: 0.01) }
            }
        }
        for round in 0..<2 {
            Thread.sleep(forTimeInterval: 2.5)
            try TestPostgres.pgctl("kill")
            Thread.sleep(forTimeInterval: 2.0)
            #expect(a.process.process.isRunning, "round \(round): the server died with its database")
            let health = try runTool(curl, ["-s", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}",
                                             "-H", "Authorization: Bearer \(ControlAPITests.readToken)", a.base + "/api/v1/clients?limit=1"]).output
            #expect(health == "200", "round \(round): reads stop while the database is down: \(health)")
            try TestPostgres.pgctl("restart")
        }
        // Writes are accepted again, by themselves.
        let back = try TestPostgres.within(15) { tally.lock.withLock { tally.acked.count } > 0 &&
            (try? call(a, "PUT", "/api/v1/clients/02:77:06:ff:00:01/state", body: #"{"back": true}"#).status) == 200 }
        tally.lock.withLock { tally.stop = true }
        #expect(writer.join(timeout: 60))
        #expect(back != nil, "writes were not accepted again after the database came back:\n\(a.process.text.suffix(2000))")

        let rows = try TestPostgres.psql("SELECT mac || '=' || value_json FROM client_state", database: db.name)
        var inDB: [String: String] = [:]
        for line in rows.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { inDB[String(parts[0])] = String(parts[1]) }
        }
        let (acked, unavailable, other) = tally.lock.withLock { (tally.acked, tally.unavailable, tally.other) }
        let lost = acked.filter { inDB[$0.key] != "{\"n\":\($0.value)}" }
        print("api under database kills: \(acked.count) writes acknowledged, \(unavailable) answered 503, \(lost.count) lost")
        #expect(acked.count > 30, "too few writes to mean anything")
        #expect(unavailable > 0, "no write was refused while the database was down")
        #expect(lost.isEmpty, "acknowledged but not in the database: \(lost.prefix(5))")
        #expect(other.isEmpty, "answers other than 200 and 503: \(other.prefix(5))")
        #expect(a.process.text.contains("lost the change feed") && a.process.text.contains("change feed back"), "\(a.process.text.suffix(3000))")
    }

    /// Two full-DHCP servers on one pool in PostgreSQL: 200 clients from 8 threads, each taking
    /// one server's offer, as a client takes the first OFFER it hears. Offers may collide (the
    /// servers start at random points of the range and tell each other their claims, so not
    /// often); the primary key and the conditional upsert must leave no address ACKed to two
    /// clients, and every client ends with an address (a NAKed one starts over, bounded).
    @Test func twoServersNeverLeaseOneAddressTwice() throws {
        let db = try TestPostgres.freshDatabase()
        defer { TestPostgres.dropDatabase(db.name) }
        let range = ["--dhcp-range", "127.77.0.10,127.77.1.4,/8,1h", "--no-ping"]  // 251 addresses
        let servers = [try ControlAPITests.Server(state: db.url, extra: range), try ControlAPITests.Server(state: db.url, extra: range)]
        final class Log: @unchecked Sendable {
            let lock = NSLock()
            var acks: [(client: Int, address: String, server: Int)] = []
            var naks = 0, failures: [String] = []
        }
        let log = Log()
        let clients = 200
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            for n in stride(from: worker, to: clients, by: 8) {
                let mac: [UInt8] = [0x02, 0x77, 0x20, 0x00, UInt8(n >> 8), UInt8(n & 0xff)]
                var done = false
                for attempt in 0..<6 where !done {
                    let server = (n + attempt) % 2
                    let port = servers[server].dhcpPort
                    let xid = UInt32(0x2000_0000 + n * 16 + attempt)
                    var d = DHCPMessage(op: .request, xid: xid, flags: 0x8000, chaddr: mac)
                    d.messageType = .discover
                    guard let offer = ServeStateTests.exchange(port: port, d), offer.messageType == .offer else { continue }
                    var r = DHCPMessage(op: .request, xid: xid | 0x0800_0000, flags: 0x8000, chaddr: mac)
                    r.messageType = .request
                    r.options.set(50, offer.yiaddr.bytes)
                    r.options.set(54, [127, 0, 0, 1])
                    guard let reply = ServeStateTests.exchange(port: port, r) else { continue }
                    log.lock.withLock {
                        if reply.messageType == .ack {
                            log.acks.append((n, reply.yiaddr.description, server))
                            done = true
                        } else if reply.messageType == .nak {
                            log.naks += 1
                        }
                    }
                }
                if !done { log.lock.withLock { log.failures.append("client \(n)") } }
            }
        }
        var holder: [String: Int] = [:]
        var twice: [String] = []
        for ack in log.acks {
            if let other = holder[ack.address], other != ack.client { twice.append("\(ack.address): clients \(other) and \(ack.client)") }
            holder[ack.address] = ack.client
        }
        #expect(twice.isEmpty, "leased twice: \(twice.prefix(5))")
        #expect(log.failures.isEmpty, "no address after 6 tries: \(log.failures.prefix(5)) (\(log.naks) NAKs)")
        let bound = try TestPostgres.psql("SELECT count(*) FROM dhcp_lease WHERE state = 'bound'", database: db.name)
        #expect(bound.trimmingCharacters(in: .whitespacesAndNewlines) == "\(clients)", "bound rows: \(bound)")

        // The claim itself, where no feed can have warned the server: a lease written into the
        // table behind both servers' backs (psql sends no notification). Server A's memory
        // thinks the address free and offers it to a client asking for it; the claim finds the
        // row held and the REQUEST gets a NAK, not an ACK.
        let free = try #require((10...254).map { "127.77.0.\($0)" }.first { holder[$0] == nil }, "no free address left")
        _ = try TestPostgres.psql("""
            INSERT INTO dhcp_lease (address, client_id, mac, hostname, expires, state, updated)
            VALUES ('\(free)', '01aabbccddeeff', 'aa:bb:cc:dd:ee:ff', NULL, extract(epoch from now()) + 3600, 'bound', 0)
            """, database: db.name)
        let mac: [UInt8] = [0x02, 0x77, 0x21, 0x00, 0x00, 0x01]
        var d = DHCPMessage(op: .request, xid: 0x2100_0001, flags: 0x8000, chaddr: mac)
        d.messageType = .discover
        d.options.set(50, IPv4Address(free)!.bytes)
        let offer = try #require(ServeStateTests.exchange(port: servers[0].dhcpPort, d))
        #expect(offer.messageType == .offer && offer.yiaddr.description == free, "\(offer.yiaddr)")
        var r = DHCPMessage(op: .request, xid: 0x2100_0002, flags: 0x8000, chaddr: mac)
        r.messageType = .request
        r.options.set(50, IPv4Address(free)!.bytes)
        r.options.set(54, [127, 0, 0, 1])
        #expect(ServeStateTests.exchange(port: servers[0].dhcpPort, r)?.messageType == .nak, "a lease held in the table was granted again")
        print("shared pool: \(clients) clients, \(log.acks.count) ACKs, \(log.naks) NAKs from collisions, \(twice.count) addresses leased twice")
    }
}
