/// A decoded, stable, human-readable form of a message: golden files, fixture `decoded`,
/// `bootpolicy explain`. Encoded with sorted keys it is byte-stable across runs.
extension DHCPMessage {
    public struct Summary: Codable, Sendable, Equatable {
        public var op: String
        public var htype: Int
        public var hlen: Int
        public var hops: Int
        public var xid: String
        public var secs: Int
        public var flags: String
        public var broadcast: Bool
        public var ciaddr: String
        public var yiaddr: String
        public var siaddr: String
        public var giaddr: String
        public var chaddr: String
        public var sname: String?
        public var file: String?
        public var overload: Int?
        public var messageType: String?
        public var options: [OptionSummary]

        enum CodingKeys: String, CodingKey {
            case op, htype, hlen, hops, xid, secs, flags, broadcast, ciaddr, yiaddr, siaddr, giaddr
            case chaddr, sname, file, overload, options
            case messageType = "message_type"
        }
    }

    public struct OptionSummary: Codable, Sendable, Equatable {
        public var code: Int
        public var name: String
        public var length: Int
        public var hex: String
        /// The value read through its typed accessor, when the option has one and it parsed.
        public var value: String?
        /// Why the typed accessor refused the value.
        public var error: String?
    }

    public var summary: Summary {
        Summary(
            op: op == .request ? "request" : "reply",
            htype: Int(htype), hlen: Int(hlen), hops: Int(hops),
            xid: "0x" + Hex.encode([UInt8(xid >> 24), UInt8(truncatingIfNeeded: xid >> 16),
                                    UInt8(truncatingIfNeeded: xid >> 8), UInt8(truncatingIfNeeded: xid)]),
            secs: Int(secs),
            flags: "0x" + Hex.encode([UInt8(flags >> 8), UInt8(truncatingIfNeeded: flags)]),
            broadcast: broadcast,
            ciaddr: ciaddr.description, yiaddr: yiaddr.description,
            siaddr: siaddr.description, giaddr: giaddr.description,
            chaddr: clientMAC,
            sname: serverName.isEmpty ? nil : serverName,
            file: bootFile.isEmpty ? nil : bootFile,
            overload: overload.map(Int.init),
            messageType: messageType?.name,
            options: options.map { Self.summarize($0) }
        )
    }

    /// Option names for summaries and logs (RFC 2132 and later registrations).
    public static let optionNames: [UInt8: String] = [
        1: "subnet-mask", 2: "time-offset", 3: "router", 4: "time-server", 6: "dns-server",
        7: "log-server", 12: "hostname", 15: "domain-name", 17: "root-path", 26: "mtu",
        28: "broadcast-address", 42: "ntp-server", 43: "vendor-specific", 44: "netbios-ns",
        46: "netbios-node-type", 47: "netbios-scope", 50: "requested-address", 51: "lease-time",
        52: "overload", 53: "message-type", 54: "server-identifier", 55: "parameter-request-list",
        56: "message", 57: "max-message-size", 58: "renewal-time", 59: "rebinding-time",
        60: "vendor-class", 61: "client-identifier", 66: "tftp-server", 67: "bootfile",
        77: "user-class", 81: "client-fqdn", 82: "relay-agent-info", 93: "client-arch",
        94: "client-ndi", 97: "client-uuid", 108: "ipv6-only-preferred", 116: "auto-config",
        119: "domain-search", 121: "classless-static-route", 124: "vendor-class-vivco",
        125: "vendor-specific-vivso", 145: "forcerenew-nonce", 150: "tftp-server-address",
        161: "mud-url", 175: "ipxe", 249: "ms-classless-static-route", 252: "wpad",
    ]

    static func summarize(_ option: DHCPOption) -> OptionSummary {
        var summary = OptionSummary(
            code: Int(option.code), name: optionNames[option.code] ?? "option-\(option.code)",
            length: option.value.count, hex: Hex.encode(option.value), value: nil, error: nil)
        do {
            summary.value = try describe(option)
        } catch {
            summary.error = String(describing: error)
        }
        return summary
    }

