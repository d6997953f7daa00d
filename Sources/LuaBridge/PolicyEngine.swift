import CLuaShim
import Clients
import Foundation
import Logging
import Protocols

/// Holds the current `PolicyChain` and swaps it on reload (SIGHUP): new states are built and
/// every policy loaded first; only if all load does the new chain replace the old one.
/// Decisions in flight finish on the chain they started with.
public final class PolicyEngine: TracingBootDecider, @unchecked Sendable {
    private let lock = NSLock()
    private var current: PolicyChain
    private let limits: PolicyLimits
    private let logger: Logger
    public let stateStore: ClientStateStore
    /// The key `ipxe.script_token` signs with; the HTTP server checks with the same one.
    public let scriptTokens: ScriptTokens

    public init(
        specs: [PolicySpec], limits: PolicyLimits = PolicyLimits(), logger: Logger,
        stateStore: ClientStateStore = ClientStateStore(), scriptTokens: ScriptTokens = .random(),
        data: PolicyData = .empty, server: ServerFacts = ServerFacts()
    ) throws(PolicyLoadError) {
        self.limits = limits
        self.logger = logger
        self.stateStore = stateStore
        self.scriptTokens = scriptTokens
        current = try PolicyChain(specs: specs, limits: limits, logger: logger, stateStore: stateStore,
                                  scriptTokens: scriptTokens, data: data, server: server)
    }

    public var chain: PolicyChain {
        lock.lock()
        defer { lock.unlock() }
        return current
    }

    public func decide(_ request: BootRequest) -> BootDecision? { chain.decide(request) }

    public func decideIfFree(_ request: BootRequest) -> (decision: BootDecision?, commit: UInt64)? {
        chain.decideIfFree(request)
    }

    public func decideTraced(_ request: BootRequest) -> (decision: BootDecision?, steps: [PolicyStep]) {
        chain.decideTraced(request)
    }

    public func decideIfFreeTraced(_ request: BootRequest) -> (decision: BootDecision?, steps: [PolicyStep])? {
        chain.decideIfFreeTraced(request)
    }

    /// Loads `specs` into fresh states; on any failure keeps the running chain and says why.
    @discardableResult
    /// `data` and `server` nil: the running chain's.
    public func reload(specs: [PolicySpec], data: PolicyData? = nil, server: ServerFacts? = nil) -> Result<Void, PolicyLoadError> {
        do {
            let running = chain
            let next = try PolicyChain(specs: specs, limits: limits, logger: logger, stateStore: stateStore,
                                       scriptTokens: scriptTokens, data: data ?? running.data,
                                       server: server ?? running.server)
            lock.lock()
            current = next
            lock.unlock()
            // The old chain's states (and their copies of the data) go when the last decision
            // running on them ends; with a large inventory that is hundreds of MB for malloc to
            // give back to the system, not keep.
            if !running.data.wire.isEmpty || !next.data.wire.isEmpty {
                DispatchQueue.global().asyncAfter(deadline: .now() + 1) { bp_malloc_trim() }
            }
            logger.debug("policy chain swapped", metadata: ["policies": "\(next.policies.map(\.name))"])
            return .success(())
        } catch {
            logger.error("policy reload failed, keeping the running policies: \(error)")
            return .failure(error)
        }
    }
}
