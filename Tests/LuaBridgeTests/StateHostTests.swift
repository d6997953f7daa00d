import Clients
import Foundation
import Testing
@testable import LuaBridge
import Protocols

/// `state.set` from a policy: what it refuses, and that a refusal fails the hook with a message
/// that names the policy file and line.
@Suite struct StateHostTests {
    @Test func stateSetRefusesWhatTheStoreCannotHold() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("bp-state-\(UUID()).lua")
        try Data("""
            return { dhcp = function(req) state.set(req.mac, { nested = { 1 } }) end,
                     tftp = function(req) state.set("not-a-mac", {}) end,
                     http = function(req)
                       if req.path == "/big" then state.set(req.mac, { blob = string.rep("x", 5000) }) end
                       if req.path == "/inf" then state.set(req.mac, { n = math.huge }) end
                       if req.path == "/ok" then state.set(req.mac, { n = 1, s = "x", b = true, f = 0.5 }) end
                     end }
            """.utf8).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let store = ClientStateStore(limits: StateLimits(maxClientBytes: 4096))
        let c = try PolicyChain(specs: [PolicySpec(path: url.path)], limits: PolicyLimits(states: 1), logger: TestPolicies.logger,
                                stateStore: store)
        func failure(_ r: BootRequest) -> String? {
            if case .error(let m) = c.decideTraced(r).steps[0].outcome { return m }
            return nil
        }
        let mac = "52:54:00:12:34:56"
        let nested = try #require(failure(TestPolicies.dhcp()))
        #expect(nested.contains(":1: state.set: value of 'nested' must be a string, number or boolean, got table"), "\(nested)")
        let notMAC = try #require(failure(.init(kind: .tftp, mac: mac, path: "x")))
        #expect(notMAC.contains(":2: state.set: not a MAC address: not-a-mac"), "\(notMAC)")
        let big = try #require(failure(.init(kind: .http, mac: mac, path: "/big")))
        #expect(big.contains("state.set: the table is 5004 bytes, more than the 4096 a client may hold"), "\(big)")
        let inf = try #require(failure(.init(kind: .http, mac: mac, path: "/inf")))
        #expect(inf.contains("must be a finite number"), "\(inf)")
        #expect(store.get(mac: mac) == nil)
        #expect(failure(.init(kind: .http, mac: mac, path: "/ok")) == nil)
        #expect(store.get(mac: mac) == ["n": 1, "s": "x", "b": true, "f": 0.5])
    }
}
