import Foundation
import Protocols
import Testing
import TestSupport

/// Full DHCP against real clients, each in a namespace pair of its own: busybox udhcpc, ISC
/// dhclient and systemd-networkd get an address from the range, renew it, and get the same
/// one back after the server is killed with -9 and started again on the same SQLite file.
/// Durability is what makes the last step discriminating: after the restart another client
/// asks first, and must not be given the address the real client holds.
@Suite(.serialized, .requires(NetnsPair.requirement))
struct FullDHCPClientTests {
    /// One namespace pair, its state file and the scripts the clients run.
    final class Rig {
        let net: NetnsPair
        let dir: URL
        let subnet: Int
        var server: ServerProcess?
        var clients: [Process] = []

        init(tag: String, subnet: Int, mac: String) throws {
            net = try NetnsPair(tag: tag, subnet: subnet, clientMAC: mac)
            self.subnet = subnet
            // The client starts with no address: it is the server's to give.
            _ = try net.inClient(["ip", "addr", "flush", "dev", net.clientIf])
            dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-full-\(tag)-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        }

        func startServer(ping: Bool = false) throws {
            let s = ServerProcess(["serve", "--interface", net.serverIf, "--no-tftp", "--no-http", "--dhcp-port", "67",
                                   "--state", dir.appendingPathComponent("state.db").path, "--no-proxy"] + (ping ? [] : ["--no-ping"]) + [
                                   "--dhcp-range", "192.168.\(subnet).100,192.168.\(subnet).150,255.255.255.0,20s"])
            s.process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            s.process.arguments = ["netns", "exec", net.server, ServerProcess.binary.path] + (s.process.arguments ?? [])
            server = s
            try s.startReady()
        }

        /// SIGKILL, no chance to flush anything: what was acknowledged must already be on disk.
        func killServer() {
            guard let s = server else { return }
            s.signal(SIGKILL)
            s.process.waitUntilExit()
            server = nil
        }

        /// Starts `args` in the client namespace in the background (killed by PID in teardown).
        @discardableResult
        func background(_ args: [String], log: String) throws -> Process {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            // The test runner blocks most signals and a child inherits the mask: unblocked
            // first, or udhcpc never sees SIGUSR1 and no client sees SIGTERM.
            p.arguments = ["netns", "exec", net.client, "python3", "-c",
                           "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execvp(sys.argv[1], sys.argv[1:])"] + args
            let out = FileHandle(forWritingAtPath: dir.appendingPathComponent(log).path) ?? {
                FileManager.default.createFile(atPath: dir.appendingPathComponent(log).path, contents: nil)
                return FileHandle(forWritingAtPath: dir.appendingPathComponent(log).path)!
            }()
            p.standardOutput = out
            p.standardError = out
            try p.run()
            clients.append(p)
            return p
        }

        func stopClients() {
            for p in clients where p.isRunning {
                kill(p.processIdentifier, SIGTERM)
                let deadline = Date().addingTimeInterval(5)
                while p.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
                if p.isRunning { kill(p.processIdentifier, SIGKILL) }
                p.waitUntilExit()
            }
            clients.removeAll()
        }

        func file(_ name: String) -> String {
            (try? String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)) ?? ""
        }

        func write(_ name: String, _ text: String) throws -> String {
            let url = dir.appendingPathComponent(name)
            try text.write(to: url, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: url.path)
            return url.path
        }

        /// The client's IPv4 address on its veth, or nil.
        func clientAddress() -> String? {
            let out = (try? net.inClient(["ip", "-4", "-o", "addr", "show", "dev", net.clientIf]).output) ?? ""
            guard let r = out.range(of: "inet ") else { return nil }
            return String(out[r.upperBound...].prefix { $0 != "/" })
        }

        /// Another machine's DISCOVER (a MAC no real client uses): the address it is offered.
        func otherClientOffer() throws -> IPv4Address? {
            var m = DHCPMessage(op: .request, xid: 0xFD00_0001, flags: 0x8000, chaddr: [0x52, 0x54, 0x00, 0xEE, 0xEE, UInt8(subnet)])
            m.messageType = .discover
            let hex = m.bytes.map { String(format: "%02x", $0) }.joined()
            let reply = try net.dhcpExchange(hex: hex, wait: 3)
            guard !reply.isEmpty else { return nil }
            return try DHCPMessage(bytes: Array(Data(hexString: reply))).yiaddr
        }

