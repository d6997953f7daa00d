/// What one policy did with one request (`bootpolicy explain`).
public struct PolicyStep: Sendable, Equatable {
    public enum Outcome: Sendable, Equatable {
        /// The policy has no hook for this request kind.
        case noHook
        /// The hook returned nil: the next policy decides.
        case passed
        /// The hook returned a decision; the chain stopped here.
        case decided
        /// The hook raised an error (message starts with `file.lua:line:`).
        case error(String)
        /// The instruction or wall-clock budget ran out.
        case budgetExceeded(String)
        /// The state's memory cap was hit.
        case memoryExceeded(String)
    }

    public var policy: String
    public var hook: String
    public var outcome: Outcome
    /// Nanoseconds spent in the hook.
    public var duration: UInt64

    public init(policy: String, hook: String, outcome: Outcome, duration: UInt64) {
        self.policy = policy
        self.hook = hook
        self.outcome = outcome
        self.duration = duration
    }
}

/// A decider that can also say what each policy did (`bootpolicy explain`, policy tests).
public protocol TracingBootDecider: BootDecider {
    func decideTraced(_ request: BootRequest) -> (decision: BootDecision?, steps: [PolicyStep])
    /// `decideIfFree`, saying what each policy did. The default traces nothing.
    func decideIfFreeTraced(_ request: BootRequest) -> (decision: BootDecision?, steps: [PolicyStep])?
}

extension TracingBootDecider {
    public func decideIfFreeTraced(_ request: BootRequest) -> (decision: BootDecision?, steps: [PolicyStep])? {
        decideIfFree(request).map { ($0.decision, []) }
    }
}

extension PolicyStep.Outcome {
    /// One word (and the message) for logs and the decision journal.
    public var text: String {
        switch self {
        case .noHook: return "no hook"
        case .passed: return "passed"
        case .decided: return "decided"
        case .error(let m): return "error: \(m)"
        case .budgetExceeded(let m): return "budget exceeded: \(m)"
        case .memoryExceeded(let m): return "memory cap: \(m)"
        }
    }
}
