import Foundation
import Testing
@testable import LuaBridge

@Suite struct PolicyStateStoreTests {
    @Test func normalizesEveryMacForm() {
        for m in ["52:54:00:AB:cd:ef", "52-54-00-ab-cd-ef", "525400abcdef", "5254.00ab.cdef"] {
            #expect(PolicyStateStore.normalize(mac: m) == "52:54:00:ab:cd:ef")
        }
        #expect(PolicyStateStore.normalize(mac: "52:54:00:ab:cd") == nil)
        #expect(PolicyStateStore.normalize(mac: "zz:54:00:ab:cd:ef") == nil)
    }

    @Test func expiresAndCaps() {
        final class Clock: @unchecked Sendable { var t = Date(timeIntervalSince1970: 0) }
        let clock = Clock()
        let s = PolicyStateStore(defaultTTL: 10, maxEntries: 2, now: { clock.t })
        s.set(mac: "52:54:00:00:00:01", ["a": 1])
        s.set(mac: "52-54-00-00-00-02", ["b": "x"], ttl: 100)
        #expect(s.get(mac: "525400000001") == ["a": 1])
        clock.t = Date(timeIntervalSince1970: 11)
        #expect(s.get(mac: "52:54:00:00:00:01") == nil)
        #expect(s.get(mac: "52:54:00:00:00:02") == ["b": "x"])
        s.set(mac: "52:54:00:00:00:03", ["c": true], ttl: 5)
        s.set(mac: "52:54:00:00:00:04", ["d": 1.5], ttl: 50)
        #expect(s.snapshot().count == 2)
        #expect(s.get(mac: "52:54:00:00:00:03") == nil)  // closest to expiry dropped
        s.clear(mac: "52:54:00:00:00:02")
        #expect(s.get(mac: "52:54:00:00:00:02") == nil)
    }

    @Test func stateSetRejectsNestedValues() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("bp-state-\(UUID()).lua")
        try Data("""
            return { dhcp = function(req) state.set(req.mac, { nested = { 1 } }) end,
                     tftp = function(req) state.set("not-a-mac", {}) end }
            """.utf8).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let c = try PolicyChain(specs: [PolicySpec(path: url.path)], limits: PolicyLimits(states: 1), logger: TestPolicies.logger)
        guard case .error(let m) = c.decideTraced(TestPolicies.dhcp()).steps[0].outcome else { Issue.record("no error"); return }
        #expect(m.contains(":1: state.set: value of 'nested' must be a string, number or boolean, got table"), "\(m)")
        let t = c.decideTraced(.init(kind: .tftp, mac: "52:54:00:12:34:56", path: "x"))
        guard case .error(let m2) = t.steps[0].outcome else { Issue.record("no error"); return }
        #expect(m2.contains(":2: state.set: not a MAC address: not-a-mac"), "\(m2)")
    }
}