        /// The client stopped, the server killed with -9 and started again on the same file;
        /// then another machine asks first and must not be offered `held` (the real client's).
        func killAndRestart(holding held: String?) throws {
            stopClients()
            killServer()
            try startServer()
            let other = try otherClientOffer()
            #expect(other != nil && other?.description != held,
                    "another client was offered \(other?.description ?? "nothing"); the lease of \(held ?? "-") was lost")
        }

        func teardown() {
            stopClients()
            server?.stop()
            net.teardown()
            try? FileManager.default.removeItem(at: dir)
        }
    }

    /// Bounded wait for `condition`.
    static func within(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return condition()
    }

    func inRange(_ address: String?, _ subnet: Int) -> Bool {
        guard let a = address.flatMap(IPv4Address.init) else { return false }
        return IPv4Address("192.168.\(subnet).100")! <= a && a <= IPv4Address("192.168.\(subnet).150")!
    }

    static let udhcpc = Requirement.tool("udhcpc", install: "apt-get install -y udhcpc")
    static let dhclient = Requirement.tool("dhclient", install: "apt-get install -y isc-dhcp-client")
    static let networkd = Requirement(FileManager.default.isExecutableFile(atPath: "/lib/systemd/systemd-networkd")
                                      && Requirement.path(of: "unshare") != nil,
                                      "systemd-networkd is not installed (apt-get install -y systemd)")

    /// A machine that configured an address of the range by hand: the ICMP echo before the
    /// offer finds it, the address is quarantined and the next one offered.
    @Test func anAddressInUseIsNotOffered() throws {
        let rig = try Rig(tag: "fdp", subnet: 94, mac: "52:54:00:94:00:01")
        defer { rig.teardown() }
        _ = try rig.net.inClient(["ip", "addr", "add", "192.168.94.100/24", "dev", rig.net.clientIf])
        try rig.startServer(ping: true)
        let offered = try rig.otherClientOffer()
        #expect(offered == IPv4Address(192, 168, 94, 101), "offered \(offered?.description ?? "nothing"):\n\(rig.server?.text ?? "")")
        #expect(rig.server?.text.contains("192.168.94.100 answers ICMP echo but has no lease") == true, "\(rig.server?.text ?? "")")
    }

    @Test(.requires(udhcpc)) func udhcpcGetsRenewsAndKeepsItsAddress() throws {
        let rig = try Rig(tag: "fdu", subnet: 91, mac: "52:54:00:91:00:01")
        defer { rig.teardown() }
        try rig.startServer()
        let script = try rig.write("udhcpc.sh", """
            #!/bin/sh
            case "$1" in
              bound|renew) ip addr flush dev "$interface"; ip addr add "$ip/${mask:-24}" dev "$interface" ;;
              deconfig) ip addr flush dev "$interface" ;;
            esac
            # Logged once the address is configured: the test reads the event, then the address.
            echo "$1 ip=$ip" >> \(rig.dir.path)/udhcpc.events
            exit 0
            """)
        let client = try rig.background(["udhcpc", "-f", "-i", rig.net.clientIf, "-t", "5", "-T", "2", "-s", script], log: "udhcpc.log")
        #expect(Self.within(15) { rig.file("udhcpc.events").contains("bound ip=") }, "no lease:\n\(rig.file("udhcpc.log"))\n\(rig.server?.text ?? "")")
        let first = rig.clientAddress()
        #expect(inRange(first, 91), "\(first ?? "none")")
        // SIGUSR1: renew now (RENEWING, unicast to the server, ciaddr set).
        // Sent again if a signal arrives while udhcpc is still in its bound script (bounded).
        var renewed = false
        for _ in 0..<5 where !renewed {
            Thread.sleep(forTimeInterval: 0.5)
            kill(client.processIdentifier, SIGUSR1)
            renewed = Self.within(2) { rig.file("udhcpc.events").contains("renew ip=\(first ?? "-")") }
        }
        #expect(renewed, "\(rig.file("udhcpc.log"))")
        #expect(rig.server?.text.contains("(renewing)") == true, "\(rig.server?.text ?? "")")

        try rig.killAndRestart(holding: first)
        _ = try rig.net.inClient(["ip", "addr", "flush", "dev", rig.net.clientIf])
        try rig.background(["udhcpc", "-f", "-q", "-i", rig.net.clientIf, "-t", "5", "-T", "2", "-s", script], log: "udhcpc2.log")
        #expect(Self.within(15) { rig.file("udhcpc.events").components(separatedBy: "bound ip=").count >= 3 }, "\(rig.file("udhcpc2.log"))")
        #expect(rig.clientAddress() == first, "after kill -9: \(rig.clientAddress() ?? "none"), before: \(first ?? "none")")
    }

    @Test(.requires(dhclient)) func dhclientGetsRenewsAndKeepsItsAddress() throws {
        let rig = try Rig(tag: "fdd", subnet: 92, mac: "52:54:00:92:00:01")
        defer { rig.teardown() }
        try rig.startServer()
        let script = try rig.write("dhclient.sh", """
            #!/bin/sh
            case "$reason" in
              BOUND|RENEW|REBIND|REBOOT) ip addr flush dev "$interface"; ip addr add "$new_ip_address/24" dev "$interface" ;;
              EXPIRE|FAIL|RELEASE|STOP) ip addr flush dev "$interface" ;;
            esac
            # Logged once the address is configured: the test reads the event, then the address
            # (logged first, a check between flush and add saw no address at all: CI, stop 34).
            echo "$reason ip=$new_ip_address" >> \(rig.dir.path)/dhclient.events
            exit 0
            """)
        let leases = rig.dir.appendingPathComponent("dhclient.leases").path
        let pid = rig.dir.appendingPathComponent("dhclient.pid").path
        // -d: stays in the foreground (killed by its PID); renews by itself at T1 (10 s here).
        try rig.background(["dhclient", "-d", "-v", "-sf", script, "-lf", leases, "-pf", pid, rig.net.clientIf], log: "dhclient.log")
        #expect(Self.within(15) { rig.file("dhclient.events").contains("BOUND ip=") }, "no lease:\n\(rig.file("dhclient.log"))")
        let first = rig.clientAddress()
        #expect(inRange(first, 92), "\(first ?? "none")")
        #expect(Self.within(20) { rig.file("dhclient.events").contains("RENEW ip=\(first ?? "-")") }, "no renewal:\n\(rig.file("dhclient.log"))")
        #expect(rig.server?.text.contains("(renewing)") == true, "\(rig.server?.text ?? "")")

        try rig.killAndRestart(holding: first)
        // dhclient starts from its lease file: INIT-REBOOT, which a server without a record
        // of the lease must not answer (RFC 2131 §4.3.2), so an ACK here is the record.
        try rig.background(["dhclient", "-d", "-v", "-sf", script, "-lf", leases, "-pf", pid, rig.net.clientIf], log: "dhclient2.log")
        #expect(Self.within(15) { rig.file("dhclient.events").contains("REBOOT ip=\(first ?? "-")") }, "\(rig.file("dhclient2.log"))\n\(rig.server?.text ?? "")")
        #expect(rig.server?.text.contains("(init-reboot)") == true)
        #expect(rig.clientAddress() == first)
    }

    @Test(.requires(networkd)) func systemdNetworkdGetsRenewsAndKeepsItsAddress() throws {
        let rig = try Rig(tag: "fdn", subnet: 93, mac: "52:54:00:93:00:01")
        defer { rig.teardown() }
        try rig.startServer()
        // networkd for the client namespace alone: a private mount namespace with its own
        // /run/systemd and an empty /etc/systemd/network, so it sees only this test's link and
        // config; /sys read-only there tells it no udev will initialise links (as in a
        // container). Nothing of the host's networkd or /sys changes.
        let script = try rig.write("networkd.sh", """
            #!/bin/sh
            set -e
            mount -t tmpfs tmpfs /run/systemd
            mount -t tmpfs tmpfs /etc/systemd/network
            mount -o remount,bind,ro /sys
            mkdir -p /run/systemd/network /run/systemd/netif
            cat > /run/systemd/network/50-bp.network <<NET
            [Match]
            Name=\(rig.net.clientIf)
            [Network]
            DHCP=ipv4
            IPv6AcceptRA=no
            LinkLocalAddressing=no
            NET
            chown -R systemd-network:systemd-network /run/systemd/netif
            exec /lib/systemd/systemd-networkd
            """)
        let unshare = Requirement.path(of: "unshare") ?? "/usr/bin/unshare"
        try rig.background([unshare, "--mount", "--propagation", "private", script], log: "networkd.log")
        #expect(Self.within(15) { rig.clientAddress() != nil }, "no lease:\n\(rig.file("networkd.log"))")
        let first = rig.clientAddress()
        #expect(inRange(first, 93), "\(first ?? "none")")
        // networkd renews at T1 (10 s of the 20 s lease).
        #expect(Self.within(20) { rig.server?.text.contains("(renewing)") == true }, "no renewal:\n\(rig.server?.text ?? "")")

        try rig.killAndRestart(holding: first)
        _ = try rig.net.inClient(["ip", "addr", "flush", "dev", rig.net.clientIf])
        try rig.background([unshare, "--mount", "--propagation", "private", script], log: "networkd2.log")
        #expect(Self.within(15) { rig.clientAddress() != nil }, "no lease after restart:\n\(rig.file("networkd2.log"))")
        #expect(rig.clientAddress() == first)
    }
}
