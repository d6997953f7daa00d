import Foundation
import Protocols
import Testing
@testable import LuaBridge

/// Decision cost of the shipped policies on recorded firmware requests, for BENCHMARKS.md.
/// Enabled only with BOOTPOLICY_BENCH=1 and meant for a release build:
///
///     BOOTPOLICY_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter LuaDecisionBench
///
/// Prints one `bench lua <policy> median_us=... p99_us=...` line per policy (bench/run.sh parses
/// them). A decision is `PolicyChain.decide`: request table built, hook called, decision decoded.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["BOOTPOLICY_BENCH"] == "1", "a benchmark: BOOTPOLICY_BENCH=1 runs it (scripts/deps.sh bench)"))
struct LuaDecisionBenchTests {
    static let repo = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Every DHCP fixture in fixtures/requests, as the server would hand it to the chain.
    static func requests() throws -> [BootRequest] {
        let dir = repo.appendingPathComponent("fixtures/requests")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".json") }.sorted()
        var out: [BootRequest] = []
        for f in files {
            let fixture = try Fixture.load(from: dir.appendingPathComponent(f))
            guard fixture.kind == .dhcp else { continue }
            var r = try fixture.bootRequest()
            r.serverAddress = r.serverAddress ?? "192.168.78.1"
            out.append(r)
        }
        return out
    }

    /// Median and p99 in µs of `rounds` timed batches of `batch` decisions each, cycling
    /// through the requests; the first 50 rounds warm up and are dropped.
    static func measure(_ spec: PolicySpec, requests: [BootRequest], rounds: Int = 200, batch: Int = 200) throws -> (median: Double, p99: Double, decided: Int) {
        let chain = try PolicyChain(specs: [spec], limits: PolicyLimits(states: 1), logger: TestPolicies.logger)
        var decided = 0
        for r in requests where chain.decide(r) != nil { decided += 1 }
        var perDecision: [Double] = []
        var i = 0
        for round in 0..<(rounds + 50) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<batch {
                _ = chain.decide(requests[i])
                i = (i + 1) % requests.count
            }
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / Double(batch) / 1000
            if round >= 50 { perDecision.append(dt) }
        }
        perDecision.sort()
        return (perDecision[perDecision.count / 2], perDecision[Int(Double(perDecision.count) * 0.99)], decided)
    }

    @Test func shippedPoliciesOnRecordedRequests() throws {
        let requests = try Self.requests()
        #expect(requests.count >= 5)
        let specs: [(String, PolicySpec)] = [
            ("default", PolicySpec(path: Self.repo.appendingPathComponent("policies/default.lua").path)),
            ("arch-aware", PolicySpec(path: Self.repo.appendingPathComponent("policies/arch-aware.lua").path)),
            ("inventory", PolicySpec(path: Self.repo.appendingPathComponent("examples/inventory.lua").path)),
        ]
        for (name, spec) in specs {
            let m = try Self.measure(spec, requests: requests)
            // Every policy must really decide on these requests, or we would time a no-op.
            #expect(m.decided > 0, "\(name) decided nothing")
            print(String(format: "bench lua %@ median_us=%.3f p99_us=%.3f requests=%d decided=%d",
                         name, m.median, m.p99, requests.count, m.decided))
        }
    }
}
