import Foundation
import NIOCore
import NIOPosix
import Testing
@testable import Protocols

#if canImport(Glibc)
import Glibc

/// A response completed later, from another thread (the control API's writes waiting for
/// their commit): it arrives whole, in order on a keep-alive connection, and holds no worker
/// thread while it waits.
@Suite(.serialized) struct HTTPLaterResponseTests {
    @Test func laterResponsesArriveWholeAndHoldNoWorker() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        final class Count: @unchecked Sendable {
            let lock = NSLock(); var n = 0
            func add(_ d: Int) { lock.withLock { n += d } }
            var value: Int { lock.withLock { n } }
        }
        let waiting = Count()
        let routes: [String: HTTPServer.Route] = [
            "/slow": { request in
                .later { complete in
                    waiting.add(1)
                    DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) {
                        waiting.add(-1)
                        complete { .text("done \(request.query["n"] ?? "?")\n") }
                    }
                }
            },
        ]
        // One worker: 16 blocking waits of 0.3 s would take 4.8 s; waiting without it, 0.3 s.
        let configuration = HTTPServer.Configuration(host: "127.0.0.1", port: 0, workerThreads: 1)
        let server = try HTTPServer(configuration: configuration, decider: NoDecider(), routes: routes, group: group,
                                    logger: TFTPTestSupport.quietLogger)
        let task = Task { try await server.run() }
        let port = try #require(try await server.boundAddress.get().port)

        let started = Date()
        // Clients on threads of their own: blocking reads in tasks would queue on the
        // cooperative pool (two threads here) and time the test, not the server.
        final class Results: @unchecked Sendable { let lock = NSLock(); var items: [String] = [] }
        let collected = Results()
        let done = DispatchSemaphore(value: 0)
        for n in 0..<16 {
            Thread {
                if let client = try? HTTPServerLimitsTests.Client(port: port) {
                    client.send("GET /slow?n=\(n) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    let text = client.readAll().0
                    collected.lock.withLock { collected.items.append(text) }
                }
                done.signal()
            }.start()
        }
        for _ in 0..<16 { _ = done.wait(timeout: .now() + 10) }
        let results = collected.lock.withLock { collected.items }
        let took = Date().timeIntervalSince(started)
        #expect(results.count == 16 && results.allSatisfy { $0.hasPrefix("HTTP/1.1 200 OK") && $0.contains("done ") }, "\(results)")
        #expect(took < 2.0, "16 later responses on one worker took \(took) s: they held it")

        // Keep-alive: a later response, then an ordinary one, on one connection.
        let client = try HTTPServerLimitsTests.Client(port: port)
        client.send("GET /slow?n=a HTTP/1.1\r\nHost: x\r\n\r\n")
        var first = [UInt8](repeating: 0, count: 4096)
        let n = recv(client.fd, &first, first.count, 0)
        let text = String(decoding: first[..<max(0, n)], as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 200 OK") && text.contains("keep-alive") && text.hasSuffix("done a\n"), "\(text)")
        client.send("GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(client.readAll().0.hasPrefix("HTTP/1.1 404"))
        #expect(waiting.value == 0)

        task.cancel()
        _ = try? await task.value
        try await group.shutdownGracefully()
    }
}
#endif
