import CLuaShim
import Clients
import Foundation
import Logging
import Metrics
import Protocols

/// The configured policies in order, loaded into a small pool of sandboxed Lua states.
/// A hook returning nil passes to the next policy; a table decides and ends the chain. A hook
/// that fails (error, budget, memory) is logged, counted and skipped.
///
/// Thread-safe: each decision takes a free state (try-lock, starting at a per-thread slot)
/// and holds it for the whole chain, so N states serve N threads in parallel.
public final class PolicyChain: TracingBootDecider, @unchecked Sendable {
    public struct Policy: Sendable, Equatable {
        public var name: String
        public var path: String
        /// Which hooks the policy defines (dhcp, tftp, http).
        public var hooks: [String]
    }

    public let policies: [Policy]
    public let limits: PolicyLimits
    let states: [LuaState]
    let logger: Logger
    private let metrics: PolicyMetrics
    private let noRef = bp_noref()
    /// Each policy's file name and text, to name the line of a bad decision field.
    private let sources: [(file: String, text: String)]
    private let seenLock = NSLock()
    private var seenErrors: Set<String> = []

    /// The data files every policy reads (`data.<name>`) and the server facts (`server`).
    public let data: PolicyData
    public let server: ServerFacts
    /// Bytes one state's copy of the data takes (each of `limits.states` holds one).
    public let dataBytesPerState: Int
    /// A content hash of what decides: every policy's name, file text and config, and every
    /// data file's bytes (12 hex digits). The decision journal records it, so a decision can be
    /// traced to the chain that made it; two servers with the same files have the same one.
    public let version: String

    public init(
        specs: [PolicySpec], limits: PolicyLimits = PolicyLimits(), logger: Logger,
        stateStore: ClientStateStore = ClientStateStore(), scriptTokens: ScriptTokens = .random(),
        data: PolicyData = .empty, server: ServerFacts = ServerFacts()
    ) throws(PolicyLoadError) {
        self.limits = limits
        self.data = data
        self.server = server
        self.logger = logger
        struct Source { var spec: PolicySpec; var file: String; var dir: String; var bytes: [UInt8] }
        var sources: [Source] = []
        for spec in specs {
            let url = URL(fileURLWithPath: spec.path)
            let file = url.lastPathComponent
            guard let data = FileManager.default.contents(atPath: url.path) else {
                throw PolicyLoadError(file: file, message: "cannot read policy file \(url.path)", path: url.path)
            }
            sources.append(Source(spec: spec, file: file, dir: url.deletingLastPathComponent().path, bytes: Array(data)))
        }
        self.version = Self.version(of: sources.map { ($0.spec, $0.bytes) }, data: data)
        var states: [LuaState] = []
        var names: [String] = []
        var dataCost = 0
        // The states and their copies of the data first, side by side: with a large
        // inventory building the tables is most of a load, and the states are independent.
        let count = limits.states
        var built = [Result<(LuaState, Int), PolicyLoadError>?](repeating: nil, count: count)
        built.withUnsafeMutableBufferPointer { buffer in
            let slots = buffer
            let make: (Int) -> Void = { i in
                let host = LuaHost(logger: logger, store: stateStore, tokens: scriptTokens)
                host.quiet = i > 0
                do throws(PolicyLoadError) {
                    let st = try LuaState(host: host, limits: limits)
                    slots[i] = .success((st, try st.setData(data, server: server)))
                } catch {
                    slots[i] = .failure(error)
                }
            }
            if data.wire.isEmpty || count == 1 {
                for i in 0..<count { make(i) }
            } else {
                DispatchQueue.concurrentPerform(iterations: count, execute: make)
            }
        }
        for i in 0..<limits.states {
            let (st, cost) = try built[i]!.get()
            let host = st.host
            if i == 0 { dataCost = cost }
            for (j, src) in sources.enumerated() {
                let fallback = src.spec.name.isEmpty ? String(src.file.dropLast(src.file.hasSuffix(".lua") ? 4 : 0)) : src.spec.name
                let own = try st.load(
                    source: src.bytes, file: src.file, path: src.spec.path, dir: src.dir,
                    policyName: i == 0 ? fallback : names[j], config: src.spec.config)
                if i == 0 { names.append(src.spec.name.isEmpty ? (own ?? fallback) : src.spec.name) }
            }
            host.quiet = false
            states.append(st)
        }
        self.states = states
        self.dataBytesPerState = dataCost
        // Parsing a large data file leaves tens of MB of freed Swift and wire buffers that
        // malloc would otherwise keep mapped for the life of the process.
        if !data.wire.isEmpty { bp_malloc_trim() }
        self.sources = sources.map { ($0.file, String(decoding: $0.bytes, as: UTF8.self)) }
        let hookNames = ["dhcp", "tftp", "http"]
        let noRef = bp_noref()
        self.policies = sources.enumerated().map { j, src in
            Policy(name: names[j], path: src.spec.path,
                   hooks: (0..<3).filter { states[0].hooks[j][$0] != noRef }.map { hookNames[$0] })
        }
        self.metrics = PolicyMetrics(policies: names)
    }

