import CLinux
import Foundation
import Testing
@testable import Protocols

/// Shared helpers for the DHCP tests: the capture fixtures and message builders.
enum Captures {
    /// Tests/ProtocolsTests/Fixtures/captures inside the test bundle.
    static var bundled: URL {
        Bundle.module.resourceURL!.appendingPathComponent("Fixtures/captures")
    }

    /// The same folder in the source tree (for regenerating golden files).
    static var sourceTree: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/captures")
    }

    /// Reference captures not copied into the project (licence): the `shared/` folder beside
    /// the checkout (as on the developers' machines and in CI), else /work/shared.
    static let shared: URL = {
        let beside = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/fixtures/captures")
        if FileManager.default.fileExists(atPath: beside.path) { return beside }
        return URL(fileURLWithPath: "/work/shared/fixtures/captures")
    }()

    static func files(in directory: URL) -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".pcap") || $0.hasSuffix(".pcapng") }.sorted()
            .map { directory.appendingPathComponent($0) }
    }

    static func isDHCP(_ d: PcapReader.Datagram) -> Bool {
        let ports: Set<UInt16> = [67, 68, 4011]
        return ports.contains(d.sourcePort) || ports.contains(d.destinationPort)
    }

    static func dhcpDatagrams(_ url: URL) throws -> [PcapReader.Datagram] {
        let bytes = [UInt8](try Data(contentsOf: url))
        return try PcapReader(bytes: bytes).datagrams.filter(isDHCP)
    }

    /// Every DHCP payload from every capture we can read (bundled + shared), for fuzzing.
    static func allPayloads() throws -> [[UInt8]] {
        var payloads: [[UInt8]] = []
        for url in files(in: bundled) + files(in: shared) {
            payloads += try dhcpDatagrams(url).map(\.payload)
        }
        return payloads
    }
}

enum Build {
    static let mac: [UInt8] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]

    /// A PXE DISCOVER as firmware sends it.
    static func discover(
        arch: UInt16? = 0, vendorClass: String? = "PXEClient:Arch:00000:UNDI:002001",
        extra: [(UInt8, [UInt8])] = [], xid: UInt32 = 0x1234_5678
    ) -> DHCPMessage {
        var message = DHCPMessage(op: .request, xid: xid, flags: 0x8000, chaddr: mac)
        message.messageType = .discover
        message.options.set(57, [0x05, 0xC0])
        if let arch { message.options.set(93, [UInt8(arch >> 8), UInt8(arch & 0xFF)]) }
        message.options.set(94, [1, 3, 16])
        if let vendorClass { message.vendorClass = vendorClass }
        message.options.set(97, [0] + Array(0..<16))
        for (code, value) in extra { message.options.set(code, value) }
        return message
    }
}

#if canImport(Glibc)
import Glibc

/// A plain UDP socket for tests, optionally created inside a network namespace and bound to a
/// device; receives with IP_PKTINFO so a test can tell a broadcast reply from a unicast one.
/// Every wait is bounded.
final class UDPProbe {
    struct Datagram {
        var bytes: [UInt8]
        var source: IPv4Address
        var sourcePort: Int
        /// The IP header's destination (255.255.255.255 for a broadcast).
        var destination: IPv4Address
    }

    let fd: CInt

    init(bind address: String, port: Int, device: String? = nil, namespace: String? = nil) throws {
        if let namespace {
            // The thread writes its result under a lock: after a timeout it may still be running.
            final class Outcome: @unchecked Sendable {
                let lock = NSLock()
                var result: Result<CInt, Error> = .failure(DHCPError.malformed(field: "probe", reason: "namespace thread timed out"))
            }
            let outcome = Outcome()
            let done = DispatchSemaphore(value: 0)
            let thread = Thread {
                let result = Result { try ProxyDHCPServer.enterNetworkNamespace(namespace); return try UDPProbe.open(address, port, device) }
                outcome.lock.withLock { outcome.result = result }
                done.signal()
            }
            thread.start()
            _ = done.wait(timeout: .now() + 5)
            fd = try outcome.lock.withLock { outcome.result }.get()
        } else {
            fd = try Self.open(address, port, device)
        }
    }

    static func open(_ address: String, _ port: Int, _ device: String?) throws -> CInt {
        let fd = try ProxyDHCPServer.makeSocket(address: address, port: port, interface: device)
        var one: CInt = 1
        setsockopt(fd, Int32(IPPROTO_IP), IP_PKTINFO, &one, socklen_t(MemoryLayout<CInt>.size))
        return fd
    }

    /// The port the kernel gave us (for port 0 binds).
    var localPort: Int {
        var sin = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: sin.sin_port))
    }

    func send(_ bytes: [UInt8], to address: IPv4Address, port: Int) {
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = in_port_t(UInt16(port).bigEndian)
        sin.sin_addr.s_addr = address.rawValue.bigEndian
        _ = bytes.withUnsafeBytes { buffer in
            withUnsafePointer(to: &sin) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, buffer.baseAddress, buffer.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
    }

    /// Everything that arrives within `timeout` seconds (stops early after `limit` datagrams).
    func receive(timeout: Double, limit: Int = 16) -> [Datagram] {
        var out: [Datagram] = []
        // The server's own receive path: recvmmsg with IP_PKTINFO, parsed the same way.
        guard let batch = clinux_batch_create(16, 2048) else { return out }
        defer { clinux_batch_free(batch) }
        let deadline = Date().addingTimeInterval(timeout)
        while out.count < limit {
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 { break }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, Int32(remaining * 1000) + 1) > 0 else { continue }
            // No more than the caller still wants: the rest stays queued for the next call.
            let count = Int(clinux_batch_receive(batch, fd, 0, CInt(min(16, limit - out.count))))
            for i in 0..<max(0, count) {
                let datagram = clinux_batch_datagram(batch, CInt(i)).pointee
                let bytes = UnsafeRawBufferPointer(start: clinux_batch_bytes(batch, CInt(i)), count: Int(datagram.length))
                out.append(Datagram(bytes: Array(bytes),
                                    source: IPv4Address(rawValue: UInt32(bigEndian: datagram.source)),
                                    sourcePort: Int(UInt16(bigEndian: datagram.source_port)),
                                    destination: datagram.interface_index >= 0 ? IPv4Address(rawValue: UInt32(bigEndian: datagram.destination)) : .any))
            }
        }
        return out
    }

    deinit { Glibc.close(fd) }
}
#endif
