import Protocols

/// A server's `onServerRunning`, for a test to wait on (bounded) instead of looking again and
/// again whether the server has bound yet.
struct ServerRunningSignal: Sendable {
    private let stream: AsyncStream<[ListeningAddress]>
    private let continuation: AsyncStream<[ListeningAddress]>.Continuation

    init() {
        (stream, continuation) = AsyncStream.makeStream(of: [ListeningAddress].self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Give this to the server.
    var callback: OnServerRunning { { [continuation] addresses in continuation.yield(addresses) } }

    /// The addresses the server reported, or nil if it reported nothing within `timeout`.
    func wait(timeout: Duration = .seconds(5)) async -> [ListeningAddress]? {
        await withTaskGroup(of: [ListeningAddress]?.self) { group in
            group.addTask { [stream] in
                for await addresses in stream { return addresses }
                return nil
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }
}
