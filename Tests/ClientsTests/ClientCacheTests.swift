import Foundation
import Testing
@testable import Clients

@Suite struct ClientCacheTests {
    @Test func keepsValuesUntilTheirTimeToLive() {
        var cache = ClientCache<Int>(capacity: 8, ttl: 10)
        let t0 = Date()
        cache.set("a", 1, now: t0)
        #expect(cache.get("a", now: t0.addingTimeInterval(9)) == 1)
        #expect(cache.get("a", now: t0.addingTimeInterval(11)) == nil)
        #expect(cache.get("b", now: t0) == nil)
    }

    @Test func holdsExactlyTheNewestUpToTheCapacity() {
        var cache = ClientCache<Int>(capacity: 8, ttl: 1000)
        let t0 = Date()
        for i in 0..<100 {
            cache.set("m\(i)", i, now: t0)
            #expect(cache.count == min(i + 1, 8))
        }
        for i in 92..<100 { #expect(cache.get("m\(i)", now: t0) == i) }
        #expect(cache.get("m91", now: t0) == nil)
        #expect(cache.get("m0", now: t0) == nil)
    }

    @Test func storingAgainMakesAnEntryTheNewest() {
        var cache = ClientCache<Int>(capacity: 4, ttl: 1000)
        for key in ["a", "b", "c", "d"] { cache.set(key, 1) }
        cache.set("a", 3)  // a is the newest now, b the oldest
        cache.set("e", 5)
        #expect(cache.get("a") == 3)
        #expect(cache.get("b") == nil)
        #expect(cache.get("c") == 1)
        #expect(cache.count == 4)
    }
}

/// The structure under both: eviction order through many rewrites, and what it hands back.
@Suite struct RecentMapTests {
    @Test func evictsTheLeastRecentlyWrittenAndReturnsIt() {
        var map = RecentMap<String, Int>(capacity: 3)
        #expect(map.set("a", 1) == nil)
        map.set("b", 2)
        map.set("c", 3)
        // Far more rewrites than 4 x capacity: `order` is compacted several times meanwhile.
        for i in 0..<100 { map.set(i % 2 == 0 ? "a" : "c", i) }
        let evicted = map.set("d", 4)
        #expect(evicted?.key == "b")
        #expect(evicted?.value == 2)
        #expect(map.set("e", 5)?.key == "a")  // a was written at 98, c at 99
        #expect(map["c"] == 99)
        #expect(map.count == 3)
    }

    @Test func updateChangesInPlaceAndCreatesOnce() {
        var map = RecentMap<String, [Int]>(capacity: 2)
        var made = 0
        func make() -> [Int] { made += 1; return [] }
        map.update("a", default: make()) { $0.append(1) }
        map.update("a", default: make()) { $0.append(2) }
        #expect(map["a"] == [1, 2])
        #expect(made == 1)
    }
}

@Suite struct ClientKeyTests {
    @Test func packsAnEthernetMACInEitherCaseAndKeepsAnythingElseAsText() {
        #expect(ClientKey("52:54:00:12:34:5f").packed == 0x5254_0012_345F)
        #expect(ClientKey("52:54:00:12:34:5F") == ClientKey("52:54:00:12:34:5f"))
        #expect(ClientKey("52:54:00:12:34:5f").text == nil)
        #expect(ClientKey("00:00:00:00:00:00") != ClientKey(""))
        for odd in ["", "52-54-00-12-34-5f", "52:54:00:12:34:5g", "52:54:00:12:34:5f:01", "52:54:00:12:34:5"] {
            #expect(ClientKey(odd).text == odd, "\(odd)")
        }
        // A long (InfiniBand-sized) address is its own key, not folded into a packed one.
        let long = Array(repeating: "ab", count: 20).joined(separator: ":")
        #expect(ClientKey(long) != ClientKey("ab:ab:ab:ab:ab:ab"))
        #expect(ClientKey(long) == ClientKey(long))
    }
}
