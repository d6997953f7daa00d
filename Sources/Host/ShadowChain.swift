import CLinux
import Clients
import Foundation
import Logging
import LuaBridge
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import Protocols
import Synchronization

/// A candidate chain (`shadow:`) that sees every request the live chain decides, and never
/// answers. The live pipeline hands each decision over as it is made (a lock and an append);
/// one thread of the lowest scheduling class (SCHED_IDLE: it runs only when nothing else
/// wants the CPU) asks the shadow the same question and records where the answers differ.
///
/// - Never delays a live answer: the hand-over does not wait, and under load the queue fills
///   and requests are shed (counted) instead of queued without bound.
/// - Its state writes stay apart: its store overlays the live one (it reads a client's live
///   state until it writes its own) and is memory only; its scripts are its own.
/// - Its budgets are its own (`shadow_limits`), with one Lua state.
final class ShadowChain: DecisionObserver, @unchecked Sendable {
    struct Difference: Codable, Equatable {
        var field: String
        var kind: String
        var live: String
        var shadow: String
        var count: Int
        var firstSeen: Date
        var lastSeen: Date
        enum CodingKeys: String, CodingKey {
            case field, kind, live, shadow, count, firstSeen = "first_seen", lastSeen = "last_seen"
        }
    }

    struct Job {
        var request: ObservedRequest
        var live: BootDecision?
    }

    fileprivate struct Running {
        var engine: PolicyEngine
        var pipeline: BootPipeline
        /// The share of one core the shadow may use (`shadow_limits.cpu_percent` / 100).
        var cpuShare: Double
    }

    static let queueLimit = 1024
    /// How often the worker looks for queued requests.
    static let pollEvery: TimeInterval = 0.005
    /// The CPU cap is kept over windows this long (nanoseconds).
    static let window: UInt64 = 100_000_000
    /// Clients whose differences are kept (the newest seen).
    static let clientLimit = 10_000

    private let logger: Logger
    private let store: ClientStateStore
    private let directory: ClientDirectory
    private let running = NIOLockedValueBox<Running?>(nil)
    /// A chain is installed (checked without a lock on every live decision).
    private let active = Atomic<Bool>(false)
    private let cond = NSCondition()
    private var queue: [Job] = []
    private var stopping = false
    private let ledgerLock = NIOLock()
    private var ledger: [String: [String: Difference]] = [:]
    private var comparedCount = 0
    private var shedCount = 0
    private let compared = Counter(label: "bootpolicy_shadow_compared_total")
    private let shed = Counter(label: "bootpolicy_shadow_shed_total")
    private var diffCounters: [String: Counter] = [:]
    private let done = DispatchSemaphore(value: 0)
    private var started = false

    init(live: ClientStateStore, logger: Logger) {
        self.logger = logger
        store = ClientStateStore(overlaying: live)
        directory = ClientDirectory(state: store, logger: logger)
        for field in DecisionComparison.fields {
            diffCounters[field] = Counter(label: "bootpolicy_shadow_diffs_total", dimensions: [("field", field)])
        }
    }

    /// The chain's policy names and version, or nil when no shadow runs.
    var chain: (names: [String], version: String)? {
        running.withLockedValue { $0.map { ($0.engine.chain.policies.map(\.name), $0.engine.chain.version) } }
    }

    /// A loaded candidate, not yet running (`install`); nil specs mean "no shadow".
    struct Prepared {
        fileprivate var running: Running?
    }

    /// Loads `specs` as a shadow chain, without starting it. Throws when a policy does not
    /// load. Each shadow policy is named `shadow/<name>` in logs and metrics.
    func prepare(specs: [PolicySpec], limits: PolicyLimits, cpuPercent: Double = 2, scriptTokens: ScriptTokens,
                 data: PolicyData, server: ServerFacts) throws(PolicyLoadError) -> Prepared {
        guard !specs.isEmpty else { return Prepared(running: nil) }
        let named = specs.map { spec -> PolicySpec in
            var s = spec
            let base = s.name.isEmpty ? URL(fileURLWithPath: s.path).deletingPathExtension().lastPathComponent : s.name
            s.name = base.hasPrefix("shadow/") ? base : "shadow/" + base
            return s
        }
        let engine = try PolicyEngine(specs: named, limits: limits, logger: logger, stateStore: store,
                                      scriptTokens: scriptTokens, data: data, server: server)
        return Prepared(running: Running(engine: engine, pipeline: BootPipeline(chain: engine, directory: directory, logger: logger),
                                         cpuShare: cpuPercent / 100))
    }

