import Metrics

/// Counters and the decision timer, created once per chain (no per-packet lookups).
///   bootpolicy_policy_decisions_total{policy,hook,outcome}
///   bootpolicy_policy_errors_total{policy,kind}  kind = runtime | budget | memory
///   bootpolicy_policy_decision_seconds{hook}     whole-chain time per request
struct PolicyMetrics {
    enum Outcome: Int, CaseIterable {
        case passed, decided, error, budget, memory
        var label: String { ["passed", "decided", "error", "budget", "memory"][rawValue] }
    }

    private static let hooks = ["dhcp", "tftp", "http"]
    private let decisions: [[[Counter]]]  // [policy][hook][outcome]
    private let errors: [[Counter]]  // [policy][runtime, budget, memory]
    private let timers: [Timer]

    init(policies: [String]) {
        decisions = policies.map { p in
            Self.hooks.map { h in
                Outcome.allCases.map { o in
                    Counter(label: "bootpolicy_policy_decisions_total",
                            dimensions: [("policy", p), ("hook", h), ("outcome", o.label)])
                }
            }
        }
        errors = policies.map { p in
            ["runtime", "budget", "memory"].map { k in
                Counter(label: "bootpolicy_policy_errors_total", dimensions: [("policy", p), ("kind", k)])
            }
        }
        timers = Self.hooks.map { Timer(label: "bootpolicy_policy_decision_seconds", dimensions: [("hook", $0)]) }
    }

    func count(policy: Int, hook: Int, outcome: Outcome) {
        decisions[policy][hook][outcome.rawValue].increment()
        switch outcome {
        case .error: errors[policy][0].increment()
        case .budget: errors[policy][1].increment()
        case .memory: errors[policy][2].increment()
        default: break
        }
    }

    func record(hook: Int, nanoseconds: UInt64) {
        timers[hook].recordNanoseconds(Int64(truncatingIfNeeded: nanoseconds))
    }
}
