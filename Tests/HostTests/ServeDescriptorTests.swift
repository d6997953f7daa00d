import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A server out of file descriptors says so, and comes back when they are free (issue 19:
/// 21,000 idle HTTP connections used every descriptor, and every TFTP request then failed with
/// a misleading "Access violation: cannot open").
@Suite struct ServeDescriptorTests {
    @Test func outOfDescriptorsIsBusyNotAccessViolation() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-emfile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try "hello\n".write(to: dir.appendingPathComponent("hello.txt"), atomically: true, encoding: .utf8)
        // 50 descriptors: enough to start, and the HTTP server's 64 connections per client take the rest.
        let server = ServerProcess(["serve", "--listen", "127.0.0.1", "--no-dhcp", "--tftp-port", "0",
                                    "--tftp-root", dir.path, "--http-port", "0"],
                                   launcher: ["/usr/bin/prlimit", "--nofile=50:50", "--"])
        defer { server.stop() }
        let ready = try server.startReady()
        let tftp = try ready.port("tftp"), http = try ready.port("http")
        let out = dir.appendingPathComponent("got.txt").path
        func get() throws -> (status: Int32, output: String) {
            try runTool("/usr/bin/atftp", ["-g", "-r", "hello.txt", "-l", out, "127.0.0.1", "\(tftp)"], timeout: 20)
        }

        var held: [Int32] = []
        defer { held.forEach { close($0) } }
        for _ in 0..<60 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = in_port_t(UInt16(http).bigEndian)
            let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            if rc != 0 { close(fd); break }
            held.append(fd)
        }
        Thread.sleep(forTimeInterval: 1)  // the server accepts what it can
        let full = try get()
        #expect(full.status != 0 && full.output.contains("Server busy: out of file descriptors (EMFILE)"), "\(full.output)")
        #expect(!full.output.contains("Access violation"), "\(full.output)")
        #expect(server.waitFor("outcome=busy", timeout: 5), "\(server.text)")

        held.forEach { close($0) }
        held = []
        var recovered = false
        for _ in 0..<20 where !recovered {  // bounded: the server closes its ends as it sees them go
            Thread.sleep(forTimeInterval: 0.25)
            recovered = try get().status == 0
        }
        #expect(recovered, "TFTP did not recover once the descriptors were free:\n\(server.text.suffix(2000))")
        #expect(server.process.isRunning)
    }
}
