import Testing
@testable import Protocols

@Suite struct DHCPOptionsTypedTests {
    func roundTrip<V: Equatable>(_ key: DHCPOptionKey<V>, _ value: V) throws {
        var options = DHCPOptions()
        options.set(key, value)
        var message = DHCPMessage(op: .request, xid: 1)
        message.options = options
        let decoded = try DHCPMessage(bytes: message.bytes)
        #expect(try decoded.options.get(key) == value, "option \(key.code)")
    }

    func rejects<V>(_ key: DHCPOptionKey<V>, _ bytes: [UInt8]) {
        let options = DHCPOptions([DHCPOption(code: key.code, value: bytes)])
        #expect(throws: DHCPError.self, "option \(key.code) \(bytes)") { try options.get(key) }
    }

    @Test func messageType53() throws {
        for type in DHCPMessageType.allCases { try roundTrip(.messageType, type) }
        #expect(DHCPMessageType.discover.name == "discover")
        #expect(DHCPMessageType.leaseQuery.name == "leasequery")
        rejects(.messageType, [])
        rejects(.messageType, [0])
        rejects(.messageType, [1, 1])
    }

    @Test func addresses54And50() throws {
        try roundTrip(.serverIdentifier, IPv4Address(192, 168, 77, 1))
        try roundTrip(.requestedAddress, IPv4Address(10, 1, 2, 3))
        rejects(.serverIdentifier, [1, 2, 3])
        rejects(.requestedAddress, [1, 2, 3, 4, 5])
    }

    @Test func strings60_12_66_67() throws {
        try roundTrip(.vendorClass, "PXEClient:Arch:00007:UNDI:003016")
        try roundTrip(.hostname, "core01")
        try roundTrip(.tftpServerName, "192.168.77.1")
        try roundTrip(.bootfileName, "undionly.kpxe")
        // NUL-terminated strings are cut at the NUL (some firmware pads).
        let options = DHCPOptions([DHCPOption(code: 12, value: Array("pc\0\0".utf8))])
        #expect(try options.get(.hostname) == "pc")
    }

    @Test func parameterList55ClientID61MaxSize57() throws {
        try roundTrip(.parameterRequestList, [1, 3, 6, 43, 60, 66, 67])
        try roundTrip(.clientIdentifier, [1] + Build.mac)
        try roundTrip(.maxMessageSize, 1472)
        rejects(.clientIdentifier, [])
        rejects(.maxMessageSize, [5])
    }

