import Foundation
import Testing
@testable import Clients

/// What the state store costs, for docs/state.md and BENCHMARKS.md. Enabled only with
/// BOOTPOLICY_BENCH=1, meant for a release build:
///
///     BOOTPOLICY_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter StateStoreBench
///
/// Prints `bench state ...` lines: memory per client at 100,000 clients, the cost of a set in
/// memory, and the time to load a 100,000-client file at start.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["BOOTPOLICY_BENCH"] == "1", "a benchmark: BOOTPOLICY_BENCH=1 runs it (scripts/deps.sh bench)"), .serialized)
struct StateStoreBenchTests {
    static func rssKB() -> Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    }

    static func mac(_ i: Int) -> String {
        String(format: "02:%02x:%02x:%02x:%02x:%02x", (i >> 32) & 255, (i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255)
    }

    /// A typical netboot-once table: three small values.
    static let table: [String: StateValue] = ["installed": true, "at": "2026-12-02T20:00:00Z", "xid": 123_456]

    @Test func memoryAndSetCostAt100kClients() throws {
        let store = ClientStateStore(limits: StateLimits(maxClients: 100_000))
        let macs = (0..<100_000).map(Self.mac)  // formatted outside the timed calls
        let before = Self.rssKB()
        var times: [Double] = []
        times.reserveCapacity(100_000)
        for i in 0..<100_000 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try store.set(mac: macs[i], Self.table)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1000)
        }
        let after = Self.rssKB()
        times.sort()
        print("bench state memory clients=100000 rss_delta_mb=\(String(format: "%.1f", Double(after - before) / 1024)) bytes_per_client=\((after - before) * 1024 / 100_000)")
        print("bench state set_memory median_us=\(String(format: "%.2f", times[times.count / 2])) p99_us=\(String(format: "%.2f", times[times.count * 99 / 100]))")
        // The same set again, on a full store (overwrites: the heap is compacted as it goes).
        var again: [Double] = []
        for i in 0..<100_000 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try store.set(mac: macs[i], Self.table)
            again.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1000)
        }
        again.sort()
        print("bench state set_full_store median_us=\(String(format: "%.2f", again[again.count / 2])) p99_us=\(String(format: "%.2f", again[again.count * 99 / 100]))")
    }

    @Test func loadingA100kClientFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-state-bench-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("state.db").path
        let d = try ClientDirectory.open(backend: SQLiteStateBackend(path: path, sync: .normal), logger: .init(label: "bench"))
        let t0 = Date()
        for i in 0..<100_000 { try d.state.set(mac: Self.mac(i), Self.table, ttl: 86_400) }
        #expect(d.state.waitDurable(through: d.state.mark, timeout: 60))
        let written = Date().timeIntervalSince(t0)
        d.close()
        let t1 = Date()
        let reopened = try ClientDirectory.open(backend: SQLiteStateBackend(path: path), logger: .init(label: "bench"))
        let loaded = Date().timeIntervalSince(t1)
        #expect(reopened.state.count == 100_000)
        reopened.close()
        let size = ((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0) ?? 0
        print("bench state file clients=100000 write_s=\(String(format: "%.2f", written)) load_s=\(String(format: "%.2f", loaded)) file_mb=\(String(format: "%.1f", Double(size) / 1e6))")
    }
}
