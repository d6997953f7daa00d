import Foundation
import Protocols
import Clients
import Testing
@testable import LuaBridge

@Suite struct PolicyEngineTests {
    @Test func reloadSwapsOnlyWhenEveryPolicyLoads() throws {
        let engine = try PolicyEngine(specs: [TestPolicies.spec("default.lua")], limits: PolicyLimits(states: 2),
                                      logger: TestPolicies.logger)
        #expect(engine.decide(TestPolicies.dhcp())?.filename == "undionly.kpxe")

        // Success: the new chain answers.
        let ok = engine.reload(specs: [TestPolicies.spec("only_uefi.lua"), TestPolicies.spec("default.lua", ["loader": "new.kpxe"])])
        guard case .success = ok else { Issue.record("reload failed: \(ok)"); return }
        #expect(engine.decide(TestPolicies.dhcp())?.filename == "new.kpxe")
        #expect(engine.chain.policies.map(\.name) == ["only_uefi", "default"])

        // Failure: a syntax error in the second file keeps the running chain.
        let bad = engine.reload(specs: [TestPolicies.spec("default.lua"), TestPolicies.spec("syntax_error.lua")])
        guard case .failure(let e) = bad else { Issue.record("reload should fail"); return }
        #expect(e.description.hasPrefix("syntax_error.lua:4:"))
        #expect(engine.decide(TestPolicies.dhcp())?.filename == "new.kpxe")
        #expect(engine.chain.policies.map(\.name) == ["only_uefi", "default"])
    }

    @Test func reloadKeepsPerClientState() throws {
        let store = ClientStateStore()
        let engine = try PolicyEngine(specs: [TestPolicies.spec("once.lua")], logger: TestPolicies.logger, stateStore: store)
        _ = engine.decide(BootRequest(kind: .http, mac: "52:54:00:00:00:09", path: "/done"))
        _ = engine.reload(specs: [TestPolicies.spec("once.lua")])
        #expect(engine.decide(TestPolicies.dhcp(mac: "52:54:00:00:00:09"))?.ignore == true)
    }

    @Test func decisionsDuringReloadStayConsistent() throws {
        let engine = try PolicyEngine(specs: [TestPolicies.spec("default.lua")], limits: PolicyLimits(states: 2),
                                      logger: TestPolicies.logger)
        final class Box: @unchecked Sendable { var bad = 0; let lock = NSLock() }
        let box = Box()
        DispatchQueue.concurrentPerform(iterations: 4) { t in
            if t == 0 {
                for i in 0..<10 {
                    _ = engine.reload(specs: [TestPolicies.spec("default.lua", ["loader": .string(i % 2 == 0 ? "a.kpxe" : "b.kpxe")])])
                }
                return
            }
            for _ in 0..<500 {
                let f = engine.decide(TestPolicies.dhcp())?.filename
                if !["undionly.kpxe", "a.kpxe", "b.kpxe"].contains(f) { box.lock.lock(); box.bad += 1; box.lock.unlock() }
            }
        }
        #expect(box.bad == 0)
    }
}
