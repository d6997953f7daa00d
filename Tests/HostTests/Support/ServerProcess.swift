import Foundation

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
    init(_ arguments: [String], environment: [String: String] = [:], launcher: [String] = []) {
        if let tool = launcher.first {
            process.executableURL = URL(fileURLWithPath: tool)
            process.arguments = Array(launcher.dropFirst()) + [Self.binary.path] + arguments
        } else {
            process.executableURL = Self.binary
            process.arguments = arguments
        }
        var env = ProcessInfo.processInfo.environment
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

/// Runs a command-line tool (curl, atftp, chromium) with a time bound; returns status and output.
@discardableResult
func runTool(_ path: String, _ args: [String], timeout: Double = 30) throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    final class Collected: @unchecked Sendable {
        let lock = NSLock()
        var data = Data()
    }
    let collected = Collected()
    let reader = Thread {
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        collected.lock.withLock { collected.data = data }
    }
    reader.start()
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
    if p.isRunning { p.terminate(); p.waitUntilExit() }
    p.waitUntilExit()
    while reader.isExecuting { Thread.sleep(forTimeInterval: 0.01) }
    return (p.terminationStatus, String(decoding: collected.lock.withLock { collected.data }, as: UTF8.self))
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
