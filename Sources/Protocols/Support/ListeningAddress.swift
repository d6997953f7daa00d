/// Where a listener took its address, once bound: the port the kernel chose when the
/// configured one is 0. Every server hands these to its `onServerRunning` callback (as
/// hummingbird's `onServerRunning`), so a host learns that it is answering, and where,
/// without looking again and again.
public struct ListeningAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    /// The interface the socket was bound to (SO_BINDTODEVICE), if any.
    public var interface: String?

    public init(host: String, port: Int, interface: String? = nil) {
        self.host = host
        self.port = port
        self.interface = interface
    }

    /// `127.0.0.1:40123`, `0.0.0.0:67%eth0`.
    public var description: String { "\(host):\(port)" + (interface.map { "%\($0)" } ?? "") }
}

/// Called once a server has bound every socket it listens on, before it answers its first
/// request's reply; not called when binding fails.
public typealias OnServerRunning = @Sendable ([ListeningAddress]) -> Void
