import Foundation
import Testing
@testable import Host

@Suite struct ClientCacheTests {
    @Test func keepsValuesUntilTheirTimeToLive() {
        var cache = ClientCache<Int>(capacity: 8, ttl: 10)
        let t0 = Date()
        cache.set("a", 1, now: t0)
        #expect(cache.get("a", now: t0.addingTimeInterval(9)) == 1)
        #expect(cache.get("a", now: t0.addingTimeInterval(11)) == nil)
        #expect(cache.get("b", now: t0) == nil)
    }

    @Test func overCapacityDropsTheOldestQuarter() {
        var cache = ClientCache<Int>(capacity: 8, ttl: 1000)
        let t0 = Date()
        for i in 0..<9 { cache.set("m\(i)", i, now: t0.addingTimeInterval(Double(i))) }
        #expect(cache.count == 7)
        #expect(cache.get("m0", now: t0) == nil)
        #expect(cache.get("m1", now: t0) == nil)
        #expect(cache.get("m2", now: t0) == 2)
        #expect(cache.get("m8", now: t0) == 8)
    }
}
