/// What a client asked for, decoded into named fields. Policy code (Lua, through LuaBridge)
/// sees exactly these fields; the protocol servers fill them. No Lua here.
public struct BootRequest: Sendable, Equatable {
    /// Which server saw the request; selects the policy hook (`dhcp`, `tftp`, `http`).
    public enum Kind: String, Sendable, Codable, CaseIterable { case dhcp, tftp, http }

    /// What runs on the client, derived from options 60, 77, 93 and 175.
    public enum Firmware: String, Sendable, Codable, CaseIterable {
        case bios, uefi, ipxe, httpBoot = "http-boot", unknown
    }

    /// Relay agent facts (giaddr and option 82, RFC 3046).
    /// Relay agent facts (giaddr and option 82, RFC 3046). An option 82 without giaddr (a
    /// switch that snoops DHCP adds it and relays nothing) is a relay with giaddr 0.0.0.0.
    /// The ids are bytes on the wire: `circuitID`/`remoteID` hold them as text when every
    /// byte is printable ASCII, else as lower-case hex; the `Hex` forms are always hex.
    public struct Relay: Sendable, Equatable, Codable {
        public var giaddr: String
        public var circuitID: String?
        public var remoteID: String?
        public var circuitIDHex: String?
        public var remoteIDHex: String?
        public init(giaddr: String, circuitID: String? = nil, remoteID: String? = nil,
                    circuitIDHex: String? = nil, remoteIDHex: String? = nil) {
            self.giaddr = giaddr
            self.circuitID = circuitID
            self.remoteID = remoteID
            self.circuitIDHex = circuitIDHex
            self.remoteIDHex = remoteIDHex
        }
    }

    /// The IP version the request came over: DHCPv4 or DHCPv6 (and TFTP/HTTP from an IPv4
    /// or an IPv6 address).
    public enum Family: String, Sendable, Codable, CaseIterable { case ipv4, ipv6 }

    public var kind: Kind
    public var family: Family = .ipv4
    /// DHCPv6: the client's DUID (option 1), colon-separated hex.
    public var duid: String? = nil
    /// DHCPv6: every option of the client's message by code (16-bit codes; `options` stays
    /// empty). The first of a repeated option.
    public var options6: [UInt16: [UInt8]] = [:]
    /// Client hardware address, lower-case colon form (`52:54:00:12:34:56`); empty when unknown.
    public var mac: String
    public var xid: UInt32?
    /// DHCP message type by name (`discover`, `request`, `inform`, ...).
    public var messageType: String?
    /// RFC 4578 option 93 code and its name from `ClientArchitecture` (`bios`, `efi-x64`, ...).
    public var archCode: UInt16?
    public var arch: String?
    public var firmware: Firmware
    public var vendorClass: String?
    public var userClass: [String]
    /// The request carried option 175 (iPXE) and the feature flags found in it, by name.
    public var isIPXE: Bool
    public var ipxeFeatures: [String: Int]
    /// Option 97 as a canonical UUID string.
    public var uuid: String?
    public var hostname: String?
    public var relay: Relay?
    public var interface: String?
    public var clientAddress: String?
    public var serverAddress: String?
    /// The local port that received the request (67 or 4011 for DHCP, 69 for TFTP, ...).
    public var serverPort: Int?
    /// Every option as received, by code (RFC 3396 pieces already joined).
    public var options: [UInt8: [UInt8]]
    /// TFTP and HTTP: the path asked for (TFTP as sent, HTTP without the query).
    public var path: String?
    /// HTTP: the query parameters.
    public var query: [String: String]
    /// HTTP: the method (`GET`, `POST`, ...).
    public var method: String? = nil
    /// HTTP: `"http"`, or `"https"` on the TLS listener.
    public var scheme: String? = nil
    /// HTTP: the headers, names in lower case; a repeated header's values joined with ", ".
    public var headers: [String: String] = [:]
    /// HTTP: the request body, at most `http.max_body_bytes`.
    public var body: [UInt8] = []

    public init(
        kind: Kind, mac: String = "", xid: UInt32? = nil, messageType: String? = nil,
        archCode: UInt16? = nil, arch: String? = nil, firmware: Firmware = .unknown,
        vendorClass: String? = nil, userClass: [String] = [], isIPXE: Bool = false,
        ipxeFeatures: [String: Int] = [:], uuid: String? = nil, hostname: String? = nil,
        relay: Relay? = nil, interface: String? = nil, clientAddress: String? = nil,
        serverAddress: String? = nil, serverPort: Int? = nil, options: [UInt8: [UInt8]] = [:],
        path: String? = nil, query: [String: String] = [:]
    ) {
        self.kind = kind
        self.mac = mac
        self.xid = xid
        self.messageType = messageType
        self.archCode = archCode
        self.arch = arch
        self.firmware = firmware
        self.vendorClass = vendorClass
        self.userClass = userClass
        self.isIPXE = isIPXE
        self.ipxeFeatures = ipxeFeatures
        self.uuid = uuid
        self.hostname = hostname
        self.relay = relay
        self.interface = interface
        self.clientAddress = clientAddress
        self.serverAddress = serverAddress
        self.serverPort = serverPort
        self.options = options
        self.path = path
        self.query = query
    }
}
