extension BootRequest {
    /// Everything a policy may want to know about a DHCP request, derived from the message.
    /// Malformed options are skipped (they remain visible raw in `options`).
    ///
    /// Firmware, first match wins: vendor class `HTTPClient...` -> http-boot; option 175 or
    /// user class "iPXE" -> ipxe; a UEFI architecture in option 93 -> uefi; architecture 0,
    /// or `PXEClient` without option 93 -> bios; otherwise unknown.
    public init(dhcp message: DHCPMessage, serverPort: Int?, interface: String?, source: String?) {
        let arch = message.clientArchitectures?.first
        let vendorClass = message.vendorClass
        let userClass = message.userClass?.entries ?? []
        let ipxe = message.ipxeOptions
        let carries175 = message.options.contains(175)

        let firmware: Firmware
        if vendorClass?.hasPrefix("HTTPClient") == true {
            firmware = .httpBoot
        } else if carries175 || userClass.contains("iPXE") {
            firmware = .ipxe
        } else if let arch, arch.isUEFI {
            firmware = .uefi
        } else if arch?.code == 0 || (arch == nil && message.options[code: 93] == nil && vendorClass?.hasPrefix("PXEClient") == true) {
            firmware = .bios
        } else {
            firmware = .unknown
        }

        var relay: Relay?
        let info = message.relayAgentInfo
        if !message.giaddr.isAny || info != nil {
            relay = Relay(
                giaddr: message.giaddr.description,
                circuitID: info?.circuitID.map { ByteText.display($0) },
                remoteID: info?.remoteID.map { ByteText.display($0) },
                circuitIDHex: info?.circuitID.map { Hex.encode($0) },
                remoteIDHex: info?.remoteID.map { Hex.encode($0) })
        }

        var clientAddress: String?
        if !message.ciaddr.isAny {
            clientAddress = message.ciaddr.description
        } else if message.giaddr.isAny, let source, source != "0.0.0.0" {
            clientAddress = source
        }

        self.init(
            kind: .dhcp, mac: message.clientMAC, xid: message.xid,
            messageType: message.messageType?.name,
            archCode: arch?.code, arch: arch?.name, firmware: firmware,
            vendorClass: vendorClass, userClass: userClass,
            isIPXE: carries175, ipxeFeatures: ipxe?.features ?? [:],
            uuid: message.clientUUID?.description, hostname: message.hostname,
            relay: relay, interface: interface, clientAddress: clientAddress,
            serverAddress: nil, serverPort: serverPort, options: message.options.byCode)
    }
}
