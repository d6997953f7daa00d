import Foundation
import TestSupport

/// Runs the real `bootpolicy` executable for a test, collects its output, and stops it by PID.
final class ServerProcess: @unchecked Sendable {
    let process = Process()
    private let output = Pipe()
    private let lock = NSLock()
    private var collected = Data()

    static var binary: URL {
        if let env = ProcessInfo.processInfo.environment["BOOTPOLICY_BIN"] { return URL(fileURLWithPath: env) }
        // Tests run from the package's build folder, beside the executable.
        var dir = Bundle.main.bundleURL
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("bootpolicy")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return packageRoot.appendingPathComponent(".build/debug/bootpolicy")
    }

    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
    }

    /// `launcher` runs the server through another tool, e.g. `["/usr/bin/prlimit", "--nofile=50:50", "--"]`.
    /// A `serve` keeps root (`--user root`) unless the test names a user: the tests' temporary
    /// folders are root's own. PrivilegeDropTests is the one that lets it give root up.
    init(_ arguments: [String], environment: [String: String] = [:], launcher: [String] = []) {
        var arguments = arguments
        if arguments.first == "serve" && !arguments.contains("--user") { arguments += ["--user", "root"] }
        if let tool = launcher.first {
            process.executableURL = URL(fileURLWithPath: tool)
            process.arguments = Array(launcher.dropFirst()) + [Self.binary.path] + arguments
        } else {
            process.executableURL = Self.binary
            process.arguments = arguments
        }
        var env = ProcessInfo.processInfo.environment
        // Never the test runner's own service manager (tests may run in a systemd unit).
        env["NOTIFY_SOCKET"] = nil
        env["BOOTPOLICY_POLICIES"] = Self.packageRoot.appendingPathComponent("policies").path
        for (k, v) in environment { env[k] = v }
        process.environment = env
        process.standardOutput = output
        process.standardError = output
        output.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self, !data.isEmpty else { return }
            self.lock.lock(); self.collected.append(data); self.lock.unlock()
        }
    }

    var text: String {
        lock.lock(); defer { lock.unlock() }
        return String(decoding: collected, as: UTF8.self)
    }

    func start() throws { try process.run() }

    /// The socket given to the server as `NOTIFY_SOCKET` by `startReady`.
    private(set) var notify: NotifySocket?

    /// Starts the server with `NOTIFY_SOCKET` set to a fresh datagram socket and waits
    /// (bounded) for its `READY=1`: every listener bound, with the ports it took. Throws, with
    /// the server's output, when the server exits or says nothing in time. The `serving:`
    /// lines are logged before READY=1 but reach `text` through a pipe: `waitFor` them.
    @discardableResult
    /// `abstractNotify`: an abstract socket, which a server that gave root up can still reach
    /// (a socket file in root's folder it could not).
    func startReady(timeout: Double = 30, abstractNotify: Bool = false) throws -> Readiness {
        let socket = try abstractNotify ? NotifySocket(abstract: "bp-notify-\(UUID().uuidString.prefix(8))") : NotifySocket()
        notify = socket
        var env = process.environment ?? ProcessInfo.processInfo.environment
        env["NOTIFY_SOCKET"] = socket.path
        process.environment = env
        try start()
        guard let ready = socket.next(timeout: timeout, while: { self.process.isRunning }, where: { $0["READY"] == "1" }) else {
            throw ServerProcessError("no READY=1 within \(timeout) s (running: \(process.isRunning)):\n\(text)")
        }
        return Readiness(ready)
    }

    /// The next notification (after `startReady`) that `matches`, within `timeout`.
    func notification(timeout: Double = 20, where matches: ([String: String]) -> Bool = { _ in true }) -> [String: String]? {
        notify?.next(timeout: timeout, while: { true }, where: matches)
    }

    /// Waits (bounded) until the output contains `needle`; false on timeout or early exit.
    func waitFor(_ needle: String, timeout: Double = 20) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if text.contains(needle) { return true }
            if !process.isRunning { return text.contains(needle) }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return false
    }

    /// Runs to completion (bounded); returns the exit status.
    func runToEnd(timeout: Double = 60) throws -> Int32 {
        try start()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if process.isRunning { stop(); return -1 }
        process.waitUntilExit()
        Thread.sleep(forTimeInterval: 0.05)
        return process.terminationStatus
    }

    func signal(_ sig: Int32) { if process.isRunning { kill(process.processIdentifier, sig) } }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { stop() }
}

struct ServerProcessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// What `READY=1` said: every assignment, and the listeners of `BOOTPOLICY_LISTENERS=`.
struct Readiness {
    let assignments: [String: String]
    /// In the order the server lists them: (service, host, port).
    let listeners: [(service: String, host: String, port: Int)]

