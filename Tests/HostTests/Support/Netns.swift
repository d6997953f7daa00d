import Foundation
import TestSupport

/// Two network namespaces joined by a veth pair, made for one test and removed by `teardown`
/// (also from deinit). Nothing in them can reach the host's networks.
final class NetnsPair {
    let server: String, client: String
    let serverIf: String, clientIf: String
    let serverAddress: String, clientAddress: String

    static var available: Bool {
        getuid() == 0 && (FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") || FileManager.default.isExecutableFile(atPath: "/sbin/ip"))
    }
    static var requirement: Requirement { Requirement(available, "needs root and iproute2 for network namespaces (apt-get install -y iproute2)") }

    init(tag: String, subnet: Int, clientMAC: String? = nil) throws {
        server = "bp-\(tag)-srv"; client = "bp-\(tag)-cli"
        serverIf = "bp\(tag.prefix(6))s"; clientIf = "bp\(tag.prefix(6))c"
        serverAddress = "192.168.\(subnet).1"; clientAddress = "192.168.\(subnet).10"
        teardown()
        try ip("netns", "add", server)
        try ip("netns", "add", client)
        try ip("link", "add", serverIf, "type", "veth", "peer", "name", clientIf)
        try ip("link", "set", serverIf, "netns", server)
        try ip("link", "set", clientIf, "netns", client)
        if let clientMAC { try ip("-n", client, "link", "set", "dev", clientIf, "address", clientMAC) }
        for (ns, ifname, addr) in [(server, serverIf, serverAddress), (client, clientIf, clientAddress)] {
            try ip("-n", ns, "addr", "add", addr + "/24", "dev", ifname)
            try ip("-n", ns, "link", "set", ifname, "up")
            try ip("-n", ns, "link", "set", "lo", "up")
        }
    }

    deinit { teardown() }

    func teardown() {
        _ = try? runTool("/usr/sbin/ip", ["netns", "del", server])
        _ = try? runTool("/usr/sbin/ip", ["netns", "del", client])
    }

    private func ip(_ args: String...) throws {
        let r = try runTool("/usr/sbin/ip", args)
        guard r.status == 0 else { throw NetnsError(message: "ip \(args.joined(separator: " ")): \(r.output)") }
    }

    /// Runs a command inside the client namespace.
    func inClient(_ args: [String], timeout: Double = 30) throws -> (status: Int32, output: String) {
        try runTool("/usr/sbin/ip", ["netns", "exec", client] + args, timeout: timeout)
    }

    /// Broadcasts one DHCP message from the client side (port 68) to port 67 and returns the
    /// hex of the first reply, or "" when none came within `wait` seconds.
    func dhcpExchange(hex: String, port: Int = 67, to: String = "255.255.255.255", wait: Double = 2) throws -> String {
        let script = """
            import socket, sys, binascii, time
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"\(clientIf)")
            s.bind(("0.0.0.0", 68))
            s.sendto(binascii.unhexlify(sys.argv[1]), ("\(to)", \(port)))
            s.settimeout(\(wait))
            try:
                data, addr = s.recvfrom(4096)
                print(binascii.hexlify(data).decode())
            except socket.timeout:
                print("")
            """
        let r = try inClient(["python3", "-c", script, hex], timeout: wait + 10)
        return r.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

struct NetnsError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
