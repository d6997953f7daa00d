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

    @Test func holdsAtLeastHalfAndAtMostTheCapacityNewestFirst() {
        var cache = ClientCache<Int>(capacity: 8, ttl: 1000)
        let t0 = Date()
        for i in 0..<100 {
            cache.set("m\(i)", i, now: t0)
            #expect(cache.count <= 8)
        }
        #expect(cache.count >= 4)
        // The newest four are always there; the oldest ones are gone.
        for i in 96..<100 { #expect(cache.get("m\(i)", now: t0) == i) }
        #expect(cache.get("m0", now: t0) == nil)
        #expect(cache.get("m90", now: t0) == nil)
    }

    @Test func aNewerValueWinsOverTheOldGeneration() {
        var cache = ClientCache<Int>(capacity: 4, ttl: 1000)
        cache.set("a", 1)
        cache.set("b", 2)  // young is full: a, b become the old generation
        cache.set("a", 3)
        #expect(cache.get("a") == 3)
        #expect(cache.get("b") == 2)
        #expect(cache.count == 2)
    }
}
