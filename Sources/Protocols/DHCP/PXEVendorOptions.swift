/// Option 43 as PXE clients and servers use it (PXE 2.1 spec §2.4, "PXE vendor options"):
/// an encapsulated TLV area ended by 255. Sub-options keep their order so a reply can be
/// built byte for byte as another server would; unknown ones are kept raw.
public struct PXEVendorOptions: Sendable, Equatable {
    public enum Code {
        public static let discoveryControl: UInt8 = 6
        public static let bootServers: UInt8 = 8
        public static let bootMenu: UInt8 = 9
        public static let menuPrompt: UInt8 = 10
        public static let bootItem: UInt8 = 71
    }

    /// PXE boot server type + the addresses that offer it (sub-option 8).
    public struct BootServer: Sendable, Equatable {
        public var type: UInt16
        public var addresses: [IPv4Address]
        public init(type: UInt16, addresses: [IPv4Address]) {
            self.type = type
            self.addresses = addresses
        }
    }

    /// One boot menu entry (sub-option 9).
    public struct MenuItem: Sendable, Equatable {
        public var type: UInt16
        public var description: String
        public init(type: UInt16, description: String) {
            self.type = type
            self.description = description
        }
    }

    /// Sub-option 10: seconds to wait (255 = wait for a key, 0 = boot at once) and the text.
    public struct MenuPrompt: Sendable, Equatable {
        public var timeout: UInt8
        public var prompt: String
        public init(timeout: UInt8, prompt: String) {
            self.timeout = timeout
            self.prompt = prompt
        }
    }

    /// Sub-option 71: boot server type and layer the client asks for (on port 4011).
    public struct BootItem: Sendable, Equatable {
        public var type: UInt16
        public var layer: UInt16
        public init(type: UInt16, layer: UInt16) {
            self.type = type
            self.layer = layer
        }
    }

    /// The sub-options in wire order.
    public var subOptions: [DHCPOption]

    public init(subOptions: [DHCPOption] = []) { self.subOptions = subOptions }

    public init(bytes: [UInt8]) throws {
        do {
            subOptions = try TLV.parse(bytes[...], area: "option 43").entries
        } catch DHCPError.optionOverrun(let code, _) {
            throw DHCPError.badSubOption(option: 43, subOption: code, reason: "runs past the end of option 43")
        }
        // Validate the typed ones now so accessors can be non-throwing.
        for sub in subOptions {
            switch sub.code {
            case Code.discoveryControl where sub.value.count != 1:
                throw DHCPError.badSubOption(option: 43, subOption: sub.code, reason: "length \(sub.value.count), expected 1")
            case Code.bootServers where Self.parseServers(sub.value) == nil,
                 Code.bootMenu where Self.parseMenu(sub.value) == nil:
                throw DHCPError.badSubOption(option: 43, subOption: sub.code, reason: "entry runs past the end")
            case Code.menuPrompt where sub.value.isEmpty:
                throw DHCPError.badSubOption(option: 43, subOption: sub.code, reason: "empty")
            case Code.bootItem where sub.value.count != 4:
                throw DHCPError.badSubOption(option: 43, subOption: sub.code, reason: "length \(sub.value.count), expected 4")
            default: break
            }
        }
    }

    /// Sub-options followed by END (255).
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        for sub in subOptions { TLV.write(code: sub.code, value: sub.value, into: &out) }
        out.append(255)
        return out
    }

    func value(_ code: UInt8) -> [UInt8]? { subOptions.first { $0.code == code }?.value }

    mutating func put(_ code: UInt8, _ value: [UInt8]?) {
        guard let value else { subOptions.removeAll { $0.code == code }; return }
        if let index = subOptions.firstIndex(where: { $0.code == code }) {
            subOptions[index].value = value
        } else {
            subOptions.append(DHCPOption(code: code, value: value))
        }
    }

    /// Sub-option 6 bits: 1 no broadcast discovery, 2 no multicast, 4 only listed servers,
    /// 8 boot the file in the DHCP reply without a menu.
    public var discoveryControl: UInt8? {
        get { value(Code.discoveryControl).flatMap { $0.count == 1 ? $0[0] : nil } }
        set { put(Code.discoveryControl, newValue.map { [$0] }) }
    }

    public var bootServers: [BootServer]? {
        get { value(Code.bootServers).flatMap(Self.parseServers) }
        set {
            put(Code.bootServers, newValue.map { servers in
                servers.flatMap { server -> [UInt8] in
                    [UInt8(server.type >> 8), UInt8(truncatingIfNeeded: server.type), UInt8(min(server.addresses.count, 255))]
                        + server.addresses.prefix(255).flatMap(\.bytes)
                }
            })
        }
    }

    public var bootMenu: [MenuItem]? {
        get { value(Code.bootMenu).flatMap(Self.parseMenu) }
        set {
            put(Code.bootMenu, newValue.map { items in
                items.flatMap { item -> [UInt8] in
                    let text = Array(item.description.utf8.prefix(255))
                    return [UInt8(item.type >> 8), UInt8(truncatingIfNeeded: item.type), UInt8(text.count)] + text
                }
            })
        }
    }

    public var menuPrompt: MenuPrompt? {
        get {
            value(Code.menuPrompt).flatMap { v in
                v.isEmpty ? nil : MenuPrompt(timeout: v[0], prompt: String(decoding: v.dropFirst(), as: UTF8.self))
            }
        }
        set { put(Code.menuPrompt, newValue.map { [$0.timeout] + Array($0.prompt.utf8) }) }
    }

    public var bootItem: BootItem? {
        get {
            value(Code.bootItem).flatMap { v in
                v.count == 4 ? BootItem(type: UInt16(v[0]) << 8 | UInt16(v[1]), layer: UInt16(v[2]) << 8 | UInt16(v[3])) : nil
            }
        }
        set {
            put(Code.bootItem, newValue.map {
                [UInt8($0.type >> 8), UInt8(truncatingIfNeeded: $0.type), UInt8($0.layer >> 8), UInt8(truncatingIfNeeded: $0.layer)]
            })
        }
    }

    static func parseServers(_ v: [UInt8]) -> [BootServer]? {
        var result: [BootServer] = []
        var i = 0
        while i < v.count {
            guard i + 3 <= v.count else { return nil }
            let type = UInt16(v[i]) << 8 | UInt16(v[i + 1])
            let count = Int(v[i + 2])
            i += 3
            guard i + 4 * count <= v.count else { return nil }
            var addresses: [IPv4Address] = []
            for n in 0..<count { addresses.append(IPv4Address(bytes: v[(i + 4 * n)..<(i + 4 * n + 4)])!) }
            i += 4 * count
            result.append(BootServer(type: type, addresses: addresses))
        }
        return result
    }

    static func parseMenu(_ v: [UInt8]) -> [MenuItem]? {
        var result: [MenuItem] = []
        var i = 0
        while i < v.count {
            guard i + 3 <= v.count else { return nil }
            let type = UInt16(v[i]) << 8 | UInt16(v[i + 1])
            let length = Int(v[i + 2])
            i += 3
            guard i + length <= v.count else { return nil }
            result.append(MenuItem(type: type, description: String(decoding: v[i..<(i + length)], as: UTF8.self)))
            i += length
        }
        return result
    }
}