    public func decide(_ request: BootRequest) -> BootDecision? {
        run(request, traced: false).decision
    }

    static func version(of policies: [(spec: PolicySpec, bytes: [UInt8])], data: PolicyData) -> String {
        var all: [UInt8] = []
        func add(_ s: String) { all += Array(s.utf8); all.append(0) }
        for p in policies {
            add(p.spec.name)
            all += p.bytes
            all.append(0)
            add(canonical(.table(p.spec.config)))
        }
        for source in data.sources {
            add(source.name)
            add(source.key ?? "")
            add(source.keyFormat.rawValue)
            all += Array(FileManager.default.contents(atPath: source.path) ?? Data())
            all.append(0)
        }
        return DecisionComparison.digest(all)
    }

    /// A value's text with table keys in order (a dictionary's own order changes per process).
    static func canonical(_ v: PolicyValue) -> String {
        switch v {
        case .string(let s): return "\"" + s + "\""
        case .integer(let i): return String(i)
        case .number(let d): return String(d)
        case .bool(let b): return String(b)
        case .list(let l): return "[" + l.map(canonical).joined(separator: ",") + "]"
        case .table(let t): return "{" + t.keys.sorted().map { "\($0)=" + canonical(t[$0]!) }.joined(separator: ",") + "}"
        }
    }

    /// Like `decide`, also saying what each policy did (for `bootpolicy explain`).
    public func decideTraced(_ request: BootRequest) -> (decision: BootDecision?, steps: [PolicyStep]) {
        run(request, traced: true)
    }

    /// Decides only when a state is free at once: an HTTP event loop must not wait for the
    /// state another decision holds. Nil: every state is busy.
    public func decideIfFree(_ request: BootRequest) -> (decision: BootDecision?, commit: UInt64)? {
        guard let st = tryAcquire() else { return nil }
        return (run(request, traced: false, on: st).decision, 0)
    }

    /// `decideIfFree`, saying what each policy did.
    public func decideIfFreeTraced(_ request: BootRequest) -> (decision: BootDecision?, steps: [PolicyStep])? {
        guard let st = tryAcquire() else { return nil }
        return run(request, traced: true, on: st)
    }

    /// The state this thread starts at; threads start at different ones, so in the common
    /// case the first try-lock wins.
    private var firstState: Int {
        #if os(Linux)
        let seed = UInt(pthread_self())
        #else
        let seed = UInt(bitPattern: pthread_self())
        #endif
        return Int(truncatingIfNeeded: (UInt64(seed) &* 0x9E37_79B9_7F4A_7C15) >> 33) % states.count
    }

    /// A free state, locked; nil when every one is held.
    private func tryAcquire() -> LuaState? {
        let n = states.count, start = n == 1 ? 0 : firstState
        for k in 0..<n {
            let st = states[(start + k) % n]
            if st.lock.try() { return st }
        }
        return nil
    }

    private func acquire() -> LuaState {
        if let st = tryAcquire() { return st }
        let st = states[states.count == 1 ? 0 : firstState]
        st.lock.lock()
        return st
    }

    private func run(_ request: BootRequest, traced: Bool) -> (decision: BootDecision?, steps: [PolicyStep]) {
        run(request, traced: traced, on: acquire())
    }

