import Testing
@testable import Clients

@Suite struct DatagramCacheTests {
    static func mac(_ i: Int) -> String {
        (0..<6).map { String(format: "%02x", (0x0200_0000_0000 | i) >> (8 * (5 - $0)) & 0xFF) }.joined(separator: ":")
    }

    func store(_ cache: DatagramCache, _ mac: String, _ bytes: [UInt8], now: UInt64 = 1) {
        bytes.withUnsafeBytes { cache.set(mac, $0, now: now) }
    }

    @Test func givesBackTheLastDatagramUntilItsTimeToLive() {
        let cache = DatagramCache(capacity: 64, ttl: 10)
        store(cache, "52:54:00:12:34:56", [1, 2, 3], now: 1_000)
        store(cache, "52:54:00:12:34:56", [4, 5], now: 2_000)
        #expect(cache.get("52:54:00:12:34:56", now: 2_000 + 9_000_000_000) == [4, 5])
        #expect(cache.get("52:54:00:12:34:56", now: 2_000 + 10_000_000_000) == nil)
        #expect(cache.get("52:54:00:12:34:57", now: 2_000) == nil)
        // Either spelling of a MAC is the same client.
        #expect(cache.get("52:54:00:12:34:56".uppercased(), now: 2_000) == [4, 5])
        #expect(cache.count == 1)
    }

    @Test func keepsDatagramsOfEverySizeAndNonEthernetKeys() {
        let cache = DatagramCache(capacity: 64, ttl: 100)
        let long = (0..<1_400).map { UInt8(truncatingIfNeeded: $0) }
        let full = (0..<DatagramCache.slotBytes).map { UInt8(truncatingIfNeeded: $0 &* 3) }
        let infiniband = "80:00:02:08:fe:80:00:00:00:00:00:00:00:02:c9:03:00:a1:b2:c3"
        store(cache, "02:00:00:00:00:01", long)
        store(cache, "02:00:00:00:00:02", full)
        store(cache, infiniband, [9, 9])
        store(cache, "", [7])
        #expect(cache.get("02:00:00:00:00:01", now: 1) == long)
        #expect(cache.get("02:00:00:00:00:02", now: 1) == full)
        #expect(cache.get(infiniband, now: 1) == [9, 9])
        #expect(cache.get("", now: 1) == [7])
        // A long datagram replaced by a short one, and the other way round.
        store(cache, "02:00:00:00:00:01", [1])
        store(cache, "02:00:00:00:00:02", long)
        #expect(cache.get("02:00:00:00:00:01", now: 1) == [1])
        #expect(cache.get("02:00:00:00:00:02", now: 1) == long)
    }

    @Test func aFloodOfNewClientsPushesOutTheOldestNotTheRecent() {
        let cache = DatagramCache(capacity: 16_384, ttl: 3_600)
        #expect(cache.capacity == 16_384)
        // 100,000 clients, one datagram each, in order: what is left is (nearly) the newest.
        for i in 0..<100_000 { store(cache, Self.mac(i), [UInt8(truncatingIfNeeded: i)], now: UInt64(i + 1)) }
        #expect(cache.count == 16_384)
        let recent = (100_000 - 1_000)..<100_000
        #expect(recent.allSatisfy { cache.get(Self.mac($0), now: 100_001) == [UInt8(truncatingIfNeeded: $0)] },
                "the last 1,000 clients are all remembered")
        let old = (0..<50_000).filter { cache.get(Self.mac($0), now: 100_001) != nil }
        #expect(old.isEmpty, "nothing from the first half of the flood: \(old.prefix(5))")
        // Sets are used evenly: of the last 16,384 clients most are still there.
        let kept = (100_000 - 16_384)..<100_000
        #expect(kept.filter { cache.get(Self.mac($0), now: 100_001) != nil }.count > 12_000)
    }

    /// A site with a thousand machines costs the cache about two of its eight ways in memory:
    /// new clients take their set's first empty way, and the block keeps each way together.
    /// (Laid out set by set, the same clients touched pages all over the 9.4 MB block, ~4 MB.)
    @Test func aThousandClientsTouchLittleOfTheBlock() {
        let cache = DatagramCache(capacity: 16_384, ttl: 3_600)
        #expect(cache.residentBytes == 0, "nothing touched before the first client")
        let full = [UInt8](repeating: 0xAB, count: DatagramCache.slotBytes)
        for i in 0..<1_000 { store(cache, Self.mac(i), full + [], now: UInt64(i + 1)) }
        let way = 2_048 * DatagramCache.slotBytes  // one way of every set: 1.2 MB
        #expect(cache.residentBytes > way / 2, "the stores did land in the block: \(cache.residentBytes)")
        #expect(cache.residentBytes < 2 * way + 64 * 4_096, "resident: \(cache.residentBytes) bytes")
        #expect((0..<1_000).allSatisfy { cache.get(Self.mac($0), now: 1_001) == full })
    }

    @Test func storingAgainMakesAClientTheNewestOfItsSet() {
        let cache = DatagramCache(capacity: 8, ttl: 3_600)  // one set of 8 ways
        for i in 0..<8 { store(cache, Self.mac(i), [UInt8(i)], now: UInt64(i + 1)) }
        store(cache, Self.mac(0), [100], now: 9)
        store(cache, Self.mac(8), [8], now: 10)
        #expect(cache.get(Self.mac(0), now: 10) == [100])
        #expect(cache.get(Self.mac(1), now: 10) == nil)
        #expect(cache.get(Self.mac(8), now: 10) == [8])
    }
}
