import Foundation
import NIOCore
import NIOPosix
import Testing
@testable import Protocols

#if canImport(Glibc)
import Glibc

/// HTTP decisions are made on the event loop when the decider can start at once, and on a
/// worker when it cannot; a decision whose state must be durable first is answered only once
/// it is, without holding the loop, and one that cannot be made durable is answered as if no
/// policy had decided.
@Suite(.serialized) struct HTTPDecideOnLoopTests {
    /// Decides `/p` with "decided <how>"; `busy` makes `decideIfFree` refuse, `commit` makes
    /// its decisions of `/p` hold one, `durable` is what `whenDurable` answers once the test
    /// signals `release` (no timing: the order is the test's).
    final class Decider: BootDecider, @unchecked Sendable {
        let lock = NSLock()
        var busy = false, commit: UInt64 = 0, durable = true
        var onLoop = 0, onWorker = 0, waits = 0
        let release = DispatchSemaphore(value: 0)
        func decide(_ request: BootRequest) -> BootDecision? {
            lock.withLock { onWorker += 1 }
            return request.path == "/p" ? BootDecision(content: Array("decided on a worker\n".utf8), policy: "t") : nil
        }
        func decideIfFree(_ request: BootRequest) -> (decision: BootDecision?, commit: UInt64)? {
            lock.withLock {
                if busy { return nil }
                onLoop += 1
                guard request.path == "/p" else { return (nil, 0) }
                return (BootDecision(content: Array("decided on the loop\n".utf8), policy: "t"), commit)
            }
        }
        func whenDurable(through commit: UInt64, _ done: @escaping @Sendable (Bool) -> Void) {
            let answer = lock.withLock { waits += 1; return durable }
            Thread { [release] in
                _ = release.wait(timeout: .now() + 20)
                done(answer)
            }.start()
        }
    }

    func get(_ port: Int, _ path: String) throws -> String {
        let client = try HTTPServerLimitsTests.Client(port: port)
        client.send("GET \(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return client.readAll().0
    }

    /// `get` on a thread of its own: a blocking read on the cooperative pool (two threads
    /// here) stalls every other async test of the run.
    func fetch(_ port: Int, _ path: String) async -> String {
        await withCheckedContinuation { (c: CheckedContinuation<String, Never>) in
            Thread { c.resume(returning: (try? self.get(port, path)) ?? "") }.start()
        }
    }

    @Test func decidesOnTheLoopWaitsForDurabilityAndFallsBackToAWorker() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let decider = Decider()
        let server = try HTTPServer(configuration: .init(host: "127.0.0.1", port: 0, workerThreads: 1), decider: decider,
                                    group: group, logger: TFTPTestSupport.quietLogger)
        let task = Task { try await server.run() }
        let port = try #require(try await server.boundAddress.get().port)

        // Free: on the loop, no worker.
        #expect(await fetch(port, "/p").hasSuffix("decided on the loop\n"))
        #expect(decider.lock.withLock { (decider.onLoop, decider.onWorker) } == (1, 0))

        // Busy: on a worker.
        decider.lock.withLock { decider.busy = true }
        #expect(await fetch(port, "/p").hasSuffix("decided on a worker\n"))
        #expect(decider.lock.withLock { decider.onWorker } == 1)
        decider.lock.withLock { decider.busy = false; decider.commit = 7 }

        // A commit: answered once durable, and the loop serves others meanwhile.
        final class Box: @unchecked Sendable { var text = "" }
        let slow = Box(), done = DispatchSemaphore(value: 0)
        Thread {
            slow.text = (try? self.get(port, "/p")) ?? ""
            done.signal()
        }.start()
        for _ in 0..<1000 where decider.lock.withLock({ decider.waits }) == 0 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(decider.lock.withLock { decider.waits } == 1, "the decision did not wait for its commit")
        // Its commit is not durable yet, and the loop answers another request.
        let other = await fetch(port, "/other")
        #expect(other.hasPrefix("HTTP/1.1 404"), "\(other)")
        #expect(done.wait(timeout: .now()) == .timedOut, "answered before the state was durable: \(slow.text)")
        decider.release.signal()
        var answered = false
        for _ in 0..<1000 where !answered {
            answered = done.wait(timeout: .now()) == .success
            if !answered { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(answered)
        #expect(slow.text.hasSuffix("decided on the loop\n"), "\(slow.text)")

        // Not durable in time: as if no policy had decided (here, no such file).
        decider.lock.withLock { decider.durable = false }
        decider.release.signal()
        let undecided = await fetch(port, "/p")
        #expect(undecided.hasPrefix("HTTP/1.1 404") && !undecided.contains("decided"), "\(undecided)")
        #expect(decider.lock.withLock { decider.waits } == 2)

        task.cancel()
        _ = try? await task.value
        try await group.shutdownGracefully()
    }
}
#endif
