import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// A listener that could not take its address, said the same way by every server:
/// `proxydhcp: cannot bind 127.0.0.1:67: Address already in use (errno 98)`. An operator reads
/// which service, which address and port, and why, without knowing which socket API failed.
public struct ListenerBindError: Error, CustomStringConvertible, Sendable {
    /// "proxydhcp", "tftp" or "http".
    public var service: String
    public var host: String
    public var port: Int
    /// The interface the socket was bound to (SO_BINDTODEVICE), if any.
    public var interface: String?
    /// The call that failed when it was not bind(2) itself (socket, a socket option).
    public var step: String?
    public var errno: Int32?
    /// Why, for a failure that carries no errno (an address that does not resolve).
    public var reason: String?

    public init(service: String, host: String, port: Int, interface: String? = nil, step: String? = nil, errno: Int32) {
        self.service = service
        self.host = host
        self.port = port
        self.interface = interface
        self.step = step
        self.errno = errno
    }

    /// From whatever the socket layer threw: NIO's `IOError` gives its errno.
    public init(service: String, host: String, port: Int, error: any Error) {
        self.service = service
        self.host = host
        self.port = port
        if let io = error as? IOError {
            errno = io.errnoCode
        } else {
            reason = "\(error)"
        }
    }

    public var description: String {
        let at = "\(host):\(port)" + (interface.map { " on \($0)" } ?? "")
        let why: String
        if let errno {
            why = "\(String(cString: strerror(errno))) (errno \(errno))"
        } else {
            why = reason ?? "unknown error"
        }
        return "\(service): cannot bind \(at): " + (step.map { "\($0): " } ?? "") + why
    }
}
