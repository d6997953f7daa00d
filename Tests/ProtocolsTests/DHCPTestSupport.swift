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

    /// Reference captures not copied into the project (licence); present on the dev machine.
    static let shared = URL(fileURLWithPath: "/work/shared/fixtures/captures")

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
