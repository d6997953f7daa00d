import Foundation
import Testing

/// `bootpolicy serve` refuses to start, with a message that says what to fix, on bad input.
@Suite struct ServeStartupTests {
    func refuses(_ args: [String], saying needle: String) throws {
        let p = ServerProcess(args)
        let status = try p.runToEnd(timeout: 30)
        #expect(status != 0, "started with \(args):\n\(p.text)")
        #expect(p.text.contains(needle), "message for \(args) lacks '\(needle)':\n\(p.text)")
    }

    /// A socket of `type` bound to a free loopback port, for a server to find taken.
    func holdPort(_ type: __socket_type) throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(type.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let port = freePort()
        addr.sin_port = UInt16(port).bigEndian
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        try #require(rc == 0, "could not hold port \(port)")
        return (fd, port)
    }

    @Test func badFlag() throws {
        try refuses(["serve", "--listen", "127.0.0.1", "--frobnicate"], saying: "Unknown option '--frobnicate'")
        try refuses(["serve", "--listen", "127.0.0.1", "--no-tftp", "--log-format", "xml"], saying: "--log-format must be text or json")
    }

    @Test func unknownInterface() throws {
        try refuses(["serve", "--interface", "bp-nosuch0", "--no-tftp"], saying: "--interface bp-nosuch0: no such interface")
    }

    /// Full DHCP: every bad range, reservation or combination is a refusal naming it.
    @Test func badFullDHCPSettings() throws {
        let base = ["serve", "--listen", "127.0.0.1", "--no-tftp", "--no-http", "--dhcp-port", "0", "--no-ping"]
        try refuses(base + ["--no-proxy"], saying: "--no-proxy answers only the subnets of full-DHCP ranges")
        try refuses(base + ["--dhcp-range", "127.77.0.10"], saying: "expected START,END[,NETMASK][,LEASE]")
        try refuses(base + ["--dhcp-range", "127.77.0.20,127.77.0.10,/8"], saying: "127.77.0.20 is after 127.77.0.10")
        try refuses(base + ["--dhcp-range", "127.77.0.10,127.77.0.20,/8,5s"], saying: "shorter than the minimum")
        try refuses(base + ["--dhcp-range", "127.77.0.10,127.77.0.20,255.0.255.0"], saying: "not a contiguous netmask")
        // No interface here is on 10.99.0.0: its netmask cannot be guessed.
        try refuses(base + ["--dhcp-range", "10.99.0.10,10.99.0.20"], saying: "its netmask is unknown")
        try refuses(base + ["--dhcp-range", "127.77.0.10,127.77.0.20,/8", "--dhcp-range", "127.78.0.10,127.78.0.20,/8"],
                    saying: "overlaps")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-fullcfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = dir.appendingPathComponent("c.yaml")
        try """
            dhcp:
              ranges:
                - range: 127.77.0.10,127.77.0.20,/8
                  routers: [127.0.0.1, nope]
            """.write(to: config, atomically: true, encoding: .utf8)
        try refuses(base + ["--config", config.path], saying: "routers: 'nope' is not an IPv4 address")
        try """
            dhcp:
              ranges: [{range: "127.77.0.10,127.77.0.20,/8"}]
              reservations: [{mac: "52:54:00:00:00:01", address: 10.1.1.1}]
            """.write(to: config, atomically: true, encoding: .utf8)
        try refuses(base + ["--config", config.path], saying: "'10.1.1.1' is not an address in a served subnet")
        try """
            dhcp:
              ranges: [{range: "127.77.0.10,127.77.0.20,/8", gateway: 127.0.0.1}]
            """.write(to: config, atomically: true, encoding: .utf8)
        try refuses(base + ["--config", config.path], saying: "unknown key 'dhcp.ranges[0].gateway'")
    }

