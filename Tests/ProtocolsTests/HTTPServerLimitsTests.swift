import Foundation
import NIOCore
import NIOPosix
import Testing
@testable import Protocols

#if canImport(Glibc)
import Glibc

/// The HTTP server's bounds against clients that hold connections (issue 19, item 6): a request
/// trickled byte by byte, an idle keep-alive connection, too many connections from one address,
/// and garbage that the decoder refuses. Real sockets on loopback; short timeouts.
@Suite(.serialized) struct HTTPServerLimitsTests {
    /// A TCP client socket connected to 127.0.0.1:port, reads bounded by `timeout`.
    final class Client {
        let fd: Int32
        init(port: Int, timeout: Double = 5) throws {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1e6))
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            guard rc == 0 else { close(fd); throw POSIXError(.ECONNREFUSED) }
        }
        deinit { close(fd) }
        func send(_ text: String) { _ = text.withCString { Glibc.send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) } }
        /// Reads until the peer closes or the read times out: (bytes, closed).
        func readAll() -> (String, Bool) {
            var out = [UInt8]()
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n == 0 { return (String(decoding: out, as: UTF8.self), true) }
                if n < 0 { return (String(decoding: out, as: UTF8.self), errno == ECONNRESET) }
                out += buffer[..<n]
            }
        }
    }

    func withServer(_ configuration: HTTPServer.Configuration, _ body: (HTTPServer, Int) async throws -> Void) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try HTTPServer(configuration: configuration, decider: NoDecider(), group: group, logger: TFTPTestSupport.quietLogger)
        let task = Task { try await server.run() }
        let port = try #require(try await server.boundAddress.get().port)
        try await body(server, port)
        task.cancel()
        _ = try? await task.value
        try await group.shutdownGracefully()
    }

    @Test func aTrickledRequestIsCutAtTheRequestTimeout() async throws {
        try await withServer(.init(host: "127.0.0.1", port: 0, requestTimeout: 1, idleTimeout: 30)) { _, port in
            let c = try Client(port: port, timeout: 0.2)
            let started = Date()
            c.send("GET /x HTTP/1.1\r\nHost: a\r\n")
            var closed = false
            // One header byte every 200 ms: it never completes; bounded to 5 s.
            for _ in 0..<25 where !closed {
                c.send("X")
                let (_, gone) = c.readAll()
                closed = gone
            }
            let took = Date().timeIntervalSince(started)
            #expect(closed, "the slow client was never closed")
            #expect(took < 3, "closed after \(took) s, the request timeout is 1 s")
        }
    }

    @Test func anIdleKeepAliveConnectionIsClosed() async throws {
        try await withServer(.init(host: "127.0.0.1", port: 0, requestTimeout: 5, idleTimeout: 1)) { _, port in
            let c = try Client(port: port, timeout: 4)
            c.send("GET /nothing HTTP/1.1\r\nHost: a\r\n\r\n")
            let started = Date()
            let (text, closed) = c.readAll()
            #expect(text.hasPrefix("HTTP/1.1 404"), "\(text)")
            #expect(closed && Date().timeIntervalSince(started) < 3.5, "kept open past the 1 s idle timeout")
        }
    }

    @Test func oneAddressCannotHoldEveryConnection() async throws {
        try await withServer(.init(host: "127.0.0.1", port: 0, requestTimeout: 30, idleTimeout: 30, maxConnectionsPerClient: 3)) { server, port in
            let held = try (0..<3).map { _ in try Client(port: port, timeout: 0.3) }
            try await Task.sleep(for: .milliseconds(200))
            let extra = try Client(port: port, timeout: 2)
            let (_, closed) = extra.readAll()
            #expect(closed, "a fourth connection from one address was kept")
            #expect(server.openConnections == 3)
            // The three held ones still work.
            held[0].send("GET /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            let (text, _) = held[0].readAll()
            #expect(text.hasPrefix("HTTP/1.1 404"), "\(text)")
        }
    }

    @Test func garbageGetsA400AndTheConnectionCloses() async throws {
        try await withServer(.init(host: "127.0.0.1", port: 0, requestTimeout: 30, idleTimeout: 30)) { _, port in
            let c = try Client(port: port, timeout: 3)
            c.send("\u{01}\u{02} nonsense\r\n\r\n")
            let (text, closed) = c.readAll()
            #expect(text.hasPrefix("HTTP/1.1 400"), "\(text)")
            #expect(closed, "the connection stayed open after the 400")
        }
    }
}
#endif
