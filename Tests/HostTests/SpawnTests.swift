import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The tools tests run (curl, pg.sh, atftp) inherit no descriptor of the test process: once a
/// PostgreSQL that `pg.sh restart` started held the write end of a curl's output pipe, and the
/// test waiting for that output hung long after curl had exited.
@Suite struct SpawnTests {
    @Test func aSpawnedToolHoldsNoPipeOfOurs() throws {
        // Foundation's pipes are not close-on-exec: exactly what leaked.
        let pipe = Pipe()
        let fd = pipe.fileHandleForWriting.fileDescriptor
        #expect(fcntl(fd, F_GETFD) & FD_CLOEXEC == 0, "the pipe is close-on-exec already; this test no longer tests anything")
        var st = stat()
        #expect(fstat(fd, &st) == 0)
        let r = try Spawn.run("/bin/ls", ["-l", "/proc/self/fd"], timeout: 10)
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("/dev/null"), "ls did not list its descriptors: \(r.output)")
        #expect(!r.output.contains("pipe:[\(st.st_ino)]"), "the tool inherited our pipe:\n\(r.output)")
        // Descriptors 0-2 and the one ls opened to list them: nothing of ours.
        let open = r.output.split(separator: "\n").filter { $0.contains(" -> ") }
        #expect(open.count <= 4, "the tool inherited descriptors:\n\(r.output)")
    }

    @Test func aToolPastItsTimeIsEndedAndSaysSo() throws {
        let start = Date()
        let r = try Spawn.run("/bin/sh", ["-c", "echo started; exec sleep 30"], timeout: 0.5)
        #expect(r.timedOut)
        #expect(r.status == 128 + SIGTERM, "\(r.status)")
        #expect(r.output == "started\n")
        #expect(Date().timeIntervalSince(start) < 5)
    }
}
