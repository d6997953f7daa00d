import Foundation
import Logging
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// systemd's readiness protocol (sd_notify(3)), without libsystemd: when the service manager
/// (or a test) sets `NOTIFY_SOCKET`, each state change is one datagram of newline-separated
/// `KEY=value` assignments sent to that AF_UNIX socket. `NOTIFY_SOCKET` names a path
/// (`/run/systemd/notify`) or, with a leading `@`, an abstract socket.
///
/// `serve` says `READY=1` once every listener has bound, `RELOADING=1` (with
/// `MONOTONIC_USEC=`, as systemd 253's Type=notify-reload wants) and `READY=1` again around a
/// reload, and `STOPPING=1` when it begins to shut down. The `READY=1` datagram also carries
/// `BOOTPOLICY_LISTENERS=`, every bound address (the kernel's port for a configured 0);
/// systemd ignores assignments it does not know.
///
/// A socket that cannot be reached is a warning, never a reason to stop serving.
final class SystemdNotifier: Sendable {
    /// The `NOTIFY_SOCKET` value; nil: nobody listens and nothing is sent.
    let socket: String?
    let logger: Logger
    private let state = NIOLockedValueBox(State())

    private struct State {
        var ready = false
        var stopping = false
        var status = ""
    }

    init(environment: [String: String] = ProcessInfo.processInfo.environment, logger: Logger) {
        let value = environment["NOTIFY_SOCKET"] ?? ""
        self.socket = value.isEmpty ? nil : value
        self.logger = logger
    }

    /// Every listener is bound: `READY=1` with the status line, our PID and the listeners.
    func ready(status: String, listeners: String) {
        let first = state.withLockedValue { s -> Bool in
            defer { s.ready = true; s.status = status }
            return !s.ready
        }
        guard first else { return }
        send(["READY=1", "STATUS=\(status)", "MAINPID=\(getpid())", "BOOTPOLICY_LISTENERS=\(listeners)"])
    }

    /// A reload starts (SIGHUP or the control API); said only once ready, never while stopping.
    /// Returns whether it was said, so that `reloaded` follows only then.
    func reloading() -> Bool {
        guard state.withLockedValue({ $0.ready && !$0.stopping }) else { return false }
        send(["RELOADING=1", "STATUS=reloading policies", "MONOTONIC_USEC=\(Self.monotonicMicroseconds())"])
        return true
    }

    /// The reload is over (loaded or refused: either way the server answers again).
    func reloaded(_ outcome: String) {
        let status = state.withLockedValue { $0.status }
        send(["READY=1", "STATUS=\(status) (\(outcome))"])
    }

    /// Shutdown begins; said once.
    func stopping() {
        let first = state.withLockedValue { s -> Bool in
            defer { s.stopping = true }
            return !s.stopping
        }
        guard first else { return }
        send(["STOPPING=1", "STATUS=stopping"])
    }

    private func send(_ assignments: [String]) {
        guard let socket else { return }
        let message = assignments.map { $0.replacingOccurrences(of: "\n", with: " ") }.joined(separator: "\n") + "\n"
        do {
            try Self.send(message, to: socket)
        } catch {
            logger.warning("NOTIFY_SOCKET=\(socket): cannot tell the service manager \(assignments.first ?? ""): \(error)")
        }
    }

    struct SendError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
        init(_ call: String, errno: Int32) { description = "\(call): \(String(cString: strerror(errno))) (errno \(errno))" }
    }

    /// One datagram to the socket `NOTIFY_SOCKET` names.
    static func send(_ message: String, to name: String) throws {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var path = Array(name.utf8)
        let abstract = path.first == UInt8(ascii: "@")
        guard abstract || path.first == UInt8(ascii: "/") else {
            throw SendError("not an absolute path or an @abstract socket name (systemd's vsock: form is not supported)")
        }
        // An abstract name's first byte is NUL and its length is exact; a path ends in NUL.
        if abstract { path[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.count + (abstract ? 0 : 1) <= capacity else {
            throw SendError("longer than the \(capacity) bytes a unix socket address holds")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count + (abstract ? 0 : 1))

        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SendError("socket", errno: errno) }
        defer { close(fd) }
        let bytes = Array(message.utf8)
        let sent = bytes.withUnsafeBytes { buffer in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL), $0, length)
                }
            }
        }
        guard sent >= 0 else { throw SendError("sendto", errno: errno) }
        guard sent == bytes.count else { throw SendError("sendto sent \(sent) of \(bytes.count) bytes") }
    }

    /// CLOCK_MONOTONIC in microseconds, what systemd compares `MONOTONIC_USEC=` with.
    static func monotonicMicroseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
    }
}
