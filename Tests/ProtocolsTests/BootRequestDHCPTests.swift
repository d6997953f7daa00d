import Testing
@testable import Protocols

@Suite struct BootRequestDHCPTests {
    /// A switch snooping DHCP adds option 82 and relays nothing: giaddr stays 0, the ids are
    /// still the policy's to read.
    @Test func option82WithoutGiaddrIsStillARelay() throws {
        var message = Build.discover()
        message.options.set(.relayAgentInfo, RelayAgentInfo(circuitID: [0, 4, 0, 7], remoteID: Array("sw7".utf8)))
        let request = BootRequest(dhcp: message, serverPort: 67, interface: "bp0", source: "0.0.0.0")
        #expect(request.relay == .init(giaddr: "0.0.0.0", circuitID: "00040007", remoteID: "sw7", circuitIDHex: "00040007", remoteIDHex: "737737"))
        #expect(BootRequest(dhcp: Build.discover(), serverPort: 67, interface: "bp0", source: "0.0.0.0").relay == nil)
    }

    @Test func fillsEveryFieldFromABIOSDiscover() throws {
        var message = Build.discover(extra: [(12, Array("pc1".utf8))])
        message.giaddr = IPv4Address(10, 0, 0, 1)
        message.options.set(.relayAgentInfo, RelayAgentInfo(circuitID: Array("port7".utf8), remoteID: [0xAB, 0x01]))
        let request = BootRequest(dhcp: message, serverPort: 67, interface: "bp0", source: "10.0.0.1")
        #expect(request.kind == .dhcp)
        #expect(request.mac == "52:54:00:12:34:56")
        #expect(request.xid == 0x1234_5678)
        #expect(request.messageType == "discover")
        #expect(request.archCode == 0 && request.arch == "bios")
        #expect(request.firmware == .bios)
        #expect(request.vendorClass == "PXEClient:Arch:00000:UNDI:002001")
        #expect(request.userClass == [])
        #expect(!request.isIPXE && request.ipxeFeatures.isEmpty)
        #expect(request.uuid == "00010203-0405-0607-0809-0a0b0c0d0e0f")
        #expect(request.hostname == "pc1")
        #expect(request.relay == .init(giaddr: "10.0.0.1", circuitID: "port7", remoteID: "ab01", circuitIDHex: "706f727437", remoteIDHex: "ab01"))
        #expect(request.interface == "bp0")
        #expect(request.clientAddress == nil)  // relayed: the source is the relay
        #expect(request.serverPort == 67)
        #expect(request.options[93] == [0, 0] && request.options[53] == [1])
    }

    @Test func firmwareRules() {
        func firmware(_ m: DHCPMessage) -> BootRequest.Firmware { BootRequest(dhcp: m, serverPort: 67, interface: nil, source: nil).firmware }
        #expect(firmware(Build.discover(arch: 16, vendorClass: "HTTPClient:Arch:00016:UNDI:003001")) == .httpBoot)
        #expect(firmware(Build.discover(arch: 7, extra: [(175, [19, 1, 1])])) == .ipxe)
        #expect(firmware(Build.discover(arch: 0, extra: [(77, Array("iPXE".utf8))])) == .ipxe)
        #expect(firmware(Build.discover(arch: 7)) == .uefi)
        #expect(firmware(Build.discover(arch: 11)) == .uefi)
        #expect(firmware(Build.discover(arch: 0)) == .bios)
        #expect(firmware(Build.discover(arch: nil)) == .bios)
        #expect(firmware(Build.discover(arch: 22)) == .unknown)
        #expect(firmware(Build.discover(arch: nil, vendorClass: "MSFT 5.0")) == .unknown)
    }

    @Test func ipxeFeaturesAndUserClass() {
        let message = Build.discover(arch: 7, extra: [(175, [19, 1, 1, 20, 1, 1, 235, 3, 1, 21, 1]), (77, Array("iPXE".utf8))])
        let request = BootRequest(dhcp: message, serverPort: 4011, interface: nil, source: "192.168.77.50")
        #expect(request.isIPXE)
        #expect(request.ipxeFeatures == ["http": 1, "https": 1])
        #expect(request.userClass == ["iPXE"])
        #expect(request.arch == "efi-x64")
        #expect(request.clientAddress == "192.168.77.50")
        #expect(request.serverPort == 4011)
    }
}
