/// A typed view of one option: its code and how its value is read and written.
/// `try options.get(.clientArchitectures)` throws a `DHCPError` naming the option when the
/// value is malformed; `options.set(.messageType, .offer)` writes it.
public struct DHCPOptionKey<Value>: Sendable {
    public let code: UInt8
    public let name: String
    let decode: @Sendable ([UInt8]) throws -> Value
    let encode: @Sendable (Value) -> [UInt8]

    public init(
        code: UInt8, name: String, decode: @escaping @Sendable ([UInt8]) throws -> Value,
        encode: @escaping @Sendable (Value) -> [UInt8]
    ) {
        self.code = code
        self.name = name
        self.decode = decode
        self.encode = encode
    }
}

extension DHCPOptions {
    /// The typed value, nil when absent; throws when present but malformed.
    public func get<Value>(_ key: DHCPOptionKey<Value>) throws -> Value? {
        guard let raw = self[code: key.code] else { return nil }
        return try key.decode(raw)
    }

    public mutating func set<Value>(_ key: DHCPOptionKey<Value>, _ value: Value?) {
        self[code: key.code] = value.map(key.encode)
    }
}

private func fixed(_ code: UInt8, _ field: String, _ v: [UInt8], _ count: Int) throws {
    guard v.count == count else {
        throw DHCPError.badOptionValue(code: code, field: field, reason: "length \(v.count), expected \(count)")
    }
}

private func text(_ code: UInt8, _ name: String) -> DHCPOptionKey<String> {
    DHCPOptionKey(code: code, name: name, decode: { ByteText.cString($0) }, encode: { Array($0.utf8) })
}

private func address(_ code: UInt8, _ name: String) -> DHCPOptionKey<IPv4Address> {
    DHCPOptionKey(code: code, name: name, decode: { v in
        try fixed(code, name, v, 4)
        return IPv4Address(bytes: v)!
    }, encode: { $0.bytes })
}

extension DHCPOptionKey where Value == DHCPMessageType {
    /// 53 (RFC 2132 §9.6).
    public static var messageType: Self {
        DHCPOptionKey(code: 53, name: "message-type", decode: { v in
            try fixed(53, "message-type", v, 1)
            guard let type = DHCPMessageType(rawValue: v[0]) else {
                throw DHCPError.badOptionValue(code: 53, field: "message-type", reason: "unknown type \(v[0])")
            }
            return type
        }, encode: { [$0.rawValue] })
    }
}

extension DHCPOptionKey where Value == IPv4Address {
    /// 54 (RFC 2132 §9.7).
    public static var serverIdentifier: Self { address(54, "server-identifier") }
    /// 50 (RFC 2132 §9.1).
    public static var requestedAddress: Self { address(50, "requested-address") }
}

extension DHCPOptionKey where Value == String {
    /// 60 (RFC 2132 §9.13).
    public static var vendorClass: Self { text(60, "vendor-class") }
    /// 12 (RFC 2132 §3.14).
    public static var hostname: Self { text(12, "hostname") }
    /// 66 (RFC 2132 §9.4).
    public static var tftpServerName: Self { text(66, "tftp-server") }
    /// 67 (RFC 2132 §9.5).
    public static var bootfileName: Self { text(67, "bootfile") }
}

extension DHCPOptionKey where Value == [UInt8] {
    /// 55 (RFC 2132 §9.8): the codes the client asks for.
    public static var parameterRequestList: Self {
        DHCPOptionKey(code: 55, name: "parameter-request-list", decode: { $0 }, encode: { $0 })
    }
    /// 61 (RFC 2132 §9.14): type byte + identifier, raw.
    public static var clientIdentifier: Self {
        DHCPOptionKey(code: 61, name: "client-identifier", decode: { v in
            guard !v.isEmpty else {
                throw DHCPError.badOptionValue(code: 61, field: "client-identifier", reason: "empty")
            }
            return v
        }, encode: { $0 })
    }
}

extension DHCPOptionKey where Value == UInt16 {
    /// 57 (RFC 2132 §9.10), at least 576.
    public static var maxMessageSize: Self {
        DHCPOptionKey(code: 57, name: "max-message-size", decode: { v in
            try fixed(57, "max-message-size", v, 2)
            return UInt16(v[0]) << 8 | UInt16(v[1])
        }, encode: { [UInt8($0 >> 8), UInt8(truncatingIfNeeded: $0)] })
    }
}

extension DHCPOptionKey where Value == PXEVendorOptions {
    /// 43 read as PXE vendor options.
    public static var pxeVendorOptions: Self {
        DHCPOptionKey(code: 43, name: "vendor-specific", decode: { try PXEVendorOptions(bytes: $0) }, encode: { $0.bytes })
    }
}

