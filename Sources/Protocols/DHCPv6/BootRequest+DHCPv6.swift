extension BootRequest {
    /// A DHCPv6 request as policies see it. The MAC, which keys a client everywhere else, is
    /// found in this order: a relay's option 79 (RFC 6939), a DUID-LL/LLT of Ethernet, the
    /// EUI-64 interface id of the link-local address the message came from (OVMF and iPXE
    /// form theirs so); otherwise it stays empty and the client is known by its DUID alone.
    ///
    /// Firmware as for DHCPv4: vendor class data `HTTPClient...` -> http-boot; user class
    /// "iPXE" -> ipxe; a UEFI architecture in option 61 -> uefi; architecture 0 -> bios.
    public init(dhcpv6 packet: DHCPv6Packet, source: IPv6Address?, interface: String?, serverPort: Int?) {
        let m = packet.message
        let o = m.options
        let arch = o.clientArchitectures?.first
        let vendor = o.vendorClass
        let vendorText = vendor?.data.first.map { ByteText.display($0) }
        let userClass = o.userClasses ?? []
        let duid = o.clientDUID

        var mac: [UInt8]?
        // The relay nearest the client knows its link layer.
        if let ll = packet.relays.last?.options.clientLinkLayerAddress, ll.type == 1, ll.address.count == 6 { mac = ll.address }
        if mac == nil { mac = duid?.ethernetAddress }
        let peer = packet.relays.last?.peerAddress ?? source
        if mac == nil, let peer, peer.isLinkLocal { mac = peer.eui64MAC }

        let firmware: Firmware
        if vendorText?.hasPrefix("HTTPClient") == true {
            firmware = .httpBoot
        } else if userClass.contains("iPXE") {
            firmware = .ipxe
        } else if let arch, arch.isUEFI {
            firmware = .uefi
        } else if arch?.code == 0 {
            firmware = .bios
        } else {
            firmware = .unknown
        }

        var relay: Relay?
        if let outer = packet.relays.first, let inner = packet.relays.last {
            let interfaceID = inner.options[code: DHCPv6OptionCode.interfaceID]
            // Remote-ID (37) is an enterprise number and the id; the id is what identifies.
            let remote = inner.options[code: DHCPv6OptionCode.remoteID].flatMap { $0.count > 4 ? Array($0[4...]) : nil }
            relay = Relay(giaddr: (inner.linkAddress.isAny ? outer.linkAddress : inner.linkAddress).description,
                          circuitID: interfaceID.map { ByteText.display($0) }, remoteID: remote.map { ByteText.display($0) },
                          circuitIDHex: interfaceID.map { Hex.encode($0) }, remoteIDHex: remote.map { Hex.encode($0) })
        }

        var options6: [UInt16: [UInt8]] = [:]
        for option in o where options6[option.code] == nil { options6[option.code] = option.value }

        self.init(
            kind: .dhcp, mac: mac.map { Hex.encode($0, separator: ":") } ?? "", xid: m.transactionID,
            messageType: m.type.name, archCode: arch?.code, arch: arch?.name, firmware: firmware,
            vendorClass: vendorText, userClass: userClass, isIPXE: userClass.contains("iPXE"),
            uuid: duid?.uuidBytes.flatMap { ClientUUID(bytes: $0)?.description },
            relay: relay, interface: interface, clientAddress: peer?.description,
            serverPort: serverPort)
        self.family = .ipv6
        self.duid = duid?.description
        self.options6 = options6
    }
}
