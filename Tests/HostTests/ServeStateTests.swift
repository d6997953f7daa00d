import Foundation
import Protocols
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `serve --state`: what a policy remembers, and the scripts it generated, outlive a restart;
/// a state path that cannot be used is a start error that names it.
@Suite struct ServeStateTests {
    static func folder() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-state-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// One iPXE DISCOVER over loopback; the OFFER's boot file, or nil after 2 s.
    static func discover(port: Int, mac: [UInt8], xid: UInt32) -> DHCPMessage? {
        var m = DHCPMessage(op: .request, xid: xid, flags: 0x8000, chaddr: mac)
        m.messageType = .discover
        m.options.set(93, [0, 0])
        m.options.set(175, [19, 1, 1])
        m.vendorClass = "PXEClient:Arch:00000:UNDI:002001"
        return exchange(port: port, m)
    }

    /// Sends `m` to 127.0.0.1:`port` (up to 10 times, 200 ms apart) and returns the reply with its xid.
    static func exchange(port: Int, _ m: DHCPMessage) -> DHCPMessage? {
        let xid = m.xid
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var tv = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var to = sockaddr_in()
        to.sin_family = sa_family_t(AF_INET)
        to.sin_addr.s_addr = inet_addr("127.0.0.1")
        to.sin_port = in_port_t(UInt16(port).bigEndian)
        var buffer = [UInt8](repeating: 0, count: 2048)
        for _ in 0..<10 {
            let bytes = m.bytes
            _ = bytes.withUnsafeBytes { b in
                withUnsafePointer(to: &to) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, b.baseAddress, b.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n > 0, let reply = try? DHCPMessage(bytes: Array(buffer[..<n])), reply.xid == xid { return reply }
        }
        return nil
    }

    /// The netboot-once example, as a new user tried it: three machines installed, the server
    /// killed and started again; all three must now boot from disk, not be handed the installer
    /// (which would wipe them), and the script generated before the kill is still served.
    @Test func netbootOnceSurvivesAKill() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = dir.appendingPathComponent("bootpolicy.yaml")
        let examples = ServerProcess.packageRoot.appendingPathComponent("examples").path
        try """
            policies:
              - file: \(examples)/netboot-once.lua
                config:
                  installer: { kernel: "http://10.0.0.1/vmlinuz", cmdline: "auto=true" }
            state:
              store: state.db
            """.write(to: config, atomically: true, encoding: .utf8)
        let args = ["serve", "--listen", "127.0.0.1", "--config", config.path, "--dhcp-port", "0",
                    "--no-tftp", "--http-port", "0"]
        let macs: [[UInt8]] = (1...3).map { [0x02, 0x77, 0x01, 0x00, 0x00, UInt8($0)] }

        let first = ServerProcess(args)
        var dhcpPort = try first.startReady().port("proxydhcp")
        #expect(first.waitFor("state store: sqlite:\(dir.path)/state.db"), "\(first.text)")
        for (i, mac) in macs.enumerated() {
            let offer = Self.discover(port: dhcpPort, mac: mac, xid: 0x0100 + UInt32(i))
            #expect(offer?.bootFile == "once.ipxe", "machine \(i) got \(offer?.bootFile ?? "no answer")")
        }
        kill(first.process.processIdentifier, SIGKILL)
        first.process.waitUntilExit()

        let second = ServerProcess(args)
        defer { second.stop() }
        let ready = try second.startReady()
        dhcpPort = try ready.port("proxydhcp")
        let httpPort = try ready.port("http")
        #expect(second.waitFor("clients=3"), "the store reports what it loaded:\n\(second.text)")
        // The script the first server generated for machine 1, served by the second.
        // The key the first server made beside its state file; the second signs with it too,
        // so a URL handed out before the restart still opens the machine's script.
        let key = try ScriptKeyFile(reading: dir.appendingPathComponent("state.db.script-key").path)
        let script = try runTool("/usr/bin/curl", ["-sS", key.scriptURL("http://127.0.0.1:\(httpPort)", mac: "02:77:01:00:00:01")]).output
        #expect(script.contains("kernel http://10.0.0.1/vmlinuz auto=true"), "\(script)")
        for (i, mac) in macs.enumerated() {
            let offer = Self.discover(port: dhcpPort, mac: mac, xid: 0x0200 + UInt32(i))
            #expect(offer != nil, "machine \(i): no answer")
        }
        let again = try runTool("/usr/bin/curl", ["-sS", key.scriptURL("http://127.0.0.1:\(httpPort)", mac: "02:77:01:00:00:02")]).output
        #expect(again.contains("was installed; booting from disk") && !again.contains("kernel"), "\(again)")
    }

    @Test func withoutAStoreItSaysStateIsInMemoryOnly() throws {
        let server = ServerProcess(["serve", "--listen", "127.0.0.1", "--no-dhcp", "--no-tftp", "--http-port", "0"])
        try server.start()
        defer { server.stop() }
        #expect(server.waitFor("state is kept in memory only"), "\(server.text)")
    }

    func refuses(_ args: [String], saying needle: String) throws {
        let p = ServerProcess(args)
        let status = try p.runToEnd(timeout: 30)
        #expect(status != 0, "started with \(args):\n\(p.text)")
        #expect(p.text.contains(needle), "message for \(args) lacks '\(needle)':\n\(p.text)")
        #expect(!p.text.contains("secret"), "a password reached the output:\n\(p.text)")
    }

    @Test func aStateThatCannotBeUsedIsAStartError() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = ["serve", "--listen", "127.0.0.1", "--no-dhcp", "--no-tftp", "--http-port", "0"]
        let garbage = dir.appendingPathComponent("garbage.db")
        try Data(repeating: 0x41, count: 4096).write(to: garbage)
        try refuses(base + ["--state", garbage.path], saying: "state store \(garbage.path): not a usable SQLite database")
        try refuses(base + ["--state", dir.path], saying: "is a directory")
        try refuses(base + ["--state", "postgres://localhost/bootpolicy"], saying: "no user (postgres://USER@localhost/database)")
        try refuses(base + ["--state", "postgres://u:secret@127.0.0.1:\(freePort())/bootpolicy"], saying: "cannot connect: Connection refused")

        let config = dir.appendingPathComponent("c.yaml")
        try "state:\n  ttl: -5\n".write(to: config, atomically: true, encoding: .utf8)
        try refuses(base + ["--config", config.path], saying: "state.ttl must be a positive number")
        try "state:\n  sync: sometimes\n  store: x.db\n".write(to: config, atomically: true, encoding: .utf8)
        try refuses(base + ["--config", config.path], saying: "state.sync must be full or normal")
        try "state:\n  stor: x.db\n".write(to: config, atomically: true, encoding: .utf8)
        try refuses(base + ["--config", config.path], saying: "unknown key 'state.stor'")

        // One server per file: a second one on the same file is refused while the first runs.
        let db = dir.appendingPathComponent("shared.db").path
        let first = ServerProcess(["serve", "--listen", "127.0.0.1", "--no-dhcp", "--no-tftp", "--http-port", "0", "--state", db])
        defer { first.stop() }
        try first.startReady()
        try refuses(base + ["--state", db], saying: "is in use by another bootpolicy (pid \(first.process.processIdentifier))")
    }
}