    /// Typed rendering of the options we know; nil for the others.
    static func describe(_ option: DHCPOption) throws -> String? {
        let single = DHCPOptions([option])
        switch option.code {
        case 53: return try single.get(.messageType)?.name
        case 54: return try single.get(.serverIdentifier)?.description
        case 50: return try single.get(.requestedAddress)?.description
        case 55: return try single.get(.parameterRequestList)?.map(String.init).joined(separator: ",")
        case 57: return try single.get(.maxMessageSize).map(String.init)
        case 60: return try single.get(.vendorClass)
        case 12: return try single.get(.hostname)
        case 66: return try single.get(.tftpServerName)
        case 67: return try single.get(.bootfileName)
        case 61:
            let id = try single.get(.clientIdentifier) ?? []
            return "type \(id[0]) " + Hex.encode(id.dropFirst(), separator: ":")
        case 43:
            let pxe = try single.get(.pxeVendorOptions) ?? PXEVendorOptions()
            return describe(pxe)
        case 77:
            let userClass = try single.get(.userClass) ?? UserClass(entries: [])
            return "\(userClass.form.rawValue): " + userClass.entries.joined(separator: ", ")
        case 82:
            let info = try single.get(.relayAgentInfo) ?? RelayAgentInfo()
            return info.subOptions.map { sub in
                let name = sub.code == 1 ? "circuit-id" : sub.code == 2 ? "remote-id" : "sub-\(sub.code)"
                return "\(name)=\(ByteText.display(sub.value))"
            }.joined(separator: " ")
        case 93: return try single.get(.clientArchitectures)?.map { "\($0.code) \($0.name)" }.joined(separator: ", ")
        case 94: return try single.get(.clientNDI)?.description
        case 97: return try single.get(.clientUUID)?.description
        case 175:
            let ipxe = try single.get(.ipxe) ?? IPXEOptions()
            return ipxe.subOptions.map { sub in
                "\(IPXEOptions.name(of: sub.code))=\(sub.value.count <= 4 && sub.code != 235 ? String(ipxe.features[IPXEOptions.name(of: sub.code)] ?? 0) : ByteText.display(sub.value))"
            }.joined(separator: " ")
        case 1, 3, 6, 28, 42, 44, 4, 150:
            guard option.value.count % 4 == 0, !option.value.isEmpty else {
                throw DHCPError.badOptionValue(code: option.code, field: optionNames[option.code] ?? "addresses", reason: "length \(option.value.count), expected a multiple of 4")
            }
            return stride(from: 0, to: option.value.count, by: 4)
                .map { IPv4Address(bytes: option.value[$0..<($0 + 4)])!.description }.joined(separator: ",")
        case 51, 58, 59:
            guard option.value.count == 4 else {
                throw DHCPError.badOptionValue(code: option.code, field: optionNames[option.code]!, reason: "length \(option.value.count), expected 4")
            }
            return String(option.value.reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        case 15, 17, 56, 114, 161:
            return ByteText.cString(option.value)
        default: return nil
        }
    }

    static func describe(_ pxe: PXEVendorOptions) -> String {
        pxe.subOptions.map { sub -> String in
            switch sub.code {
            case PXEVendorOptions.Code.discoveryControl: return "discovery-control=\(pxe.discoveryControl ?? 0)"
            case PXEVendorOptions.Code.menuPrompt:
                let prompt = pxe.menuPrompt
                return "menu-prompt=\(prompt?.timeout ?? 0),\(prompt?.prompt ?? "")"
            case PXEVendorOptions.Code.bootMenu:
                return "boot-menu=" + (pxe.bootMenu ?? []).map { "\($0.type):\($0.description)" }.joined(separator: "|")
            case PXEVendorOptions.Code.bootServers:
                return "boot-servers=" + (pxe.bootServers ?? []).map { "\($0.type):" + $0.addresses.map(\.description).joined(separator: "+") }.joined(separator: "|")
            case PXEVendorOptions.Code.bootItem:
                return "boot-item=\(pxe.bootItem?.type ?? 0):\(pxe.bootItem?.layer ?? 0)"
            default: return "sub-\(sub.code)=\(Hex.encode(sub.value))"
            }
        }.joined(separator: " ")
    }
}
