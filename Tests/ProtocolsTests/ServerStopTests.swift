import Foundation
#if canImport(Glibc)
import Glibc
#endif
import NIOPosix
import Synchronization
import Testing
@testable import Protocols

/// Every server's run() returns when its task is cancelled or it is stopped, whenever that comes,
/// and a taken port is refused with the service, address, port and errno text. A service group
/// cancels all its services when one throws and waits for each run() before it reports the
/// error: one run() that does not return hangs the process (issue 19).
@Suite struct ServerStopTests {
    /// Whether `task` finishes within `seconds` (bounded: polls a flag a watcher sets).
    /// How long run() may take to return. These tests are about returning at all (a server
    /// that hung there needed SIGKILL), not about speed: in a full parallel run, and under
    /// ThreadSanitizer, tests that block the cooperative pool have delayed a task 8 s.
    static let bound: Double = 30

    static func finishes(_ task: Task<Void, Error>, within seconds: Double) async -> Bool {
        let done = Atomic<Bool>(false)
        let watcher = Task.detached {
            _ = await task.result
            done.store(true, ordering: .releasing)
        }
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1_000))
        while !done.load(ordering: .acquiring), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        if !done.load(ordering: .acquiring) { watcher.cancel() }
        return done.load(ordering: .acquiring)
    }

    @Test func httpRunReturnsOnCancellation() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try HTTPServer(configuration: .init(host: "127.0.0.1", port: 0), decider: NoDecider(),
                                    group: group, logger: TFTPTestSupport.quietLogger)
        let task = Task { try await server.run() }
        _ = try await server.boundAddress.get()
        task.cancel()
        #expect(await Self.finishes(task, within: Self.bound), "HTTPServer.run() ignored cancellation")
        try await group.shutdownGracefully()
    }

    /// onServerRunning says where HTTP listens: the kernel's port for a configured 0.
    @Test func httpReportsItsBoundPort() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let running = ServerRunningSignal()
        let server = try HTTPServer(configuration: .init(host: "127.0.0.1", port: 0), decider: NoDecider(),
                                    group: group, logger: TFTPTestSupport.quietLogger, onServerRunning: running.callback)
        let task = Task { try await server.run() }
        let bound = try #require(await running.wait(), "the HTTP server did not report bound")
        let port = try await server.boundAddress.get().port
        #expect(bound == [ListeningAddress(host: "127.0.0.1", port: port ?? -1)] && port != 0, "\(bound)")
        task.cancel()
        #expect(await Self.finishes(task, within: Self.bound))
        try await group.shutdownGracefully()
    }

    @Test func httpTakenPortNamesAddressAndErrno() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let first = try HTTPServer(configuration: .init(host: "127.0.0.1", port: 0), decider: NoDecider(),
                                   group: group, logger: TFTPTestSupport.quietLogger)
        let running = Task { try await first.run() }
        let port = try #require(try await first.boundAddress.get().port)
        let second = try HTTPServer(configuration: .init(host: "127.0.0.1", port: port), decider: NoDecider(),
                                    group: group, logger: TFTPTestSupport.quietLogger)
        do {
            try await second.run()
            Issue.record("a second HTTP server bound a taken port")
        } catch {
            #expect("\(error)" == "http: cannot bind 127.0.0.1:\(port): Address already in use (errno 98)")
        }
        running.cancel()
        #expect(await Self.finishes(running, within: Self.bound))
        try await group.shutdownGracefully()
    }

    @Test func tftpRunReturnsOnCancellation() async throws {
        let running = ServerRunningSignal()
        let server = try TFTPServer(configuration: .init(root: TFTPTestSupport.sharedRoot, host: "127.0.0.1", port: 0, transferThreads: 2),
                                    logger: TFTPTestSupport.quietLogger, onServerRunning: running.callback)
        let task = Task { try await server.run() }
        let bound = try #require(await running.wait(), "the TFTP server did not report bound")
        #expect(bound.count == 1 && bound[0].port != 0 && bound[0].port == server.localAddress?.port, "\(bound)")
        task.cancel()
        #expect(await Self.finishes(task, within: Self.bound), "TFTPServer.run() ignored cancellation")
    }

    /// stop() before run(): its transfer threads used to start after the stop and wait for
    /// ever, and run() with them.
    @Test func tftpStopBeforeRunReturns() async throws {
        let server = try TFTPServer(configuration: .init(root: TFTPTestSupport.sharedRoot, host: "127.0.0.1", port: 0, transferThreads: 2),
                                    logger: TFTPTestSupport.quietLogger)
        server.stop()
        let task = Task { try await server.run() }
        #expect(await Self.finishes(task, within: Self.bound), "TFTPServer.run() after stop() did not return")
    }

    /// Held by a plain socket: ProxyDHCP sets SO_REUSEADDR, so a second ProxyDHCP server (or
    /// any socket that sets it too) would share the port instead.
    @Test func proxyDHCPTakenPortNamesAddressAndErrno() async throws {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        try #require(bound == 0)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        let port = Int(UInt16(bigEndian: addr.sin_port))
        let server = ProxyDHCPServer(configuration: .init(bindAddress: "127.0.0.1", ports: [port]), decider: StaticBootDecider(),
                                     logger: ProxyDHCPServerTests.quiet)
        do {
            try await server.start()
            Issue.record("ProxyDHCP bound a taken port")
            await server.shutdown()
        } catch {
            #expect("\(error)" == "proxydhcp: cannot bind 127.0.0.1:\(port): Address already in use (errno 98)")
        }
    }

    @Test func proxyDHCPRunReturnsOnCancellation() async throws {
        let running = ServerRunningSignal()
        let server = ProxyDHCPServer(configuration: .init(bindAddress: "127.0.0.1", ports: [0]), decider: StaticBootDecider(),
                                     logger: ProxyDHCPServerTests.quiet, onServerRunning: running.callback)
        let task = Task { try await server.run() }
        let bound = try #require(await running.wait(), "the ProxyDHCP server did not report bound")
        #expect(bound == server.listening && bound.count == 1 && bound[0].port != 0, "\(bound)")
        task.cancel()
        #expect(await Self.finishes(task, within: Self.bound), "ProxyDHCPServer.run() ignored cancellation")
    }
}