    /// Found by ConfigFuzz: Yams reads "1:2:3" as a base-60 integer with unchecked
    /// arithmetic; one too large trapped the loader (at start, or at a SIGHUP reload).
    @Test func anOversizedBase60NumberIsRefusedNotATrap() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-b60-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = dir.appendingPathComponent("c.yaml")
        try "tftp:\n  port: 3074457345618258602:1:1\n".write(to: config, atomically: true, encoding: .utf8)
        try refuses(["serve", "--listen", "127.0.0.1", "--no-tftp", "--config", config.path], saying: "c.yaml:2: '3074457345618258602:1:1' is a base-60 number")
        // A MAC written without quotes is six small parts: still fine to load.
        try "dhcp:\n  reservations: [{mac: 52:54:00:12:34:56, address: 127.77.0.9}]\n  ranges: [{range: \"127.77.0.10,127.77.0.20,/8\"}]\n"
            .write(to: config, atomically: true, encoding: .utf8)
        let p = ServerProcess(["check", "--config", config.path, "--no-run"])
        _ = try p.runToEnd(timeout: 30)
        #expect(!p.text.contains("base-60"), "\(p.text)")
    }

    @Test func nowhereToServe() throws {
        try refuses(["serve", "--no-tftp"], saying: "--interface NAME")
    }

    @Test func tftpNeedsRoot() throws {
        try refuses(["serve", "--listen", "127.0.0.1"], saying: "--tftp-root")
    }

    @Test func rootsMustBeDirectories() throws {
        try refuses(["serve", "--listen", "127.0.0.1", "--no-dhcp", "--no-tftp", "--http-port", "0", "--http-root", "/nonexistent-bp"],
                    saying: "--http-root: root '/nonexistent-bp' is not an existing directory")
        try refuses(["serve", "--listen", "127.0.0.1", "--no-dhcp", "--no-http", "--tftp-port", "0", "--tftp-root", "/etc/hostname"],
                    saying: "--tftp-root: root '/etc/hostname' is not an existing directory")
    }

    @Test func portInUse() throws {
        // Hold a TCP port, then ask bootpolicy to serve HTTP on it.
        let (fd, port) = try holdPort(SOCK_STREAM)
        defer { close(fd) }
        try #require(listen(fd, 1) == 0)
        try refuses(["serve", "--listen", "127.0.0.1", "--no-tftp", "--no-dhcp", "--http-port", "\(port)"],
                    saying: "http: cannot bind 127.0.0.1:\(port): Address already in use (errno 98)")
    }

    /// tftp.threads (1-64) and dhcp.threads (1-16): just outside either end refuses to start,
    /// naming the key.
    @Test(arguments: [("tftp", 64), ("dhcp", 16)]) func threadsOutOfRange(section: String, most: Int) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-threads-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = dir.appendingPathComponent("bp.yaml")
        let only = section == "tftp"
            ? ["--no-dhcp", "--tftp-root", dir.path, "--tftp-port", "0"]
            : ["--no-tftp", "--dhcp-port", "0"]
        for threads in [0, most + 1] {
            try "\(section):\n  threads: \(threads)\n".write(to: config, atomically: true, encoding: .utf8)
            try refuses(["serve", "--config", config.path, "--listen", "127.0.0.1", "--no-http"] + only,
                        saying: "\(section).threads must be between 1 and \(most) (got \(threads))")
        }
    }

    /// A port out of range in the config file is refused, naming the key (a flag is checked by
    /// the argument parser); it used to trap at the bind.
    @Test func configPortOutOfRange() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-ports-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = dir.appendingPathComponent("bp.yaml")
        for (yaml, key) in [("http: { port: 70000 }", "http.port: port 70000"), ("dhcp: { ports: [0, -1] }", "dhcp.ports: port -1"),
                            ("tftp: { port: 65536 }", "tftp.port: port 65536")] {
            try yaml.write(to: config, atomically: true, encoding: .utf8)
            try refuses(["serve", "--config", config.path, "--listen", "127.0.0.1", "--tftp-root", dir.path],
                        saying: "\(key) is out of range (0-65535; 0 lets the kernel pick one)")
        }
        try refuses(["serve", "--listen", "127.0.0.1", "--no-tftp", "--http-port", "70000"], saying: "port 70000 is out of range")
    }

    @Test func tftpPortInUse() throws {
        // A UDP port held by another socket: TFTP must refuse, not share it silently.
        let (fd, port) = try holdPort(SOCK_DGRAM)
        defer { close(fd) }
        let root = FileManager.default.temporaryDirectory.path
        try refuses(["serve", "--listen", "127.0.0.1", "--no-dhcp", "--no-http", "--tftp-root", root, "--tftp-port", "\(port)"],
                    saying: "Address already in use")
    }

    @Test func brokenPolicyNamesFileAndLine() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-broken-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("broken.lua")
        try "return {\n  dhcp = function(req)\n    return { filename = \n  end,\n}\n".write(to: file, atomically: true, encoding: .utf8)
        try refuses(["serve", "--listen", "127.0.0.1", "--no-tftp", "--no-dhcp", "--http-port", "0", "--policy", file.path],
                    saying: "broken.lua:4:")
    }

    @Test func unknownPolicyName() throws {
        try refuses(["serve", "--listen", "127.0.0.1", "--no-tftp", "--policy", "no-such-policy"], saying: "shipped: arch-aware.lua, default.lua")
    }
}
