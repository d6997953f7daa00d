import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The package's folder, from this file's place in it.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// An error a test helper throws, with its message.
public struct TestToolError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The throwaway PostgreSQL that scripts/pg.sh starts (scripts/test.sh exports
/// BOOTPOLICY_TEST_POSTGRES and BP_PG_DIR), for the tests of the PostgreSQL store and of
/// servers sharing one. Without it those tests are skipped, visibly (`.requires(TestPostgres.requirement)`);
/// under CI, BOOTPOLICY_REQUIRE_POSTGRES=1 or BOOTPOLICY_REQUIRE_ALL=1 a missing server fails.
public enum TestPostgres {
    public static let env = ProcessInfo.processInfo.environment
    public static let url = env["BOOTPOLICY_TEST_POSTGRES"]
    public static let dir = env["BP_PG_DIR"]
    public static var available: Bool { url != nil }
    public static var required: Bool { env["CI"] != nil || env["BOOTPOLICY_REQUIRE_POSTGRES"] == "1" || Requirement.enforced }
    /// For `.requires`: skip without a server, fail without one where it is `required`.
    public static var requirement: Requirement {
        Requirement(available, "needs a PostgreSQL: BOOTPOLICY_TEST_POSTGRES unset (eval \"$(scripts/pg.sh start)\"; export BP_PG_DIR BOOTPOLICY_TEST_POSTGRES)",
                    enforced: required)
    }

    /// Runs a tool with a bound (`Spawn.run`); output and status. Throws when it ran too long.
    @discardableResult
    public static func run(_ path: String, _ args: [String], timeout: TimeInterval = 60) throws -> (status: Int32, output: String) {
        let r = try Spawn.run(path, args, timeout: timeout)
        if r.timedOut { throw TestToolError("\(path) \(args.joined(separator: " ")): still running after \(Int(timeout)) s, killed") }
        return (r.status, r.output)
    }

    public static func psql(_ sql: String, database: String? = nil) throws -> String {
        var target = url!
        if let database { target = String(target[..<target.lastIndex(of: "/")!]) + "/" + database }
        let r = try run("/usr/bin/psql", [target, "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql])
        guard r.status == 0 else { throw TestToolError("psql \(sql): \(r.output)") }
        return r.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A fresh database for one test; its URL.
    public static func freshDatabase() throws -> (name: String, url: String) {
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        _ = try psql("CREATE DATABASE \(name)")
        return (name, String(url![..<url!.lastIndex(of: "/")!]) + "/" + name)
    }

    /// Drops a database `freshDatabase` made, whoever is still connected: a crash recovery
    /// of the server syncs every file of every database, so the tests leave none behind.
    public static func dropDatabase(_ name: String) {
        _ = try? psql("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }

    public static func pgctl(_ action: String) throws {
        let r = try run("/bin/bash", [packageRoot.appendingPathComponent("scripts/pg.sh").path, action, dir!], timeout: 60)
        guard r.status == 0 else { throw TestToolError("pg.sh \(action): \(r.output)") }
    }

    /// Runs `body` on its own thread (not a dispatch queue: blocking those starves Foundation's
    /// Process and Swift's cooperative pool on a two-CPU machine); `join` waits, bounded.
    public final class Worker: @unchecked Sendable {
        private let done = DispatchSemaphore(value: 0)
        public init(_ body: @escaping @Sendable () -> Void) {
            let t = Thread { [done] in body(); done.signal() }
            t.start()
        }
        public func join(timeout: TimeInterval) -> Bool { done.wait(timeout: .now() + timeout) == .success }
    }

    /// Polls `condition` every 2 ms for at most `timeout`; the seconds it took, or nil.
    public static func within(_ timeout: TimeInterval, _ condition: () throws -> Bool) rethrows -> TimeInterval? {
        let start = Date()
        while Date().timeIntervalSince(start) < timeout {
            if try condition() { return Date().timeIntervalSince(start) }
            Thread.sleep(forTimeInterval: 0.002)
        }
        return try condition() ? Date().timeIntervalSince(start) : nil
    }
}
