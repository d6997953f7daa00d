import Foundation
import Protocols

/// Writes the seed corpora for the fuzz targets: `FuzzSeeds OUTDIR FILE|DIR...`.
/// Captures (.pcap, .pcapng) are seeds for PcapFuzz as they are; their UDP payloads on the DHCP
/// ports become DHCPFuzz and PolicyFuzz inputs (with those targets' control bytes in front), on
/// port 69 TFTPFuzz inputs. YAML files are ConfigFuzz seeds. Hand-made inputs written here
/// cover what the fixtures do not hold: TFTP requests with options and names that try to
/// escape the root, HTTP requests with ranges, policies' query answers and encoded "..".
/// Nothing is committed: scripts/fuzz.sh runs this into an ignored folder before each run.
@main
enum FuzzSeeds {
    static var counts: [String: Int] = [:]
    static var out = ""

    static func write(_ target: String, _ bytes: [UInt8]) {
        let n = counts[target, default: 0]
        counts[target] = n + 1
        let dir = out + "/" + target
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: dir + "/seed-\(n)", contents: Data(bytes))
    }

    static func main() {
        let args = Array(CommandLine.arguments.dropFirst())
        guard let first = args.first else {
            FileHandle.standardError.write(Data("usage: FuzzSeeds OUTDIR FILE|DIR...\n".utf8))
            exit(2)
        }
        out = first
        var files: [String] = []
        for arg in args.dropFirst() {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: arg, isDirectory: &isDir) else { continue }
            if isDir.boolValue {
                let walker = FileManager.default.enumerator(atPath: arg)
                while let name = walker?.nextObject() as? String { files.append(arg + "/" + name) }
            } else {
                files.append(arg)
            }
        }
        for file in files.sorted() {
            guard let data = FileManager.default.contents(atPath: file) else { continue }
            let bytes = [UInt8](data)
            if file.hasSuffix(".pcap") || file.hasSuffix(".pcapng") {
                capture(bytes)
            } else if file.hasSuffix(".yaml") || file.hasSuffix(".yml") {
                write("config", bytes)
            } else if file.hasSuffix(".solicit.hex"), let solicit = Hex.decode(String(decoding: bytes, as: UTF8.self)) {
                dhcpv6(solicit)
            }
        }
        handMade()
        for (target, n) in counts.sorted(by: { $0.key < $1.key }) { print("\(target): \(n) seeds") }
    }

    /// A recorded DHCPv6 Solicit (fixtures/lab/v6): as it came, relayed, and as the Request,
    /// Renew, Release and 4011 follow-up that would come next, each boot-only and stateful.
    static func dhcpv6(_ solicit: [UInt8]) {
        guard let packet = try? DHCPv6Packet(bytes: solicit) else { return }
        var variants = [solicit]
        let relay = DHCPv6RelayMessage(type: .relayForward, hopCount: 0, linkAddress: IPv6Address("fd77::1")!,
                                       peerAddress: IPv6Address("fe80::5054:ff:fe79:2")!,
                                       options: DHCPv6Options([DHCPv6Option(code: DHCPv6OptionCode.interfaceID, value: Array("eth7".utf8))]))
        variants.append(DHCPv6Packet(relays: [relay], message: packet.message).bytes)
        let ours: [UInt8] = [0, 3, 0, 1, 0x52, 0x54, 0, 0x77, 0, 2]
        for type in [DHCPv6MessageType.request, .renew, .release, .decline, .confirm, .rebind, .informationRequest] {
            var m = packet.message
            m.type = type
            if [.request, .renew, .release, .decline].contains(type) { m.options.append(DHCPv6OptionCode.serverID, ours) }
            variants.append(m.bytes)
        }
        var rapid = packet.message
        rapid.options.append(DHCPv6OptionCode.rapidCommit, [])
        variants.append(rapid.bytes)
        for v in variants {
            for control: UInt8 in [0x08, 0x0a, 0x0e, 0x2a, 0x09] { write("dhcp6", [control] + v) }
        }
    }

    static func capture(_ bytes: [UInt8]) {
        write("pcap", bytes)
        guard let reader = try? PcapReader(bytes: bytes) else { return }
        for datagram in reader.datagrams {
            let ports = [datagram.sourcePort, datagram.destinationPort]
            if ports.contains(where: { [67, 68, 4011].contains($0) }) {
                let port4011: UInt8 = datagram.destinationPort == 4011 ? 1 : 0
                write("dhcp", [0x10 | port4011] + datagram.payload)
                write("dhcp", [0x52 | port4011] + datagram.payload)
                // Full DHCP too (bit 7): on the range's subnet, and on loopback's.
                write("dhcp", [0x90 | port4011] + datagram.payload)
                write("dhcp", [0x92 | port4011] + datagram.payload)
                if datagram.destinationPort == 67 || datagram.destinationPort == 4011 {
                    let length = [UInt8(datagram.payload.count >> 8), UInt8(datagram.payload.count & 0xFF)]
                    for chain: UInt8 in 0..<4 {
                        // The DHCP request, then TFTP and HTTP requests from the same (known) MAC.
                        write("policy", [chain, port4011 << 4] + length + datagram.payload
                              + [1, 0, 0, 0, 0, 0, 1, 0] + [2, 0, 0, 0, 0, 0, 0, 0])
                    }
                }
            }
            if ports.contains(69) { write("tftp", [0x05] + datagram.payload) }
        }
    }

    static func tftpRequest(_ opcode: UInt8, _ name: String, _ mode: String, _ options: [(String, String)]) -> [UInt8] {
        var bytes: [UInt8] = [0, opcode] + Array(name.utf8) + [0] + Array(mode.utf8) + [0]
        for (k, v) in options { bytes += Array(k.utf8) + [0] + Array(v.utf8) + [0] }
        return bytes
    }

    static func handMade() {
        // TFTP: control byte (limits), then the datagram.
        let names = ["undionly.kpxe", "/undionly.kpxe", "sub/ipxe.efi", "sub\\ipxe.efi", "inside", "secret",
                     "escape/secret", "../outside/secret", "sub/../../outside/secret", "fifo", "sub", "./undionly.kpxe"]
        for (i, name) in names.enumerated() {
            write("tftp", [UInt8(i & 0x1F)] + tftpRequest(1, name, "octet", [("tsize", "0"), ("blksize", "1468")]))
        }
        write("tftp", [0x0F] + tftpRequest(1, "undionly.kpxe", "octet", [("blksize", "65464"), ("windowsize", "64"), ("timeout", "5"), ("tsize", "0")]))
        write("tftp", [0x00] + tftpRequest(1, "undionly.kpxe", "netascii", [("blksize", "7"), ("blksize", "512")]))
        write("tftp", [0x03] + tftpRequest(1, "undionly.kpxe", "OCTET", [("windowsize", "65535"), ("timeout", "0")]))
        write("tftp", [0x00] + tftpRequest(2, "upload", "octet", []))
        write("tftp", [0x00, 0, 3, 0, 1] + Array("data".utf8))
        write("tftp", [0x00, 0, 4, 0, 1])
        write("tftp", [0x00, 0, 5, 0, 1] + Array("File not found".utf8) + [0])
        write("tftp", [0x00, 0, 6] + Array("blksize\u{0}1468\u{0}tsize\u{0}1500\u{0}".utf8))

        // HTTP: control byte 0 and bytes on the connection, or 1 and URI\nRANGE\nMETHOD.
        let requests = [
            "GET /ipxe.efi HTTP/1.1\r\nHost: 192.168.77.2\r\n\r\n",
            "GET /ipxe.efi HTTP/1.1\r\nHost: x\r\nRange: bytes=0-99\r\n\r\nHEAD /kernel HTTP/1.1\r\nRange: bytes=-10\r\n\r\n",
            "GET /sub/vmlinuz HTTP/1.0\r\nRange: bytes=3-\r\n\r\n",
            "GET /%2e%2e/outside/secret HTTP/1.1\r\n\r\n",
            "GET /escape/secret HTTP/1.1\r\n\r\nGET /secret HTTP/1.1\r\n\r\nGET /fifo HTTP/1.1\r\n\r\n",
            "GET /boot.ipxe?mac=52:54:00:77:00:01&arch=efi-x64 HTTP/1.1\r\n\r\n",
            "GET /x?policy=1&path=ipxe.efi HTTP/1.1\r\nRange: bytes=1400-1600\r\n\r\n",
            "GET /x?policy=1&content=%23!ipxe&type=text/plain&status=200 HTTP/1.1\r\n\r\n",
            "GET /x?policy=1&refuse=no&status=451 HTTP/1.1\r\n\r\n",
            "GET /x?policy=1&status=204&type=a%0d%0ab HTTP/1.1\r\n\r\n",
            "POST /api?policy=1&content=ok HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            "GET /healthz HTTP/1.1\r\n\r\n",
            "GET /empty HTTP/1.1\r\nRange: bytes=0-0\r\n\r\n",
        ]
        for request in requests { write("http", [0] + Array(request.utf8)) }
        for direct in ["/ipxe.efi\nbytes=0-\nGET", "/ipxe.efi%00.png\n\nGET", "/sub/../ipxe.efi\nbytes=-0\nHEAD",
                       "/x?policy=1&path=../outside/secret\nbytes=5-1\nGET", "\\escape\\secret\nbytes=0-1,2-3\nGET"] {
            write("http", [1] + Array(direct.utf8))
        }

        // Policy: requests made of fields only.
        write("policy", [1, 1, 0, 0, 0, 0, 0, 0, 0, 0] + [2, 0x10, 0, 1, 2, 3, 4, 5, 6, 7])
        write("policy", [2, 0, 0, 0, 0x12, 0x00, 0x07, 1, 0, 0, 0, 0, 0, 0, 0])

        // Config: a few shapes the examples do not have.
        for text in ["{}", "listen: 127.0.0.1\n", "policies:\n  - file: p.lua\n    config: {a: [1, 2.5, true, null]}\n",
                     "tftp: {root: tftp, port: 69}\nhttp: {root: /srv, port: 8080}\nstate: {store: state.db}\n",
                     "dhcp:\n  ports: [67, 4011]\nlimits: {instructions: 1000, time_ms: 5}\n", "bogus: 1\n", "- a\n- b\n"] {
            write("config", Array(text.utf8))
        }
    }
}
