import Foundation
import Logging
import Protocols
import Testing
@testable import Clients

/// The decision journal: bounded by count and age whatever passes through it, in order, never
/// making a caller wait; and a shadow chain's state store over the live one.
@Suite struct DecisionJournalTests {
    static func request(_ i: Int) -> (BootRequest, [UInt8]) {
        var m = DHCPMessage(op: .request, xid: UInt32(i), flags: 0x8000,
                            chaddr: [0x02, 0x77, 0x33, UInt8(i >> 16 & 0xff), UInt8(i >> 8 & 0xff), UInt8(i & 0xff)])
        m.messageType = .discover
        m.options.set(93, [0, 7])
        m.vendorClass = "PXEClient:Arch:00007:UNDI:003016"
        return (BootRequest(dhcp: m, serverPort: 67, interface: "bp0", source: nil), m.bytes)
    }

    static let decision = BootDecision(filename: "ipxe.efi", nextServer: "192.168.77.2", ipxeScript: "#!ipxe\nchain x\n",
                                       options: [66: Array("boot".utf8)], note: "uefi", policy: "arch-aware")

    /// 100,000 decisions through a journal bound at 10,000: never more than the bound and one
    /// batch on disk, exactly the newest 10,000 once it closes, readable in order, per MAC.
    @Test func staysWithinItsBoundAfter100000Decisions() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("decisions.db").path
        let settings = DecisionJournal.Settings(maxEntries: 10_000, flushEvery: 0.05)
        let journal = DecisionJournal(store: try SQLiteJournalStore(path: path), settings: settings, logger: Logger(label: "test"))
        journal.start()
        var most = 0
        let reader = try SQLiteJournalStore(path: path, readOnly: true)
        defer { reader.close() }
        let steps = [PolicyStep(policy: "default", hook: "dhcp", outcome: .passed, duration: 1200),
                     PolicyStep(policy: "arch-aware", hook: "dhcp", outcome: .decided, duration: 3400)]
        for i in 0..<100_000 {
            let (r, bytes) = Self.request(i % 500)
            while !journal.record(r, datagram: bytes, decision: Self.decision, steps: steps, version: "0123456789ab") {
                Thread.sleep(forTimeInterval: 0.001)  // the queue is full: the test waits, a server would drop
            }
            if i % 10_000 == 0 { most = max(most, try reader.count()) }
        }
        #expect(journal.flush(timeout: 30))
        most = max(most, try reader.count())
        #expect(most <= 10_000 + settings.batchLimit, "\(most) entries on disk")
        journal.close()
        let store = try SQLiteJournalStore(path: path, readOnly: true)
        defer { store.close() }
        #expect(try store.count() == 10_000)
        let newest = try store.entries(mac: nil, since: nil, limit: 3)
        #expect(newest.map(\.id) == [99_998, 99_999, 100_000])
        let one = try store.entries(mac: "02:77:33:00:01:f3", since: nil, limit: 1000)
        #expect(one.count == 20)
        let e = try #require(one.last)
        #expect(e.version == "0123456789ab")
        #expect(e.policy == "arch-aware")
        #expect(e.decision == Self.decision)
        #expect(e.steps.map(\.outcome) == ["passed", "decided"])
        #expect(e.summary.hasPrefix("discover"), "\(e.summary)")
        #expect(e.reply.first == "file ipxe.efi  next-server 192.168.77.2")
        // The entry is a fixture: it replays as the request it was.
        let again = try e.request.bootRequest()
        #expect(again.mac == "02:77:33:00:01:f3")
        #expect(again.archCode == 7)
    }

    @Test func entriesOlderThanMaxAgeGo() throws {
        let store = MemoryJournalStore(capacity: 100)
        let (r, bytes) = Self.request(1)
        let journal = DecisionJournal(store: store, settings: .init(maxAge: 0.3, flushEvery: 0.02), logger: Logger(label: "test"))
        journal.start()
        defer { journal.close() }
        journal.record(r, datagram: bytes, decision: nil, steps: [], version: "v")
        #expect(journal.flush())
        #expect(try store.count() == 1)
        var left = 1
        for _ in 0..<40 where left > 0 {
            Thread.sleep(forTimeInterval: 0.1)
            left = try store.count()
        }
        #expect(left == 0, "an entry older than max_age was kept")
    }

    @Test func theMemoryStoreKeepsTheNewest() throws {
        let store = MemoryJournalStore(capacity: 100)
        let (r, bytes) = Self.request(1)
        let journal = DecisionJournal(store: store, logger: Logger(label: "test"))
        journal.start()
        for _ in 0..<250 { journal.record(r, datagram: bytes, decision: nil, steps: [], version: "v") }
        #expect(journal.flush())
        journal.close()
        let all = try store.entries(mac: nil, since: nil, limit: 1000)
        #expect(all.count == 100)
        #expect(all.first?.id == 151 && all.last?.id == 250)
        #expect(all.last?.reply == ["none: no policy decided (silent)"])
    }

    /// A store that cannot keep up never makes `record` wait: past the queue's bound entries
    /// are dropped (and counted).
    @Test func aStuckStoreDropsInsteadOfWaiting() throws {
        final class Stuck: JournalStore, @unchecked Sendable {
            let gate = DispatchSemaphore(value: 0)
            var description: String { "stuck" }
            func append(_ records: [JournalRecord]) throws { _ = gate.wait(timeout: .now() + 10) }
            func prune(before: Date, keep: Int) throws -> Int { 0 }
            func entries(mac: String?, since: Date?, limit: Int) throws -> [JournalEntry] { [] }
            func count() throws -> Int { 0 }
            func close() { gate.signal() }
        }
        let stuck = Stuck()
        let journal = DecisionJournal(store: stuck, settings: .init(flushEvery: 0.01, batchLimit: 4, queueLimit: 10),
                                      logger: Logger(label: "test"))
        journal.start()
        let (r, bytes) = Self.request(1)
        var refused = 0
        let started = Date()
        for _ in 0..<1000 where !journal.record(r, datagram: bytes, decision: nil, steps: [], version: "v") { refused += 1 }
        #expect(Date().timeIntervalSince(started) < 1, "record waited")
        #expect(refused > 900, "\(refused) of 1000 dropped")
        stuck.gate.signal()
        journal.close()
    }

    /// A shadow's store reads the live one until it writes its own; its writes and clears
    /// never reach the live store.
    @Test func anOverlayKeepsItsWritesApart() throws {
        let live = ClientStateStore()
        try live.set(mac: "52:54:00:00:00:01", ["installed": true])
        try live.set(mac: "52:54:00:00:00:02", ["installed": true])
        let shadow = ClientStateStore(overlaying: live)
        #expect(shadow.get(mac: "52:54:00:00:00:01") == ["installed": true])
        try shadow.set(mac: "52:54:00:00:00:01", ["installed": false])
        try shadow.clear(mac: "52:54:00:00:00:02")
        #expect(shadow.get(mac: "52:54:00:00:00:01") == ["installed": false])
        #expect(shadow.get(mac: "52:54:00:00:00:02") == nil)
        #expect(live.get(mac: "52:54:00:00:00:01") == ["installed": true])
        #expect(live.get(mac: "52:54:00:00:00:02") == ["installed": true])
        // A client the shadow never wrote follows the live store.
        try live.set(mac: "52:54:00:00:00:03", ["n": 1])
        #expect(shadow.get(mac: "52:54:00:00:00:03") == ["n": 1])
        let (before, _) = try shadow.update(mac: "52:54:00:00:00:03") { v in (v ?? [:]).merging(["m": 2]) { a, _ in a } }
        #expect(before?.values == ["n": 1])
        #expect(shadow.get(mac: "52:54:00:00:00:03") == ["n": 1, "m": 2])
        #expect(live.get(mac: "52:54:00:00:00:03") == ["n": 1])
        // Written again after a clear: its own value shows.
        try shadow.set(mac: "52:54:00:00:00:02", ["x": "y"])
        #expect(shadow.get(mac: "52:54:00:00:00:02") == ["x": "y"])
    }
}
