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
            guard fixture.kind == .dhcp, fixture.family != .ipv6 else { continue }  // the DHCPv4 figures stay comparable
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

    /// What a lookup in a large inventory costs a decision: the same hook with and without
    /// `data.m[req.mac]` over 100,000 keyed rows (6 fields each), on requests whose MACs are
    /// all in it. Prints `bench lua data rows=... with_us=... without_us=... lookup_us=...`.
    @Test func lookupInAHundredThousandRows() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-bench-data-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let rows = 100_000
        var csv = "mac,name,rack,profile,kernel,cmdline\n"
        func mac(_ i: Int) -> String { String(format: "52:54:%02x:%02x:%02x:%02x", (i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255) }
        for i in 0..<rows { csv += "\(mac(i)),node-\(i),r\(i / 40),worker,/debian/vmlinuz,auto=true url=/preseed/\(i % 7).cfg\n" }
        let csvPath = dir.appendingPathComponent("m.csv").path
        try csv.write(toFile: csvPath, atomically: true, encoding: .utf8)
        let with = dir.appendingPathComponent("with.lua").path
        try "return { dhcp = function(req) local m = data.m[req.mac] return { filename = m and m.name or 'none' } end }\n"
            .write(toFile: with, atomically: true, encoding: .utf8)
        let without = dir.appendingPathComponent("without.lua").path
        try "return { dhcp = function(req) local m = nil return { filename = m and m.name or 'none' } end }\n"
            .write(toFile: without, atomically: true, encoding: .utf8)
        let data = try PolicyData.load([DataSource(name: "m", path: csvPath, key: "mac", keyFormat: .mac)])
        let base = try Self.requests()[0]
        var requests: [BootRequest] = []
        for k in 0..<1000 {
            var r = base
            r.mac = mac(ProcessInfo.processInfo.environment["BOOTPOLICY_BENCH_HOT"] == "1" ? (k % 8) : (k * 7919) % rows)
            requests.append(r)
        }
        func measure(_ path: String) throws -> Double {
            let chain = try PolicyChain(specs: [PolicySpec(path: path)], limits: PolicyLimits(states: 1), logger: TestPolicies.logger, data: data)
            #expect(chain.decide(requests[3])?.filename?.hasPrefix(path == with ? "node-" : "none") == true)
            var per: [Double] = []
            var i = 0
            for round in 0..<250 {
                let t0 = DispatchTime.now().uptimeNanoseconds
                for _ in 0..<200 { _ = chain.decide(requests[i]); i = (i + 1) % requests.count }
                if round >= 50 { per.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 200 / 1000) }
            }
            per.sort()
            return per[per.count / 2]
        }
        var withs: [Double] = [], withouts: [Double] = []
        for _ in 0..<5 { withs.append(try measure(with)); withouts.append(try measure(without)) }
        withs.sort(); withouts.sort()
        print(String(format: "bench lua data rows=%d with_us=%.3f without_us=%.3f lookup_us=%.3f", rows, withs[2], withouts[2], withs[2] - withouts[2]))
    }
}
