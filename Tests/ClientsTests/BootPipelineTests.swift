import Foundation
import NIOCore
import Testing
@testable import Clients
@testable import Protocols

/// What a client's TFTP and HTTP requests learn from its DHCP request, from recorded firmware.
struct BootPipelineTests {
    /// Keeps every request the chain was asked about.
    final class Recorder: BootDecider, @unchecked Sendable {
        var seen: [BootRequest] = []
        func decide(_ request: BootRequest) -> BootDecision? {
            seen.append(request)
            return nil
        }
    }

    static func fixture(_ name: String) throws -> (DHCPMessage, ByteBuffer) {
        let url = packageRoot.appendingPathComponent("fixtures/requests/\(name).json")
        let raw = try #require(try Fixture.load(from: url).raw)
        let bytes = try #require(Hex.decode(raw))
        return (try DHCPMessage(bytes: bytes), ByteBuffer(bytes: bytes))
    }

    /// The DHCP request's facts, as a TFTP request from the same MAC is told them.
    func learned(from name: String, withDatagram: Bool, relayedBy giaddr: IPv4Address? = nil) throws -> (dhcp: BootRequest, tftp: BootRequest) {
        var (message, datagram) = try Self.fixture(name)
        if let giaddr {
            message.giaddr = giaddr
            message.options.set(82, [1, 3] + Array("sw1".utf8) + [2, 4] + Array("rack".utf8))
            datagram = ByteBuffer(bytes: message.bytes)
        }
        let recorder = Recorder()
        let decider = BootPipeline(chain: recorder)
        let dhcp = BootRequest(dhcp: message, serverPort: 67, interface: "eth0", source: "0.0.0.0")
        if withDatagram {
            _ = decider.decide(dhcp, datagram: datagram)
        } else {
            _ = decider.decide(dhcp)
        }
        _ = decider.decide(BootRequest(kind: .tftp, mac: dhcp.mac, path: "undionly.kpxe"))
        try #require(recorder.seen.count == 2)
        return (recorder.seen[0], recorder.seen[1])
    }

    @Test(arguments: ["qemu-ipxe-bios-discover", "ovmf-pxe-discover", "ovmf-httpboot-discover", "pxe-bios-discover"])
    func aFileRequestLearnsWhatTheDHCPRequestSaid(fixture: String) throws {
        for withDatagram in [true, false] {
            let (dhcp, tftp) = try learned(from: fixture, withDatagram: withDatagram)
            #expect(tftp.kind == .tftp && tftp.path == "undionly.kpxe")
            #expect(dhcp.arch != nil || fixture == "pxe-bios-discover")
            #expect(tftp.archCode == dhcp.archCode)
            #expect(tftp.arch == dhcp.arch)
            #expect(tftp.firmware == dhcp.firmware && tftp.firmware != .unknown)
            #expect(tftp.vendorClass == dhcp.vendorClass && tftp.vendorClass != nil)
            #expect(tftp.userClass == dhcp.userClass)
            #expect(tftp.isIPXE == dhcp.isIPXE)
            #expect(tftp.ipxeFeatures == dhcp.ipxeFeatures)
            #expect(tftp.uuid == dhcp.uuid)
            #expect(tftp.hostname == dhcp.hostname)
            #expect(tftp.relay == nil)
            // Only facts: not where the DHCP request arrived, nor its raw options.
            #expect(tftp.interface == nil && tftp.serverPort == nil && tftp.options.isEmpty)
        }
        let (ipxe, _) = try learned(from: "qemu-ipxe-bios-discover", withDatagram: true)
        #expect(ipxe.isIPXE && !ipxe.ipxeFeatures.isEmpty, "the fixture exercises option 175")
    }

    @Test func aRelayedClientsFileRequestLearnsTheRelay() throws {
        for withDatagram in [true, false] {
            let (dhcp, tftp) = try learned(from: "pxe-bios-discover", withDatagram: withDatagram,
                                           relayedBy: IPv4Address("10.0.0.1"))
            #expect(dhcp.relay == BootRequest.Relay(giaddr: "10.0.0.1", circuitID: "sw1", remoteID: "rack",
                                                    circuitIDHex: "737731", remoteIDHex: "7261636b"))
            #expect(tftp.relay == dhcp.relay)
        }
    }

    @Test func anotherClientLearnsNothing() throws {
        let (message, datagram) = try Self.fixture("ovmf-pxe-discover")
        let recorder = Recorder()
        let decider = BootPipeline(chain: recorder)
        _ = decider.decide(BootRequest(dhcp: message, serverPort: 67, interface: nil, source: nil), datagram: datagram)
        _ = decider.decide(BootRequest(kind: .tftp, mac: "02:00:00:00:00:01", path: "x"))
        #expect(recorder.seen.last?.arch == nil)
        #expect(recorder.seen.last?.firmware == .unknown)
    }
}