extension DHCPOptionKey where Value == UserClass {
    /// 77 (RFC 3004, or the plain string iPXE sends).
    public static var userClass: Self {
        DHCPOptionKey(code: 77, name: "user-class", decode: { UserClass(bytes: $0) }, encode: { $0.bytes })
    }
}

extension DHCPOptionKey where Value == RelayAgentInfo {
    /// 82 (RFC 3046).
    public static var relayAgentInfo: Self {
        DHCPOptionKey(code: 82, name: "relay-agent-info", decode: { try RelayAgentInfo(bytes: $0) }, encode: { $0.bytes })
    }
}

extension DHCPOptionKey where Value == [ClientArchitecture] {
    /// 93 (RFC 4578 §2.1): a list of 16-bit codes.
    public static var clientArchitectures: Self {
        DHCPOptionKey(code: 93, name: "client-arch", decode: { v in
            guard !v.isEmpty, v.count % 2 == 0 else {
                throw DHCPError.badOptionValue(code: 93, field: "client-arch", reason: "length \(v.count), expected a non-zero multiple of 2")
            }
            return stride(from: 0, to: v.count, by: 2).map { ClientArchitecture(code: UInt16(v[$0]) << 8 | UInt16(v[$0 + 1])) }
        }, encode: { $0.flatMap { [UInt8($0.code >> 8), UInt8(truncatingIfNeeded: $0.code)] } })
    }
}

extension DHCPOptionKey where Value == ClientNDI {
    /// 94 (RFC 4578 §2.2).
    public static var clientNDI: Self {
        DHCPOptionKey(code: 94, name: "client-ndi", decode: { v in
            try fixed(94, "client-ndi", v, 3)
            return ClientNDI(type: v[0], major: v[1], minor: v[2])
        }, encode: { [$0.type, $0.major, $0.minor] })
    }
}

extension DHCPOptionKey where Value == ClientUUID {
    /// 97 (RFC 4578 §2.3): type 0 + 16 bytes.
    public static var clientUUID: Self {
        DHCPOptionKey(code: 97, name: "client-uuid", decode: { v in
            try fixed(97, "client-uuid", v, 17)
            guard v[0] == 0 else {
                throw DHCPError.badOptionValue(code: 97, field: "client-uuid", reason: "type \(v[0]), expected 0")
            }
            return ClientUUID(bytes: Array(v[1...]))!
        }, encode: { [0] + $0.bytes })
    }
}

extension DHCPOptionKey where Value == IPXEOptions {
    /// 175 (iPXE encapsulated options).
    public static var ipxe: Self {
        DHCPOptionKey(code: 175, name: "ipxe", decode: { try IPXEOptions(bytes: $0) }, encode: { $0.bytes })
    }
}

// Non-throwing conveniences on the message: nil when absent or malformed. Use
// `message.options.get(...)` to learn why a value is malformed.
extension DHCPMessage {
    public var messageType: DHCPMessageType? {
        get { try? options.get(.messageType) }
        set { options.set(.messageType, newValue) }
    }
    public var serverIdentifier: IPv4Address? {
        get { try? options.get(.serverIdentifier) }
        set { options.set(.serverIdentifier, newValue) }
    }
    public var requestedAddress: IPv4Address? { try? options.get(.requestedAddress) }
    public var parameterRequestList: [UInt8]? { try? options.get(.parameterRequestList) }
    public var maxMessageSize: UInt16? { try? options.get(.maxMessageSize) }
    public var vendorClass: String? {
        get { try? options.get(.vendorClass) }
        set { options.set(.vendorClass, newValue) }
    }
    public var clientIdentifier: [UInt8]? { try? options.get(.clientIdentifier) }
    public var hostname: String? { try? options.get(.hostname) }
    public var tftpServerName: String? { try? options.get(.tftpServerName) }
    public var bootfileName: String? { try? options.get(.bootfileName) }
    public var pxeVendorOptions: PXEVendorOptions? { try? options.get(.pxeVendorOptions) }
    public var userClass: UserClass? { try? options.get(.userClass) }
    public var relayAgentInfo: RelayAgentInfo? { try? options.get(.relayAgentInfo) }
    public var clientArchitectures: [ClientArchitecture]? { try? options.get(.clientArchitectures) }
    public var clientNDI: ClientNDI? { try? options.get(.clientNDI) }
    public var clientUUID: ClientUUID? { try? options.get(.clientUUID) }
    public var ipxeOptions: IPXEOptions? { try? options.get(.ipxe) }
}
