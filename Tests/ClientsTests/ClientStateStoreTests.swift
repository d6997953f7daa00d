import Foundation
import Testing
@testable import Clients
import Protocols

@Suite struct ClientStateStoreTests {
    @Test func normalizesEveryMacForm() {
        for m in ["52:54:00:AB:cd:ef", "52-54-00-ab-cd-ef", "525400abcdef", "5254.00ab.cdef"] {
            #expect(MACAddress.normalize(m) == "52:54:00:ab:cd:ef")
        }
        for bad in ["52:54:00:ab:cd", "zz:54:00:ab:cd:ef", "52:54:00:ab:cd:ef:01", ""] {
            #expect(MACAddress.normalize(bad) == nil, "\(bad)")
        }
    }

    @Test func expiresAndIsReadUnderAnySpelling() throws {
        let clock = TestClock()
        let s = ClientStateStore(limits: StateLimits(defaultTTL: 10), now: { clock.t })
        try s.set(mac: "52:54:00:00:00:01", ["a": 1])
        try s.set(mac: "52-54-00-00-00-02", ["b": "x"], ttl: 100)
        #expect(s.get(mac: "525400000001") == ["a": 1])
        clock.t += 11
        #expect(s.get(mac: "52:54:00:00:00:01") == nil)
        #expect(s.get(mac: "52:54:00:00:00:02") == ["b": "x"])
        try s.clear(mac: "52:54:00:00:00:02")
        #expect(s.get(mac: "52:54:00:00:00:02") == nil)
        #expect(throws: StateError.self) { try s.set(mac: "not-a-mac", [:]) }
        #expect(throws: StateError.self) { try s.set(mac: "52:54:00:00:00:03", [:], ttl: 0) }
    }

    /// A full store refuses new clients rather than pushing out one whose state matters (an
    /// "installed" mark lost means a disk wiped); room made by expiry is used first.
    @Test func aFullStoreRefusesNewClientsAndKeepsTheOldOnes() throws {
        let clock = TestClock()
        let s = ClientStateStore(limits: StateLimits(defaultTTL: 1000, maxClients: 3), now: { clock.t })
        try s.set(mac: "52:54:00:00:00:01", ["n": 1], ttl: 5)
        try s.set(mac: "52:54:00:00:00:02", ["n": 2])
        try s.set(mac: "52:54:00:00:00:03", ["n": 3])
        #expect(throws: StateError.self) { try s.set(mac: "52:54:00:00:00:04", ["n": 4]) }
        // A client already held may always be written again.
        try s.set(mac: "52:54:00:00:00:02", ["n": 22])
        clock.t += 6  // client 1 expires: its room goes to the next new client
        try s.set(mac: "52:54:00:00:00:04", ["n": 4])
        #expect(s.snapshot().keys.sorted() == ["52:54:00:00:00:02", "52:54:00:00:00:03", "52:54:00:00:00:04"])
        do {
            try s.set(mac: "52:54:00:00:00:05", [:])
            Issue.record("a fifth client was accepted")
        } catch {
            #expect(error.description.contains("state.max_clients"), "\(error)")
        }
    }

    @Test func boundsOneClientsTable() throws {
        let s = ClientStateStore(limits: StateLimits(maxClientBytes: 100, maxKeys: 4))
        let mac = "52:54:00:00:00:01"
        do {
            try s.set(mac: mac, ["big": .string(String(repeating: "x", count: 200))])
            Issue.record("200 bytes accepted")
        } catch {
            #expect(error.description.contains("more than the 100 a client may hold"), "\(error)")
        }
        #expect(throws: StateError.self) { try s.set(mac: mac, ["a": 1, "b": 2, "c": 3, "d": 4, "e": 5]) }
        #expect(throws: StateError.self) { try s.set(mac: mac, ["x": .number(.infinity)]) }
        #expect(throws: StateError.self) { try s.set(mac: mac, ["x": .number(.nan)]) }
        #expect(s.get(mac: mac) == nil, "a refused set changes nothing")
        try s.set(mac: mac, ["a": 1, "b": "two", "c": true, "d": 4.5])
        #expect(s.get(mac: mac)?.count == 4)
    }

    /// 100,000 distinct MACs, a spoofed-chaddr flood's worth: the store holds its bound and
    /// refuses the rest; rewriting one client keeps the expiry heap bounded too.
    @Test func aFloodOfMACsStaysWithinTheBound() throws {
        let s = ClientStateStore(limits: StateLimits(maxClients: 50_000))
        var refused = 0
        for i in 0..<100_000 {
            let mac = String(format: "02:00:%02x:%02x:%02x:%02x", (i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255)
            do { try s.set(mac: mac, ["seen": .integer(i)]) } catch { refused += 1 }
        }
        #expect(s.count == 50_000)
        #expect(refused == 50_000)
        for i in 0..<10_000 { try s.set(mac: "02:00:00:00:00:01", ["n": .integer(i)]) }
        #expect(s.get(mac: "02:00:00:00:00:01") == ["n": 9_999])
    }

    @Test func theExpiryHeapPopsSoonestFirst() {
        var heap = ExpiryHeap()
        let times = (0..<200).map { _ in Double.random(in: 0..<1000) }
        for (i, t) in times.enumerated() { heap.push(mac: "m\(i)", expires: Date(timeIntervalSince1970: t)) }
        var popped: [Double] = []
        while let top = heap.top { popped.append(top.expires.timeIntervalSince1970); heap.pop() }
        #expect(popped.count == times.count)
        #expect(popped == popped.sorted())
    }
}