    /// Runs `prepared` from now on (nil inside: stops comparing).
    func install(_ prepared: Prepared) {
        let was = running.withLockedValue { old -> Bool in
            defer { old = prepared.running }
            return old != nil
        }
        active.store(prepared.running != nil, ordering: .releasing)
        if let r = prepared.running {
            logger.notice("shadow chain loaded: it answers nothing and is compared with every live decision",
                          metadata: ["chain": "\(r.engine.chain.policies.map(\.name).joined(separator: " -> "))",
                                     "version": "\(r.engine.chain.version)"])
        } else if was {
            logger.notice("shadow chain stopped (no shadow: in the configuration)")
        }
    }

    func start() {
        let t = Thread { [self] in
            clinux_name_thread("bp-shadow")
            let refused = clinux_idle_priority()
            if refused != 0 { logger.warning("shadow chain: SCHED_IDLE refused (errno \(refused)); it runs at normal priority") }
            run()
        }
        started = true
        t.start()
    }

    func stop() {
        cond.lock()
        stopping = true
        cond.broadcast()
        cond.unlock()
        if started { _ = done.wait(timeout: .now() + 5) }
    }

    // MARK: DecisionObserver

    func decided(_ request: BootRequest, datagram: [UInt8]?, decision: BootDecision?, steps: [PolicyStep]) {
        guard active.load(ordering: .acquiring) else { return }
        cond.lock()
        // Nothing here allocates: the queue has its capacity (see `run`), and this runs on a
        // thread that answers while the shadow's runs at idle priority.
        guard queue.count < Self.queueLimit else {
            shedCount += 1
            cond.unlock()
            shed.increment()
            return
        }
        // No wake-up: the worker looks every `pollEvery`. A signal per request was a futex
        // call on the answering thread, and woke the idle thread onto a core each time.
        queue.append(Job(request: ObservedRequest(request, datagram: datagram), live: decision))
        cond.unlock()
    }

    /// Worker thread only: for each client, `shedCount` when its last DHCP request was
    /// compared. A file request is compared only when nothing was shed since: else the shadow
    /// may lack the script that client's shed DHCP request would have made.
    private var comparedDHCPAt: [String: Int] = [:]
    /// Worker thread only: the current CPU window's start (monotonic) and the thread CPU time
    /// spent in it.
    private var windowStart: UInt64 = 0
    private var windowCPU: UInt64 = 0

    private func run() {
        // Two queues that take turns, each with its capacity: the swap under the lock
        // allocates nothing, so a live thread never waits on this idle-priority one for long.
        var jobs: [Job] = []
        jobs.reserveCapacity(Self.queueLimit)
        cond.lock()
        queue.reserveCapacity(Self.queueLimit)
        cond.unlock()
        while true {
            jobs.removeAll(keepingCapacity: true)
            cond.lock()
            while queue.isEmpty && !stopping { _ = cond.wait(until: Date().addingTimeInterval(Self.pollEvery)) }
            if stopping { cond.unlock(); break }
            swap(&jobs, &queue)
            let shedSoFar = shedCount
            cond.unlock()
            for job in jobs { compare(job, shedSoFar: shedSoFar) }
        }
        done.signal()
    }

    /// Past its share of a core in this window: the rest of the window's requests are shed.
    /// Even at idle priority the shadow's work beside the answers cost them (p99 at 5,000/s
    /// 0.13 -> 0.24 ms with 15% of a core spent comparing); the cap bounds that cost.
    private func overBudget(_ share: Double) -> Bool {
        let now = clinux_monotonic_ns()
        if now &- windowStart >= Self.window {
            windowStart = now
            windowCPU = 0
        }
        return Double(windowCPU) >= share * Double(Self.window)
    }

