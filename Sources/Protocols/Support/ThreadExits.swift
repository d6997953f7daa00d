import NIOConcurrencyHelpers

/// Lets async code wait for threads of the server's own to return, without blocking a thread
/// to do it: each thread says `exited()` as its last act, and whoever waits is resumed by the
/// last one. (Waiting on a semaphore from a Dispatch thread, as the servers did, holds one of
/// Dispatch's few threads per wait; with many servers stopping at once, a stop took over 5 s.)
final class ThreadExits: Sendable {
    private struct State {
        var running = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = NIOLockedValueBox(State())

    /// One more thread to wait for: call before starting it.
    func started() {
        state.withLockedValue { $0.running += 1 }
    }

    /// The thread's last act.
    func exited() {
        let waiters = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.running -= 1
            guard state.running == 0 else { return [] }
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once every thread started has exited (at once if none runs).
    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = state.withLockedValue { state -> Bool in
                if state.running > 0 { state.waiters.append(continuation) }
                return state.running == 0
            }
            if done { continuation.resume() }
        }
    }
}