    init(_ assignments: [String: String]) {
        self.assignments = assignments
        listeners = (assignments["BOOTPOLICY_LISTENERS"] ?? "").split(separator: " ").compactMap { entry in
            let parts = entry.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { return nil }
            let address = parts[1].split(separator: "%").first ?? parts[1]  // 0.0.0.0:67%eth0
            guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else { return nil }
            return (String(parts[0]), String(address[..<colon]), port)
        }
    }

    func ports(_ service: String) -> [Int] { listeners.filter { $0.service == service }.map(\.port) }

    /// The port of the service's first listener; a test that asked for the service needs it.
    func port(_ service: String) throws -> Int {
        guard let port = ports(service).first else {
            throw ServerProcessError("READY=1 names no \(service) listener: \(assignments["BOOTPOLICY_LISTENERS"] ?? "-")")
        }
        return port
    }
}

/// A unix datagram socket in a fresh temporary folder, to be a server's `NOTIFY_SOCKET`
/// (what systemd listens on for sd_notify messages).
final class NotifySocket: @unchecked Sendable {
    let directory: String
    let path: String
    let fd: Int32

    /// A socket file in a fresh folder, or with `abstract` the abstract socket of that name
    /// (NOTIFY_SOCKET `@name`).
    init(abstract: String? = nil) throws {
        // Short: a unix socket path holds at most 107 bytes.
        directory = "/tmp/bp-notify-\(UUID().uuidString.prefix(8))"
        path = abstract.map { "@" + $0 } ?? directory + "/notify.sock"
        if abstract == nil { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ServerProcessError("socket(AF_UNIX): errno \(errno)") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        if abstract != nil { bytes[0] = 0 }  // an abstract name starts with NUL; its length is exact
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: bytes) }
        let length = abstract == nil ? MemoryLayout<sockaddr_un>.size : MemoryLayout<sa_family_t>.size + bytes.count
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(length)) }
        }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw ServerProcessError("bind \(path): errno \(e)")
        }
    }

    /// Every datagram received so far, in order.
    private(set) var received: [[String: String]] = []

    /// One datagram within `timeout` seconds, as its assignments; nil on timeout.
    func receive(timeout: Double) -> [String: String]? {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, Int32(max(0, timeout) * 1000)) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = recv(fd, &buffer, buffer.count, 0)
        guard n > 0 else { return nil }
        var assignments: [String: String] = [:]
        for line in String(decoding: buffer[..<n], as: UTF8.self).split(separator: "\n") {
            let kv = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if kv.count == 2 { assignments[String(kv[0])] = String(kv[1]) }
        }
        received.append(assignments)
        return assignments
    }

    /// The next datagram that `matches`, within `timeout`, while `alive` holds (checked every
    /// quarter second: a server that died is not waited for). Bounded by the deadline.
    func next(timeout: Double, while alive: () -> Bool, where matches: ([String: String]) -> Bool) -> [String: String]? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let message = receive(timeout: min(0.25, deadline.timeIntervalSinceNow)) {
                if matches(message) { return message }
                continue
            }
            if !alive() { return receive(timeout: 0).flatMap { matches($0) ? $0 : nil } }
        }
        return nil
    }

    deinit {
        close(fd)
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Runs a command-line tool (curl, atftp, chromium) with a time bound; returns status and
/// output (`Spawn.run`: a tool past its time is ended and what it wrote is returned).
@discardableResult
func runTool(_ path: String, _ args: [String], timeout: Double = 30) throws -> (status: Int32, output: String) {
    let r = try Spawn.run(path, args, timeout: timeout)
    return (r.status, r.output)
}

/// Ports this test process has handed out already: two servers started side by side must
/// never be given the same one.
private let handedOut = HandedOut()
private final class HandedOut: @unchecked Sendable {
    let lock = NSLock()
    var ports: Set<Int> = []
}

/// A loopback port that is free for both TCP and UDP, and not handed out before in this process.
///
/// Picked below the kernel's ephemeral range (32768-60999 by default): a port the kernel chose
/// for a UDP socket could meanwhile become the local end of one of the many TCP connections
/// the tests make (curl, PostgreSQL), and a server given it then fails to bind its HTTP
/// listener (CI saw exactly that once). Bounded: after 2,000 tries the kernel's pick is used.
func freePort() -> Int {
    for _ in 0..<2_000 {
        let port = Int.random(in: 20_000..<32_000)
        let fresh = handedOut.lock.withLock { handedOut.ports.insert(port).inserted }
        guard fresh else { continue }
        if canBind(port, SOCK_STREAM) && canBind(port, SOCK_DGRAM) { return port }
    }
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    defer { close(fd) }
    var addr = loopback(0)
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

private func loopback(_ port: Int) -> sockaddr_in {
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = UInt16(port).bigEndian
    return addr
}

/// Whether a socket of `type` binds 127.0.0.1:`port` right now (closed again at once).
private func canBind(_ port: Int, _ type: __socket_type) -> Bool {
    let fd = socket(AF_INET, Int32(type.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var addr = loopback(port)
    return withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    } == 0
}
