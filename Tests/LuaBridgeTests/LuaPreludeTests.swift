import Foundation
import Testing
@testable import LuaBridge

/// The Lua-side library (mac, ipxe, test API) runs its own assertions in library_test.lua.
@Suite struct LuaPreludeTests {
    @Test func libraryTestsPass() {
        let runner = PolicyTestRunner(logger: TestPolicies.logger, loadFixture: PolicyTestRunnerTests.loader)
        let r = runner.run(file: TestPolicies.dir.appendingPathComponent("tests/library_test.lua"))
        #expect(r.error == nil, "\(r.error ?? "")")
        #expect(r.tests.count == 5)
        for t in r.tests { #expect(t.passed, "\(t.name): \(t.message ?? "")") }
    }
}
