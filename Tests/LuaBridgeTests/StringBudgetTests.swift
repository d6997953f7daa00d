import CLuaShim
import Foundation
import Protocols
import Testing
@testable import LuaBridge

/// The string library's C work pays into the hook's budget (Sources/CLuaShim/strlib.c): its
/// own pattern matcher must behave exactly like Lua's, and the calls that used to run for
/// seconds inside one hook now end with the budget error within about the CPU budget.
@Suite struct StringBudgetTests {
    /// Random patterns (every feature, malformed ones too) and subjects through the stock
    /// find/match/gmatch/gsub and ours: results, captures, positions and errors must agree.
    /// BOOTPOLICY_PATTERN_SEED and BOOTPOLICY_PATTERN_CASES run other seeds or more cases.
    @Test func matcherAgreesWithStockLua() {
        let env = ProcessInfo.processInfo.environment
        let seeds: [UInt64] = env["BOOTPOLICY_PATTERN_SEED"].flatMap { UInt64($0) }.map { [$0] } ?? [1, 20240611]
        // Under ThreadSanitizer, fewer: each Lua error (malformed patterns, "pattern too
        // complex") unwinds the matcher by longjmp, and TSan's per-thread shadow call stack
        // appears not to get those frames back: it faults in its own __tsan_func_entry after
        // enough cases on one thread (300,000 always, 100,000 sometimes, 20,000 never), not
        // at any one case.
        // ASan and plain builds run all of them.
        let cases = env["BOOTPOLICY_PATTERN_CASES"].flatMap { Int($0) }
            ?? (env["BOOTPOLICY_SANITIZER"] == "thread" ? 20_000 : 100_000)
        for seed in seeds {
            var ran = 0
            var report = [CChar](repeating: 0, count: 4096)
            let t0 = DispatchTime.now().uptimeNanoseconds
            let failed = bp_pattern_diff(seed, cases, &ran, &report, report.count)
            let ms = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
            print("LuaBridge: pattern differential seed \(seed): \(ran) cases, \(failed) mismatches, \(Int(ms)) ms")
            #expect(failed == 0, "\(String(cString: report))")
            #expect(ran == cases)
        }
    }

    static let hostile = ["balance", "long_pattern", "long_plain", "backtrack", "lazy", "upper", "gsub",
                          "gmatch", "concat", "format", "rep", "pcall", "move", "sort", "insert", "unpack",
                          "utf8_len", "packsize", "tonumber", "concat_op"]

    /// Each attack under the default limits (20 ms CPU, 2,000,000 instructions): cut with the
    /// budget error in well under 3x the CPU budget, and the next policy still answers. Under
    /// a sanitizer (scripts/sanitize.sh sets BOOTPOLICY_SANITIZER) one large C operation takes
    /// several times longer (ASan checks every byte a memcpy moves), so the bound is 10x there.
    static let overshoot: Double = ProcessInfo.processInfo.environment["BOOTPOLICY_SANITIZER"] == nil ? 3 : 10
    @Test(arguments: hostile) func hostileCallEndsWithTheBudget(_ what: String) throws {
        let limits = PolicyLimits(states: 1)
        let chain = try PolicyChain(specs: [TestPolicies.spec("hostile.lua", ["what": .string(what)]), TestPolicies.spec("default.lua")],
                                    limits: limits, logger: TestPolicies.logger)
        for _ in 0..<2 {
            let c0 = PolicyChainTests.threadCPUms(), t0 = DispatchTime.now().uptimeNanoseconds
            let r = chain.decideTraced(TestPolicies.dhcp())
            let cpu = PolicyChainTests.threadCPUms() - c0
            let ms = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
            print(String(format: "LuaBridge: hostile %@ cut after %.1f ms CPU, %.1f ms wall (budget %.0f ms CPU)", what, cpu, ms, limits.cpuTime))
            #expect(cpu < Self.overshoot * limits.cpuTime, "\(what) used \(cpu) ms CPU")
            guard case .budgetExceeded(let msg) = r.steps.first?.outcome else {
                Issue.record("\(what): expected the budget error, got \(r.steps)"); continue
            }
            #expect(msg.hasPrefix("hostile.lua:"), "\(msg)")
            #expect(msg.contains("policy exceeded its budget"))
            #expect(r.decision?.filename == "undionly.kpxe")
        }
    }

    /// The charges count as instructions: with a small instruction budget and a generous
    /// clock, the instruction limit is what stops a match that executes almost no VM code.
    @Test func chargesCountAgainstTheInstructionLimit() throws {
        let chain = try PolicyChain(specs: [TestPolicies.spec("hostile.lua", ["what": "backtrack"])],
                                    limits: PolicyLimits(instructionBudget: 10_000, cpuTime: 10_000, wallClock: 10_000, states: 1),
                                    logger: TestPolicies.logger)
        let c0 = PolicyChainTests.threadCPUms()
        guard case .budgetExceeded = chain.decideTraced(TestPolicies.dhcp()).steps[0].outcome else {
            Issue.record("expected budget"); return
        }
        #expect(PolicyChainTests.threadCPUms() - c0 < 50)
    }

    /// A result the memory cap refuses fails at its first allocation: the memory error, not
    /// a budget charge for work that never happens.
    @Test func hugeRepStillHitsTheMemoryCap() throws {
        let chain = try PolicyChain(specs: [TestPolicies.spec("hostile.lua", ["what": "huge_rep"])],
                                    limits: PolicyLimits(states: 1), logger: TestPolicies.logger)
        let r = chain.decideTraced(TestPolicies.dhcp())
        guard case .memoryExceeded(let msg) = r.steps[0].outcome else { Issue.record("got \(r.steps)"); return }
        #expect(msg.contains("memory limit exceeded"))
    }
}