    /// Runs the chain on `st`, which the caller has locked; unlocks it.
    private func run(_ request: BootRequest, traced: Bool, on st: LuaState) -> (decision: BootDecision?, steps: [PolicyStep]) {
        let hook: Int
        switch request.kind {
        case .dhcp: hook = 0
        case .tftp: hook = 1
        case .http: hook = 2
        }
        let hookName = request.kind.rawValue
        var steps: [PolicyStep] = []
        let started = DispatchTime.now().uptimeNanoseconds
        defer { st.lock.unlock() }
        let L = st.L
        let base = bp_gettop(L)
        defer { bp_settop(L, base) }

        st.request.reset()
        st.options.reset()
        request.encodeLua(into: &st.request, omittingEmpty: true)
        request.encodeLuaOptions(into: &st.options)
        // Lua reads the options in place (only if a hook asks) until bp_end_request.
        let options = st.pinOptions()
        let pushed = st.request.bytes.withUnsafeBufferPointer { r in
            bp_push_request(L, r.baseAddress, r.count, options.baseAddress?.assumingMemoryBound(to: UInt8.self), options.count)
        }
        defer { bp_end_request(L) }
        if pushed != 0 {
            report(policy: "(request)", hook: hookName, kind: "memory", message: "cannot build the request table")
            return (nil, steps)
        }
        let reqIdx = base + 1
        var decision: BootDecision?
        for (i, policy) in policies.enumerated() {
            let ref = st.hooks[i][hook]
            if ref == noRef {
                if traced { steps.append(PolicyStep(policy: policy.name, hook: hookName, outcome: .noHook, duration: 0)) }
                continue
            }
            let t0 = traced ? DispatchTime.now().uptimeNanoseconds : 0
            let rc = bp_call_hook(L, ref, reqIdx)
            var outcome: PolicyStep.Outcome
            switch rc {
            case Int32(BP_PASS):
                outcome = .passed
                metrics.count(policy: i, hook: hook, outcome: .passed)
            case Int32(BP_DECIDED):
                let d = st.topBytes { BootDecision(wire: $0, policy: policy.name) } ?? nil
                bp_settop(L, reqIdx)
                if let d {
                    decision = d
                    outcome = .decided
                    metrics.count(policy: i, hook: hook, outcome: .decided)
                } else {
                    outcome = .error("\(policy.name): internal error decoding the decision")
                    metrics.count(policy: i, hook: hook, outcome: .error)
                }
            default:
                let raw = st.topString() ?? "unknown error"
                bp_settop(L, reqIdx)
                let msg = rc == Int32(BP_ERROR) ? DecisionErrorLine.relocate(LuaMessage.firstLine(raw), source: sources[i])
                                                : LuaMessage.firstLine(raw)
                switch rc {
                case Int32(BP_BUDGET):
                    outcome = .budgetExceeded(msg)
                    metrics.count(policy: i, hook: hook, outcome: .budget)
                    report(policy: policy.name, hook: hookName, kind: "budget", message: msg, traceback: raw)
                case Int32(BP_MEMORY):
                    outcome = .memoryExceeded(msg)
                    metrics.count(policy: i, hook: hook, outcome: .memory)
                    report(policy: policy.name, hook: hookName, kind: "memory", message: msg, traceback: raw)
                default:
                    outcome = .error(msg)
                    metrics.count(policy: i, hook: hook, outcome: .error)
                    report(policy: policy.name, hook: hookName, kind: "runtime", message: msg, traceback: raw)
                }
            }
            if traced {
                steps.append(PolicyStep(policy: policy.name, hook: hookName, outcome: outcome,
                                        duration: DispatchTime.now().uptimeNanoseconds - t0))
            }
            if decision != nil { break }
        }
        metrics.record(hook: hook, nanoseconds: DispatchTime.now().uptimeNanoseconds - started)
        return (decision, steps)
    }

    /// A failing policy fails on every packet: the first occurrence of each message is a
    /// warning, repeats go to debug (they are still counted).
    private func report(policy: String, hook: String, kind: String, message: String, traceback: String? = nil) {
        seenLock.lock()
        let first = seenErrors.count < 1000 ? seenErrors.insert(message).inserted : false
        seenLock.unlock()
        var meta: Logger.Metadata = ["policy": "\(policy)", "hook": "\(hook)", "kind": "\(kind)"]
        if let traceback, traceback != message { meta["traceback"] = "\(traceback)" }
        logger.log(level: first ? .warning : .debug, "policy failed: \(message)", metadata: meta)
    }
}

/// A decision is checked after its hook returned, when Lua no longer says from which line: the
/// check names the hook's `function` line. The field it complains about is written somewhere
/// in the hook (`return { filenme = ... }`, `d.filename = 5`): the first line from the
/// function on that assigns it is the line to show.
enum DecisionErrorLine {
    static func relocate(_ msg: String, source: (file: String, text: String)) -> String {
        guard let loc = LuaMessage.location(msg), loc.file == source.file else { return msg }
        let rest = loc.rest
        var field: Substring?
        if let r = rest.range(of: "unknown decision field '") {
            field = rest[r.upperBound...].prefix { $0 != "'" }
        } else if rest.hasPrefix("decision.") {
            field = rest.dropFirst("decision.".count).prefix { $0.isLetter || $0.isNumber || $0 == "_" }
        }
        guard let name = field, !name.isEmpty else { return msg }
        let lines = source.text.split(separator: "\n", omittingEmptySubsequences: false)
        guard loc.line >= 1, loc.line <= lines.count else { return msg }
        for n in (loc.line - 1)..<lines.count where assigns(lines[n], name) {
            return "\(loc.file):\(n + 1): \(rest)"
        }
        return msg
    }

    /// `name =` (not `==`) as a table field or an assignment, or `["name"] =`.
    static func assigns(_ line: Substring, _ name: Substring) -> Bool {
        let code = line.range(of: "--").map { line[..<$0.lowerBound] } ?? line
        var search = code.startIndex
        while let r = code[search...].range(of: name) {
            search = r.upperBound
            let before = r.lowerBound == code.startIndex ? " " : code[code.index(before: r.lowerBound)]
            var after = code[r.upperBound...]
            if before == "\"" || before == "'" {
                guard after.first == before else { continue }
                after = after.dropFirst()
                guard after.first == "]" else { continue }
                after = after.dropFirst()
            } else if before.isLetter || before.isNumber || before == "_" {
                continue
            }
            after = after.drop { $0 == " " || $0 == "\t" }
            if after.first == "=" && after.dropFirst().first != "=" { return true }
        }
        return false
    }
}
