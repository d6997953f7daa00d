import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Something a test needs from the machine (a tool, root, a data folder) that it cannot make
/// itself. A test that lacks it is skipped, and Swift Testing says so with the reason
/// (`.requires(...)`); it never passes without having run.
///
/// Under `BOOTPOLICY_REQUIRE_ALL=1` (scripts/test.sh, which installs everything first) an unmet
/// requirement is a failure instead, so a run cannot go green with half its tests skipped.
public struct Requirement: Sendable, CustomStringConvertible {
    /// Whether the machine has it.
    public let isMet: Bool
    /// What is missing and how to get it: "atftp is not installed (apt-get install -y atftp)".
    public let description: String

    /// Whether an unmet requirement fails rather than skips.
    public let isEnforced: Bool

    /// `enforced`: fail, not skip, when unmet (BOOTPOLICY_REQUIRE_ALL=1 by default).
    public init(_ isMet: Bool, _ description: String, enforced: Bool = Requirement.enforced) {
        self.isMet = isMet
        self.description = description
        self.isEnforced = enforced
    }

    /// Set by scripts/test.sh: a requirement that is not met fails its tests.
    public static var enforced: Bool { ProcessInfo.processInfo.environment["BOOTPOLICY_REQUIRE_ALL"] == "1" }

    /// What `.requires` throws when enforced.
    public struct Unmet: Error, CustomStringConvertible {
        public let description: String
    }

    /// True when met; false (skip) when not; throws (a failure) when not met but enforced.
    public func check() throws -> Bool {
        if isMet { return true }
        if isEnforced { throw Unmet(description: "required here (BOOTPOLICY_REQUIRE_ALL=1, CI) but not met: \(description)") }
        return false
    }

    /// `name` on the usual program folders, or nil.
    public static func path(of name: String) -> String? {
        ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"].map { $0 + "/" + name }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// An executable on the usual program folders.
    public static func tool(_ name: String, install: String) -> Requirement {
        Requirement(path(of: name) != nil, "\(name) is not installed (\(install))")
    }

    /// Root, for network namespaces, mknod and the like.
    public static func root(for what: String) -> Requirement {
        Requirement(getuid() == 0, "needs root (\(what))")
    }
}

extension Trait where Self == ConditionTrait {
    /// Runs the test only where `requirement` is met; skips it, saying why, where it is not;
    /// fails it under BOOTPOLICY_REQUIRE_ALL=1. (A condition that throws is recorded as an issue
    /// and the test does not run.)
    public static func requires(_ requirement: Requirement, sourceLocation: SourceLocation = #_sourceLocation) -> Self {
        .enabled(if: try requirement.check(), Comment(rawValue: requirement.description), sourceLocation: sourceLocation)
    }
}
