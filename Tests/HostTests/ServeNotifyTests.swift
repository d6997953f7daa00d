import Foundation
import Testing
@testable import Host
#if canImport(Glibc)
import Glibc
#endif

/// `serve` speaks systemd's readiness protocol to `NOTIFY_SOCKET` (READY=1 once every listener
/// is bound, RELOADING=1 and READY=1 around a SIGHUP reload, STOPPING=1 at SIGTERM), and with
/// port 0 binds ports the kernel picks and reports them there and in its `serving:` lines.
@Suite struct ServeNotifyTests {
    static func folder() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-notify-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try "hello\n".write(to: dir.appendingPathComponent("hello.txt"), atomically: true, encoding: .utf8)
        return dir
    }

    /// One TFTP read request for `file` over loopback: the first packet's opcode that comes back
    /// (3 DATA, 5 ERROR), or nil after 2 s.
    static func tftpFirstOpcode(port: Int, file: String) -> UInt16? {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var tv = timeval(tv_sec: 0, tv_usec: 400_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var to = sockaddr_in()
        to.sin_family = sa_family_t(AF_INET)
        to.sin_addr.s_addr = inet_addr("127.0.0.1")
        to.sin_port = in_port_t(UInt16(port).bigEndian)
        let rrq: [UInt8] = [0, 1] + Array(file.utf8) + [0] + Array("octet".utf8) + [0]
        var buffer = [UInt8](repeating: 0, count: 1024)
        for _ in 0..<5 {
            _ = rrq.withUnsafeBytes { b in
                withUnsafePointer(to: &to) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, b.baseAddress, b.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n >= 4 { return UInt16(buffer[0]) << 8 | UInt16(buffer[1]) }
        }
        return nil
    }

    /// Port 0 for all three: each reports a real port, in READY=1 and in its serving: line, and
    /// each answers there. The arch-aware policy's iPXE URL names the HTTP port really bound.
    @Test func portZeroBindsPortsThatAnswerAndAreReported() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = ServerProcess(["serve", "--listen", "127.0.0.1", "--dhcp-port", "0", "--tftp-port", "0",
                                    "--tftp-root", dir.path, "--http-port", "0", "--policy", "arch-aware"])
        defer { server.stop() }
        let ready = try server.startReady()
        let dhcp = try ready.port("proxydhcp"), tftp = try ready.port("tftp"), http = try ready.port("http")
        #expect(ready.listeners.count == 3, "\(ready.assignments)")
        #expect(![dhcp, tftp, http].contains(0))
        #expect(dhcp != tftp, "two UDP listeners on one port")
        #expect(ready.listeners.allSatisfy { $0.host == "127.0.0.1" }, "\(ready.listeners)")

        // Logged before READY=1 is sent, but read here through a pipe that may lag: waitFor.
        #expect(server.waitFor("serving: proxydhcp \(dhcp) on 127.0.0.1"), "\(server.text)")
        #expect(server.waitFor("serving: tftp 127.0.0.1:\(tftp) root \(dir.path)"), "\(server.text)")
        #expect(server.waitFor("serving: http 127.0.0.1:\(http) "), "\(server.text)")

        let health = try runTool("/usr/bin/curl", ["-sS", "-m", "5", "http://127.0.0.1:\(http)/healthz"])
        #expect(health.status == 0, "\(health.output)")
        #expect(Self.tftpFirstOpcode(port: tftp, file: "hello.txt") == 3, "no TFTP DATA from port \(tftp)")
        let offer = ServeStateTests.discover(port: dhcp, mac: [0x52, 0x54, 0, 0x0e, 0, 1], xid: 0x0e01)
        #expect(offer?.bootFile.hasPrefix("http://127.0.0.1:\(http)/boot.ipxe?") == true,
                "the iPXE URL does not name the bound HTTP port \(http): \(offer?.bootFile ?? "no answer")\n\(server.text)")
    }

    /// The config file's ports take 0 as the flags do.
    @Test func portZeroFromTheConfigFile() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = dir.appendingPathComponent("bp.yaml")
        try """
            listen: 127.0.0.1
            dhcp: { ports: [0] }
            tftp: { port: 0, root: \(dir.path) }
            http: { port: 0 }
            """.write(to: config, atomically: true, encoding: .utf8)
        let server = ServerProcess(["serve", "--config", config.path])
        defer { server.stop() }
        let ready = try server.startReady()
        for service in ["proxydhcp", "tftp", "http"] {
            #expect(ready.ports(service).count == 1 && !ready.ports(service).contains(0), "\(service): \(ready.assignments)")
        }
    }

    /// READY=1 comes once every listener is bound and says who and where; then a SIGHUP is
    /// RELOADING=1 (with the monotonic clock) and READY=1; SIGTERM is STOPPING=1.
    @Test func readyReloadingStopping() throws {
        let server = ServerProcess(["serve", "--listen", "127.0.0.1", "--no-dhcp", "--no-tftp", "--http-port", "0"])
        defer { server.stop() }
        let ready = try server.startReady()
        #expect(ready.assignments["MAINPID"] == "\(server.process.processIdentifier)", "\(ready.assignments)")
        #expect(ready.assignments["STATUS"]?.hasPrefix("serving: http 127.0.0.1:") == true, "\(ready.assignments)")
        // The listener answers by the time READY=1 is said.
        let health = try runTool("/usr/bin/curl", ["-sS", "-m", "5", "http://127.0.0.1:\(try ready.port("http"))/healthz"])
        #expect(health.status == 0, "\(health.output)")

        let before = SystemdNotifier.monotonicMicroseconds()
        server.signal(SIGHUP)
        let reloading = server.notification { _ in true }
        #expect(reloading?["RELOADING"] == "1", "\(reloading ?? [:])\n\(server.text)")
        let stamp = UInt64(reloading?["MONOTONIC_USEC"] ?? "") ?? 0
        #expect(stamp >= before && stamp <= SystemdNotifier.monotonicMicroseconds(), "MONOTONIC_USEC \(stamp) is not now")
        let again = server.notification { _ in true }
        #expect(again?["READY"] == "1" && again?["STATUS"]?.contains("policies reloaded by SIGHUP") == true, "\(again ?? [:])")
        #expect(server.waitFor("policies reloaded (SIGHUP)", timeout: 10), "\(server.text)")

        server.signal(SIGTERM)
        let stopping = server.notification { _ in true }
        #expect(stopping?["STOPPING"] == "1", "\(stopping ?? [:])\n\(server.text)")
        let deadline = Date().addingTimeInterval(10)
        while server.process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        #expect(!server.process.isRunning)
        server.process.waitUntilExit()
        #expect(server.process.terminationStatus == 0, "\(server.text)")
    }

    /// An abstract socket (`@name`), as systemd may hand out.
    @Test func abstractSocket() throws {
        let name = "bp-notify-test-\(UUID().uuidString.prefix(8))"
        let socket = try NotifySocket(abstract: name)
        let server = ServerProcess(["serve", "--listen", "127.0.0.1", "--no-dhcp", "--no-tftp", "--http-port", "0"],
                                   environment: ["NOTIFY_SOCKET": "@" + name])
        try server.start()
        defer { server.stop() }
        let ready = socket.next(timeout: 30, while: { server.process.isRunning }, where: { $0["READY"] == "1" })
        #expect(ready?["BOOTPOLICY_LISTENERS"]?.hasPrefix("http=127.0.0.1:") == true, "\(ready ?? [:])\n\(server.text)")
    }

    /// Without NOTIFY_SOCKET nothing is sent and nothing is said about it; the server serves.
    @Test func withoutNotifySocketNothingIsSent() throws {
        #expect(SystemdNotifier(environment: [:], logger: .init(label: "t")).socket == nil)
        #expect(SystemdNotifier(environment: ["NOTIFY_SOCKET": ""], logger: .init(label: "t")).socket == nil)
        let server = ServerProcess(["serve", "--listen", "127.0.0.1", "--no-dhcp", "--no-tftp", "--http-port", "0"])
        #expect(server.process.environment?["NOTIFY_SOCKET"] == nil, "ServerProcess passes on the test runner's NOTIFY_SOCKET")
        try server.start()
        defer { server.stop() }
        try #require(server.waitFor("serving: http"), "\(server.text)")
        server.signal(SIGHUP)
        #expect(server.waitFor("policies reloaded (SIGHUP)", timeout: 10), "\(server.text)")
        #expect(!server.text.contains("NOTIFY_SOCKET"), "\(server.text)")
    }

    /// A NOTIFY_SOCKET nobody listens on, or one that is not a socket address at all, is a
    /// warning: the server starts and serves regardless.
    @Test(arguments: ["/nonexistent-bp/notify.sock", "relative/notify.sock"])
    func badNotifySocketIsAWarning(_ value: String) throws {
        let server = ServerProcess(["serve", "--listen", "127.0.0.1", "--no-dhcp", "--no-tftp", "--http-port", "0"],
                                   environment: ["NOTIFY_SOCKET": value])
        try server.start()
        defer { server.stop() }
        #expect(server.waitFor("NOTIFY_SOCKET=\(value): cannot tell the service manager READY=1"), "\(server.text)")
        #expect(server.waitFor("serving: http 127.0.0.1:"), "\(server.text)")
        Thread.sleep(forTimeInterval: 0.2)
        #expect(server.process.isRunning, "\(server.text)")
    }

    @Test func socketNamesTooLongAreRefused() {
        let long = "/tmp/" + String(repeating: "x", count: 120)
        #expect(throws: SystemdNotifier.SendError.self) { try SystemdNotifier.send("READY=1\n", to: long) }
    }
}
