import CLinux
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The hint the ProxyDHCP receive threads give the scheduler (ReceiveThread.start).
@Suite struct SchedulerSliceTests {
    final class Box<T>: @unchecked Sendable {
        var value: T?
        let done = DispatchSemaphore(value: 0)
    }

    /// Runs `body` on a thread of its own (the hint is per thread; the test runner's threads
    /// keep theirs) and waits at most 5 s.
    static func onOwnThread<T>(_ body: @escaping @Sendable () -> T) throws -> T {
        let box = Box<T>()
        Thread {
            box.value = body()
            box.done.signal()
        }.start()
        guard box.done.wait(timeout: .now() + 5) == .success, let value = box.value else {
            throw CancellationError()
        }
        return value
    }

    /// (major, minor) of the running kernel.
    static func kernel() -> (Int, Int) {
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let parts = release.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        return (parts.first ?? 0, parts.count > 1 ? parts[1] : 0)
    }

    /// Linux 6.12+ (EEVDF custom slices) takes it and reports it back; an older kernel says
    /// EINVAL and the thread's setting does not change.
    @Test func aThreadAsksForAShortSliceAndTheKernelKeepsIt() throws {
        let (code, before, after) = try Self.onOwnThread { () -> (Int32, UInt64, UInt64) in
            let before = clinux_current_slice()
            let code = clinux_request_slice(100_000)
            return (code, before, clinux_current_slice())
        }
        let (major, minor) = Self.kernel()
        if code == EPERM || code == ENOSYS {
            // A sandbox (seccomp) that forbids sched_setattr: the server carries on without.
            #expect(after == before)
        } else if major > 6 || (major == 6 && minor >= 12) {
            #expect(code == 0, "Linux \(major).\(minor) takes a custom slice")
            #expect(after == 100_000)
        } else if code != 0 {
            #expect(code == EINVAL)
            #expect(after == before)
        }
    }
}
