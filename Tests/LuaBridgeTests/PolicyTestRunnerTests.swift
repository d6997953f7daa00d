import Foundation
import Protocols
import Testing
@testable import LuaBridge

@Suite struct PolicyTestRunnerTests {
    /// A stand-in for `Fixture.load(from:).bootRequest()`: a flat JSON object.
    static let loader: @Sendable (URL) throws -> BootRequest = { url in
        let obj = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        return BootRequest(kind: BootRequest.Kind(rawValue: obj["kind"] as! String)!, mac: obj["mac"] as! String,
                           arch: obj["arch"] as? String,
                           firmware: BootRequest.Firmware(rawValue: obj["firmware"] as? String ?? "unknown") ?? .unknown,
                           options: [60: Array("PXEClient".utf8)])
    }

    let runner = PolicyTestRunner(logger: TestPolicies.logger, loadFixture: loader)
    let dir = TestPolicies.dir.appendingPathComponent("tests")

    @Test func passingFile() {
        let r = runner.run(file: dir.appendingPathComponent("default_test.lua"))
        #expect(r.error == nil)
        #expect(r.tests.map(\.name) == ["plain PXE gets undionly.kpxe", "iPXE gets the script",
                                        "tftp is not decided by these policies", "state carries across hooks",
                                        "ipxe builder works in tests too"])
        for t in r.tests { #expect(t.passed, "\(t.name): \(t.message ?? "")") }
        #expect(PolicyTestRunner.summary([r]) == "5 passed, 0 failed")
    }

    @Test func failingFileReportsExpectedGotRequestAndLine() {
        let r = runner.run(file: dir.appendingPathComponent("failing_test.lua"))
        #expect(r.error == nil)
        let byName = Dictionary(uniqueKeysWithValues: r.tests.map { ($0.name, $0) })
        let wrong = byName["wrong filename"]?.message ?? ""
        #expect(wrong.hasPrefix("failing_test.lua:5: expected \"ipxe.efi\"\n    got      \"undionly.kpxe\""), "\(wrong)")
        #expect(wrong.contains("request: dhcp mac=52:54:00:12:34:56 arch=bios firmware=bios"), "\(wrong)")
        let silent = byName["expects silence"]?.message ?? ""
        #expect(silent.hasPrefix("failing_test.lua:9: expected no decision, got {filename=\"undionly.kpxe\", policy=\"default\"}"), "\(silent)")
        let err = byName["policy error surfaces"]?.message ?? ""
        #expect(err.contains("failing_test.lua:14: policy 'runtime_error' failed: runtime_error.lua:4: attempt to index a nil value"), "\(err)")
        let field = byName["bad request field"]?.message ?? ""
        #expect(field.contains("failing_test.lua:18: request: unknown field 'firmwear'"), "\(field)")
        #expect(byName["passes"]?.passed == true)
        #expect(PolicyTestRunner.summary([r]) == "1 passed, 4 failed")
    }

    @Test func brokenFileIsAnError() {
        let r = runner.run(file: dir.appendingPathComponent("broken_test.lua"))
        #expect(r.error?.hasPrefix("broken_test.lua:2:") == true, "\(r.error ?? "")")
        #expect(r.failed == 1)
    }

    @Test func findsTestFiles() {
        #expect(PolicyTestRunner.testFiles(in: dir).map(\.lastPathComponent) == ["broken_test.lua", "default_test.lua", "failing_test.lua", "grub_test.lua", "library_test.lua"])
    }

    /// A failing test shows what the chain's policies logged during it; a passing one does not
    /// carry them over into the next failure.
    @Test func aFailureShowsThePolicyLog() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("bp-tlog-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: tmp) }
        try "return { dhcp = function(req) log.warn('saw %s', req.mac) return { filename = 'x' } end }\n"
            .write(to: tmp.appendingPathComponent("p.lua"), atomically: true, encoding: .utf8)
        try """
            local c = policy_chain { { file = "p.lua" } }
            test("passes", function() eq(c:dhcp(request { mac = "52:54:00:00:00:01" }).filename, "x") end)
            test("fails", function() eq(c:dhcp(request { mac = "52:54:00:00:00:02" }).filename, "y") end)
            """.write(to: tmp.appendingPathComponent("p_test.lua"), atomically: true, encoding: .utf8)
        let runner = PolicyTestRunner(logger: TestPolicies.logger, loadFixture: Self.loader)
        let r = runner.run(file: tmp.appendingPathComponent("p_test.lua"))
        #expect(r.tests.map(\.passed) == [true, false], "\(r)")
        let message = r.tests.last?.message ?? ""
        #expect(message.contains("policy log:\n      warning p: saw 52:54:00:00:00:02 (p.lua:1)"), "\(message)")
        #expect(!message.contains("52:54:00:00:00:01"), "\(message)")
    }
}
