import Foundation
import Testing

/// With all three servers on, a port that one of them cannot take ends `bootpolicy serve` within
/// seconds, non-zero, with a line that names the service, the address, the port and the errno
/// text; SIGTERM while the servers start ends it as promptly. (Issue 19: a taken DHCP port used
/// to leave the process running for ever, HTTP still listening, deaf to SIGTERM.)
@Suite struct ServeBindFailureTests {
    /// A socket holding 127.0.0.1:port (no SO_REUSEADDR, so a second bind gets EADDRINUSE).
    final class HeldPort {
        let fd: Int32
        let port: Int

        init(_ type: __socket_type) throws {
            let fd = socket(AF_INET, Int32(type.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) }
            }
            _ = withUnsafeMutablePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
            }
            let listening = type != SOCK_STREAM || listen(fd, 1) == 0
            self.fd = fd
            port = Int(UInt16(bigEndian: addr.sin_port))
            try #require(bound == 0 && listening, "could not hold a loopback port")
        }

        deinit { close(fd) }
    }

    enum Service: String, CaseIterable, CustomTestStringConvertible {
        case proxydhcp, tftp, http
        var testDescription: String { rawValue }
    }

    /// Port 0 for DHCP, TFTP and HTTP: the kernel picks free ones; a test puts a held port
    /// in place of one.
    static func freePorts() -> [Service: Int] {
        [.proxydhcp: 0, .tftp: 0, .http: 0]
    }

    static func serveArguments(_ ports: [Service: Int]) -> [String] {
        ["serve", "--listen", "127.0.0.1", "--dhcp-port", "\(ports[.proxydhcp]!)",
         "--tftp-root", FileManager.default.temporaryDirectory.path, "--tftp-port", "\(ports[.tftp]!)",
         "--http-port", "\(ports[.http]!)"]
    }

    /// Waits (bounded) for the process to end; true if it did.
    static func ends(_ p: ServerProcess, within seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while p.process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        return !p.process.isRunning
    }

    @Test(arguments: Service.allCases) func takenPortEndsServe(_ taken: Service) throws {
        let held = try HeldPort(taken == .http ? SOCK_STREAM : SOCK_DGRAM)
        var ports = Self.freePorts()
        ports[taken] = held.port
        let p = ServerProcess(Self.serveArguments(ports))
        let started = Date()
        try p.start()
        let ended = Self.ends(p, within: 10)
        let elapsed = Date().timeIntervalSince(started)
        if !ended { p.stop() }
        p.process.waitUntilExit()
        Thread.sleep(forTimeInterval: 0.05)  // the last output
        print("takenPortEndsServe(\(taken)): exited in \(String(format: "%.2f", elapsed)) s")
        try #require(ended, "still running 10 s after start with \(taken) port \(held.port) taken:\n\(p.text)")
        #expect(p.process.terminationReason == .exit && p.process.terminationStatus != 0, "\(p.text)")
        let line = "bootpolicy serve: \(taken.rawValue): cannot bind 127.0.0.1:\(held.port): Address already in use (errno 98)"
        #expect(p.text.contains(line), "no '\(line)' in:\n\(p.text)")
        #expect(!p.text.contains("serving:"), "announced serving with a listener down:\n\(p.text)")
        #expect(!p.text.contains("not every listener"), "\(p.text)")
    }

    /// SIGTERM at points through start-up, from before the signal handlers are in place to
    /// about when every listener has bound, with every port free and with the DHCP port taken
    /// (the state that used to ignore SIGTERM): the process ends, gracefully, by the signal, or
    /// by the bind failure, whichever comes first.
    @Test(arguments: [0.0, 0.02, 0.1, 0.5], [false, true])
    func sigtermWhileStarting(after delay: Double, dhcpPortTaken: Bool) throws {
        let held = dhcpPortTaken ? try HeldPort(SOCK_DGRAM) : nil
        var ports = Self.freePorts()
        if let held { ports[.proxydhcp] = held.port }
        let p = ServerProcess(Self.serveArguments(ports))
        try p.start()
        try #require(p.waitFor("policies loaded", timeout: 20), "\(p.text)")
        Thread.sleep(forTimeInterval: delay)
        let sent = Date()
        p.signal(SIGTERM)
        let ended = Self.ends(p, within: 10)
        let elapsed = Date().timeIntervalSince(sent)
        if !ended { p.stop() }
        p.process.waitUntilExit()
        Thread.sleep(forTimeInterval: 0.05)  // the last output
        print("sigtermWhileStarting(after: \(delay), dhcpPortTaken: \(dhcpPortTaken)): ended \(String(format: "%.2f", elapsed)) s after SIGTERM")
        try #require(ended, "still running 10 s after SIGTERM:\n\(p.text)")
        let status = p.process.terminationStatus
        let graceful = p.process.terminationReason == .exit && status == 0
        let bySignal = p.process.terminationReason == .uncaughtSignal && status == SIGTERM
        let refused = p.process.terminationReason == .exit && status == 1 && held != nil && p.text.contains("cannot bind")
        #expect(graceful || bySignal || refused, "reason \(p.process.terminationReason.rawValue) status \(status):\n\(p.text)")
    }
}
