import CLinux
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs a command-line tool for a test, bounded in time, with posix_spawn and waitpid.
///
/// Not Foundation's Process with a Pipe, for two reasons seen in CI:
/// - Foundation's pipes are not close-on-exec, so a child spawned by another thread at the
///   wrong moment inherits a pipe's write end. When that child is a daemon (`pg.sh restart`
///   starts PostgreSQL), the reader of the pipe never sees end of file and the test hangs,
///   as `SharedStateTests` did once behind a curl that had long exited.
/// - Its SIGCHLD handling has missed a child's exit while other threads block.
/// So: the output goes to a file (nobody can hold it open against us), the child gets only
/// descriptors 0-2 (every other one is closed in it) and default signal handling, and the
/// wait is a waitpid loop.
public enum Spawn {
    public struct Result: Sendable {
        /// The exit code, or 128 + the signal that ended it.
        public let status: Int32
        /// Standard output and standard error, interleaved as written.
        public let output: String
        /// The tool ran past its time and was ended: SIGTERM, then SIGKILL after 5 s.
        public let timedOut: Bool
    }

    public static func run(_ path: String, _ args: [String], timeout: TimeInterval) throws -> Result {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("bp-tool-\(UUID().uuidString).log").path
        defer { unlink(log) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let closed = clinux_spawn_close_from(&actions, 3)
        guard closed == 0 else { throw TestToolError("posix_spawn_file_actions_addclosefrom_np: \(String(cString: strerror(closed)))") }
        // The child starts with no signal blocked or ignored: the thread that spawns it may
        // block some (a test runner's threads do), and a tool that ignores SIGTERM cannot be
        // ended politely.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + args).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attributes, argv, environ)
        guard rc == 0 else { throw TestToolError("\(path): \(String(cString: strerror(rc)))") }
        var status: Int32 = 0
        var timedOut = false
        let deadline = Date().addingTimeInterval(timeout)
        var killAt: Date?
        while waitpid(pid, &status, WNOHANG) == 0 {
            let now = Date()
            if !timedOut && now > deadline {
                timedOut = true
                kill(pid, SIGTERM)
                killAt = now.addingTimeInterval(5)
            } else if let at = killAt, now > at {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                break
            }
            Thread.sleep(forTimeInterval: 0.005)
        }
        let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        let output = (try? Data(contentsOf: URL(fileURLWithPath: log))).map { String(decoding: $0, as: UTF8.self) } ?? ""
        return Result(status: code, output: output, timedOut: timedOut)
    }
}
