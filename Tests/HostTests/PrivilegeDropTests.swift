import Foundation
import Protocols
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Started as root, `serve` gives root up before it opens anything (Privileges.swift): the
/// process serving is the user, with CAP_NET_BIND_SERVICE and CAP_NET_RAW only, and DHCP,
/// TFTP, HTTP and SIGHUP reload work as that user.
@Suite struct PrivilegeDropTests {
    static let root = Requirement.root(for: "starting serve as root to see it give root up")

    /// "Uid:", "CapEff:", "CapBnd:" and "NoNewPrivs:" of /proc/PID/status.
    static func status(_ pid: Int32) -> (uids: [UInt32], capEff: UInt64, capBnd: UInt64, noNewPrivs: Bool)? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        var uids: [UInt32] = []
        var caps: UInt64 = .max
        var bounding: UInt64 = .max
        var noNewPrivs = false
        for line in text.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            if fields.first == "Uid:" { uids = fields.dropFirst().compactMap { UInt32($0) } }
            if fields.first == "CapEff:", let last = fields.last { caps = UInt64(last, radix: 16) ?? .max }
            if fields.first == "CapBnd:", let last = fields.last { bounding = UInt64(last, radix: 16) ?? .max }
            if fields.first == "NoNewPrivs:" { noNewPrivs = fields.last == "1" }
        }
        return (uids, caps, bounding, noNewPrivs)
    }

    /// A folder the user can read (the test's temporary folders are root's 0700 otherwise).
    static func folder(owner: uid_t? = nil) throws -> URL {
        let dir = URL(fileURLWithPath: "/tmp/bp-priv-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        chmod(dir.path, 0o755)
        if let owner { chown(dir.path, owner, gid_t(UInt32.max)) }
        return dir
    }

    @Test(.requires(Self.root)) func rootIsGivenUpBeforeAnythingIsServed() throws {
        guard let nobody = getpwnam("nobody")?.pointee else { Issue.record("no user nobody"); return }
        let tftp = try Self.folder()
        let stateDir = try Self.folder(owner: nobody.pw_uid)
        defer { try? FileManager.default.removeItem(at: tftp); try? FileManager.default.removeItem(at: stateDir) }
        try "hello from the tftp root\n".write(to: tftp.appendingPathComponent("hello.txt"), atomically: true, encoding: .utf8)
        chmod(tftp.appendingPathComponent("hello.txt").path, 0o644)
        let state = stateDir.appendingPathComponent("state.db").path

        let server = ServerProcess(["serve", "--listen", "127.0.0.1", "--dhcp-port", "0", "--tftp-port", "0", "--http-port", "0",
                                    "--tftp-root", tftp.path, "--state", state, "--user", "nobody"])
        defer { server.stop() }
        let ready = try server.startReady(abstractNotify: true)
        let pid = server.process.processIdentifier

        // The same process (exec keeps the PID), now nobody in every uid, two capabilities.
        let status = try #require(Self.status(pid), "no /proc/\(pid)/status")
        #expect(status.uids.count == 4 && status.uids.allSatisfy { $0 == nobody.pw_uid }, "Uid: \(status.uids)")
        #expect(status.capEff == (1 << 10) | (1 << 13), "CapEff: \(String(status.capEff, radix: 16))")
        #expect(status.capBnd == (1 << 10) | (1 << 13), "CapBnd: \(String(status.capBnd, radix: 16))")
        #expect(status.noNewPrivs, "NoNewPrivs")
        #expect(server.waitFor("gave up root for user nobody"), "\(server.text)")
        #expect(server.text.contains("capabilities kept: cap_net_bind_service,cap_net_raw"), "\(server.text)")

        // DHCP: the default policy's answer to iPXE.
        let offer = ServeStateTests.discover(port: try ready.port("proxydhcp"), mac: [0x52, 0x54, 0, 0x77, 0, 1], xid: 0x5eed)
        #expect(offer?.bootFile == "bootstrap.ipxe", "\(String(describing: offer))\n\(server.text)")
        // TFTP, read as nobody from the root.
        let got = try runTool("/usr/bin/curl", ["-sS", "--max-time", "10", "tftp://127.0.0.1:\(try ready.port("tftp"))/hello.txt"])
        #expect(got.output == "hello from the tftp root\n", "\(got)")
        // HTTP.
        let metrics = try runTool("/usr/bin/curl", ["-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}",
                                                    "http://127.0.0.1:\(try ready.port("http"))/metrics"])
        #expect(metrics.output == "200", "\(metrics)")
        // The state database was made by nobody, after root was gone.
        var info = stat()
        #expect(stat(state, &info) == 0 && info.st_uid == nobody.pw_uid, "state.db owner \(info.st_uid)")
        // SIGHUP rereads config and policies as nobody.
        server.signal(SIGHUP)
        #expect(server.waitFor("policies reloaded (SIGHUP)", timeout: 10), "\(server.text)")
        #expect(server.process.isRunning)
    }

    @Test(.requires(Self.root)) func whatTheUserCannotReadIsAnErrorThatSaysWhoItRunsAs() throws {
        // Root's own 0700 folder: root reads the config before giving root up, nobody cannot.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-priv-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        chmod(dir.path, 0o700)
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = dir.appendingPathComponent("bootpolicy.yaml")
        try "listen: 127.0.0.1\ntftp:\n  enabled: false\nhttp:\n  enabled: false\ndhcp:\n  ports: [0]\n".write(to: config, atomically: true, encoding: .utf8)
        let server = ServerProcess(["serve", "--config", config.path, "--user", "nobody"])
        let status = try server.runToEnd(timeout: 30)
        #expect(status != 0, "\(server.text)")
        #expect(server.text.contains("bootpolicy.yaml: cannot read"), "\(server.text)")
        #expect(server.text.contains("gave root up for user nobody"), "\(server.text)")
    }

    @Test(.requires(Self.root)) func anUnknownUserIsRefusedWhileStillRoot() throws {
        let server = ServerProcess(["serve", "--listen", "127.0.0.1", "--no-tftp", "--no-http", "--dhcp-port", "0", "--user", "bp-no-such-user"])
        let status = try server.runToEnd(timeout: 30)
        #expect(status != 0)
        #expect(server.text.contains("--user bp-no-such-user: no such user"), "\(server.text)")
    }
}