    @Test func pxeVendorOptions43() throws {
        var pxe = PXEVendorOptions()
        pxe.discoveryControl = 8
        pxe.menuPrompt = .init(timeout: 0, prompt: "PXE")
        pxe.bootServers = [.init(type: 0x8000, addresses: [IPv4Address(192, 168, 16, 10)])]
        pxe.bootMenu = [.init(type: 0x8000, description: "Pixiecore")]
        pxe.bootItem = .init(type: 0x8000, layer: 0)
        try roundTrip(.pxeVendorOptions, pxe)
        #expect(pxe.bytes == [6, 1, 8, 10, 4, 0, 0x50, 0x58, 0x45,
                              8, 7, 0x80, 0, 1, 192, 168, 16, 10,
                              9, 12, 0x80, 0, 9] + Array("Pixiecore".utf8) + [71, 4, 0x80, 0, 0, 0, 255])
        // pixiecore's ProxyDHCP OFFER from the netboot capture, decoded field by field.
        let pixiecore: [UInt8] = [0x6, 0x1, 0x3, 0x8, 0x7, 0x80, 0x0, 0x1, 0xc0, 0xa8, 0x10, 0xa, 0x9, 0xc, 0x80, 0x0, 0x9,
                                  0x50, 0x69, 0x78, 0x69, 0x65, 0x63, 0x6f, 0x72, 0x65, 0xa, 0xa, 0x0, 0x50, 0x69, 0x78, 0x69,
                                  0x65, 0x63, 0x6f, 0x72, 0x65, 0xff]
        let decoded = try PXEVendorOptions(bytes: pixiecore)
        #expect(decoded.discoveryControl == 3)
        #expect(decoded.bootServers == [.init(type: 0x8000, addresses: [IPv4Address(192, 168, 16, 10)])])
        #expect(decoded.bootMenu == [.init(type: 0x8000, description: "Pixiecore")])
        #expect(decoded.menuPrompt == .init(timeout: 0, prompt: "Pixiecore"))
        #expect(decoded.bytes == pixiecore)
        // Malformed sub-options.
        rejects(.pxeVendorOptions, [6, 2, 8, 8, 255])
        rejects(.pxeVendorOptions, [71, 3, 0, 0, 0, 255])
        rejects(.pxeVendorOptions, [8, 4, 0x80, 0, 2, 1, 255])
        rejects(.pxeVendorOptions, [9, 4, 0x80, 0, 9, 0x50])
        rejects(.pxeVendorOptions, [6, 9, 1])
    }

    @Test func userClass77BothForms() throws {
        try roundTrip(.userClass, UserClass(entries: ["iPXE"], form: .plain))
        try roundTrip(.userClass, UserClass(entries: ["foo", "bar"], form: .rfc3004))
        #expect(UserClass(bytes: Array("iPXE".utf8)) == UserClass(entries: ["iPXE"], form: .plain))
        #expect(UserClass(bytes: [3, 0x66, 0x6f, 0x6f, 2, 0x68, 0x69]).entries == ["foo", "hi"])
        #expect(UserClass(bytes: [3, 0x66, 0x6f]).form == .plain)  // length past end: not RFC 3004
    }

    @Test func relayAgentInfo82() throws {
        try roundTrip(.relayAgentInfo, RelayAgentInfo(circuitID: Array("eth0:1".utf8), remoteID: [1, 2, 3]))
        let info = try RelayAgentInfo(bytes: [1, 2, 0, 5, 2, 3, 0x61, 0x62, 0x63, 9, 1, 7])
        #expect(info.circuitID == [0, 5])
        #expect(info.remoteID == Array("abc".utf8))
        #expect(info.subOptions.last == DHCPOption(code: 9, value: [7]))
        #expect(info.bytes == [1, 2, 0, 5, 2, 3, 0x61, 0x62, 0x63, 9, 1, 7])
        rejects(.relayAgentInfo, [1, 5, 0])
    }

    @Test func clientArchitecture93() throws {
        try roundTrip(.clientArchitectures, [ClientArchitecture(code: 7), ClientArchitecture(code: 16)])
        rejects(.clientArchitectures, [0])
        rejects(.clientArchitectures, [])
        let table: [(UInt16, String, Bool, Bool)] = [
            (0, "bios", false, false), (6, "efi-ia32", true, false), (7, "efi-x64", true, false),
            (9, "efi-bc", true, false), (10, "efi-arm32", true, false), (11, "efi-arm64", true, false),
            (15, "efi-ia32-http", true, true), (16, "efi-x64-http", true, true),
            (18, "efi-arm32-http", true, true), (19, "efi-arm64-http", true, true),
            (22, "uboot-arm64", false, false), (25, "efi-riscv32", true, false),
            (27, "efi-riscv64", true, false), (28, "efi-riscv64-http", true, true), (999, "arch-999", false, false),
        ]
        for (code, name, uefi, http) in table {
            let arch = ClientArchitecture(code: code)
            #expect(arch.name == name && arch.isUEFI == uefi && arch.isHTTPBoot == http, "arch \(code)")
            #expect(ClientArchitecture(name: name)?.code == code)
        }
        #expect(ClientArchitecture(code: 9).cpu == "x86_64")
    }

    @Test func clientNDI94AndUUID97() throws {
        try roundTrip(.clientNDI, ClientNDI(type: 1, major: 3, minor: 16))
        rejects(.clientNDI, [1, 2])
        let uuid = try #require(ClientUUID(bytes: Array(0..<16)))
        try roundTrip(.clientUUID, uuid)
        #expect(uuid.description == "00010203-0405-0607-0809-0a0b0c0d0e0f")
        #expect(ClientUUID(uuid.description) == uuid)
        rejects(.clientUUID, [0] + Array(0..<15))
        rejects(.clientUUID, [1] + Array(0..<16))
        // HP firmware puts ASCII in 97 (see the srepfler capture): refused, not trapped.
        rejects(.clientUUID, Array("HP0123456789ABCDEF".utf8.prefix(17)))
    }

    @Test func ipxe175() throws {
        let bytes: [UInt8] = [1, 1, 0xFF, 16, 1, 1, 19, 1, 1, 20, 1, 1, 21, 1, 1, 36, 1, 1, 235, 3, 1, 21, 1,
                              177, 5, 1, 0x10, 0xEC, 0x81, 0x39, 190, 3, 0x62, 0x6f, 0x62]
        let ipxe = try IPXEOptions(bytes: bytes)
        #expect(ipxe.version == "1.21.1")
        #expect(ipxe.features["priority"] == -1)
        #expect(ipxe.features["http"] == 1 && ipxe.features["https"] == 1 && ipxe.features["efi"] == 1)
        #expect(ipxe.features["bus-id"] == nil)
        #expect(ipxe.featureFlags == ["efi", "http", "https", "pxeext", "tftp"])
        #expect(ipxe.has("tftp") && !ipxe.has("iscsi"))
        #expect(ipxe.busID?.vendor == 0x10EC && ipxe.busID?.device == 0x8139)
        #expect(ipxe.string(190) == "bob")
        #expect(ipxe.bytes == bytes)
        try roundTrip(.ipxe, ipxe)
        rejects(.ipxe, [16, 1])
        let names = [(1, "priority"), (8, "keep-san"), (9, "skip-san-boot"), (16, "pxeext"), (17, "iscsi"), (18, "aoe"),
                     (19, "http"), (20, "https"), (21, "tftp"), (22, "ftp"), (23, "dns"), (24, "bzimage"),
                     (25, "multiboot"), (26, "slam"), (27, "srp"), (32, "nbi"), (33, "pxe"), (34, "elf"),
                     (35, "comboot"), (36, "efi"), (37, "fcoe"), (38, "vlan"), (39, "menu"), (40, "sdi"),
                     (41, "nfs"), (85, "syslogs"), (91, "cert"), (92, "privkey"), (93, "crosscert"),
                     (176, "no-pxedhcp"), (177, "bus-id"), (188, "san-filename"), (189, "bios-drive"),
                     (190, "username"), (191, "password"), (192, "reverse-username"), (193, "reverse-password"),
                     (235, "version")]
        for (code, name) in names { #expect(IPXEOptions.name(of: UInt8(code)) == name) }
    }

    @Test func messageConveniencesAreNilWhenMalformed() throws {
        var message = Build.discover()
        message.options.set(93, [0])
        message.options.set(97, [9])
        #expect(message.clientArchitectures == nil)
        #expect(message.clientUUID == nil)
        #expect(message.messageType == .discover)
        #expect(message.vendorClass == "PXEClient:Arch:00000:UNDI:002001")
        #expect(message.clientNDI == ClientNDI(type: 1, major: 3, minor: 16))
        #expect(message.maxMessageSize == 1472)
    }
}