    private func shedOne() {
        cond.lock()
        shedCount += 1
        cond.unlock()
        shed.increment()
    }

    private func compare(_ job: Job, shedSoFar: Int) {
        guard let shadow = running.withLockedValue({ $0 }) else { return }
        if overBudget(shadow.cpuShare) { return shedOne() }
        let cpu0 = clinux_thread_cpu_ns()
        defer { windowCPU &+= clinux_thread_cpu_ns() &- cpu0 }
        guard let r = job.request.rebuilt else { return }
        if r.kind == .dhcp {
            if comparedDHCPAt.count >= Self.clientLimit * 4 { comparedDHCPAt.removeAll(keepingCapacity: true) }
            comparedDHCPAt[r.mac] = shedSoFar
        } else if let at = comparedDHCPAt[r.mac], at != shedSoFar {
            return shedOne()
        }
        let decision: BootDecision?
        if r.kind == .dhcp, let bytes = job.request.datagram {
            decision = shadow.pipeline.decide(r, datagram: ByteBuffer(bytes: bytes))
        } else {
            decision = shadow.pipeline.decide(r)
        }
        compared.increment()
        let differences = DecisionComparison.differences(kind: r.kind, job.live, decision)
        ledgerLock.withLock { comparedCount += 1 }
        guard !differences.isEmpty else { return }
        let now = Date()
        var fresh: [DecisionDifference] = []
        ledgerLock.withLock {
            if ledger[r.mac] == nil && ledger.count >= Self.clientLimit { evictOldest() }
            var entry = ledger[r.mac] ?? [:]
            for d in differences {
                if var seen = entry[d.field] {
                    seen.count += 1
                    seen.lastSeen = now
                    seen.live = d.from
                    seen.shadow = d.to
                    seen.kind = r.kind.rawValue
                    entry[d.field] = seen
                } else {
                    entry[d.field] = Difference(field: d.field, kind: r.kind.rawValue, live: d.from, shadow: d.to,
                                                count: 1, firstSeen: now, lastSeen: now)
                    fresh.append(d)
                }
            }
            ledger[r.mac] = entry
        }
        for d in differences { diffCounters[d.field]?.increment() }
        for d in fresh {
            logger.notice("shadow chain differs", metadata: [
                "mac": "\(r.mac)", "kind": "\(r.kind.rawValue)", "field": "\(d.field)", "live": "\(d.from)", "shadow": "\(d.to)",
            ])
        }
    }

    /// Forgets the eighth of clients seen longest ago. Called with the ledger lock.
    private func evictOldest() {
        let byAge = ledger.map { ($0.key, $0.value.values.map(\.lastSeen).max() ?? .distantPast) }.sorted { $0.1 < $1.1 }
        for (mac, _) in byAge.prefix(max(1, Self.clientLimit / 8)) { ledger[mac] = nil }
    }

    // MARK: reading

    struct Report: Codable {
        struct Client: Codable {
            var mac: String
            var differences: [Difference]
        }
        var chain: [String]
        var version: String?
        var compared: Int
        var shed: Int
        var clients: [Client]
    }

    func report(mac: String? = nil) -> Report {
        let chain = self.chain
        let shedNow: Int = { cond.lock(); defer { cond.unlock() }; return shedCount }()
        return ledgerLock.withLock {
            let macs = mac.map { [$0] } ?? ledger.keys.sorted()
            let clients = macs.compactMap { m -> Report.Client? in
                guard let entry = ledger[m] else { return nil }
                return Report.Client(mac: m, differences: DecisionComparison.fields.compactMap { entry[$0] })
            }
            return Report(chain: chain?.names ?? [], version: chain?.version, compared: comparedCount, shed: shedNow,
                          clients: clients)
        }
    }

    /// The fields a client's answers differ in (the status page).
    func fields(mac: String) -> [String] {
        ledgerLock.withLock { ledger[mac].map { e in DecisionComparison.fields.filter { e[$0] != nil } } ?? [] }
    }
}
