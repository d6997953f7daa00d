/// Option 175, iPXE's encapsulated options (iPXE `include/ipxe/dhcp.h`, `DHCP_EB_*`).
/// iPXE puts feature markers (0x10-0x4f, one byte each, usually 1) and a few facts about
/// itself (version, bus id) into its requests; servers may send settings back.
public struct IPXEOptions: Sendable, Equatable {
    /// Sub-option names as iPXE defines them.
    public static let names: [UInt8: String] = [
        1: "priority", 8: "keep-san", 9: "skip-san-boot",
        16: "pxeext", 17: "iscsi", 18: "aoe", 19: "http", 20: "https", 21: "tftp", 22: "ftp",
        23: "dns", 24: "bzimage", 25: "multiboot", 26: "slam", 27: "srp", 32: "nbi", 33: "pxe",
        34: "elf", 35: "comboot", 36: "efi", 37: "fcoe", 38: "vlan", 39: "menu", 40: "sdi",
        41: "nfs", 81: "scriptlet", 85: "syslogs", 90: "trust", 91: "cert", 92: "privkey",
        93: "crosscert", 176: "no-pxedhcp", 177: "bus-id", 188: "san-filename",
        189: "bios-drive", 190: "username", 191: "password", 192: "reverse-username",
        193: "reverse-password", 194: "uid", 195: "gid", 235: "version",
    ]

    /// The sub-options in wire order (iPXE sends no END inside 175, but accepts one).
    public var subOptions: [DHCPOption]

    public init(subOptions: [DHCPOption] = []) { self.subOptions = subOptions }

    public init(bytes: [UInt8]) throws {
        do {
            subOptions = try TLV.parse(bytes[...], area: "option 175").entries
        } catch DHCPError.optionOverrun(let code, _) {
            throw DHCPError.badSubOption(option: 175, subOption: code, reason: "runs past the end of option 175")
        }
    }

    /// Sub-options without a trailing END, as iPXE itself sends them.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        for sub in subOptions { TLV.write(code: sub.code, value: sub.value, into: &out) }
        return out
    }

    public static func name(of code: UInt8) -> String { names[code] ?? "option-\(code)" }

    public func value(_ code: UInt8) -> [UInt8]? { subOptions.first { $0.code == code }?.value }

    /// Every sub-option whose value is a 1, 2 or 4-byte big-endian integer, by name
    /// (`["http": 1, "https": 1, "efi": 1, "priority": 0]`): what `BootRequest.ipxeFeatures` holds.
    public var features: [String: Int] {
        var result: [String: Int] = [:]
        for sub in subOptions where [1, 2, 4].contains(sub.value.count) && sub.code != 177 {
            var number = 0
            for byte in sub.value { number = number << 8 | Int(byte) }
            if sub.code == 1 { number = Int(Int8(bitPattern: sub.value[0])) }  // signed priority
            result[Self.name(of: sub.code)] = number
        }
        return result
    }

    /// Feature flags present (codes 0x10-0x4f with a non-zero value), by name, sorted.
    public var featureFlags: [String] {
        subOptions.filter { (16...79).contains($0.code) && $0.value.contains { $0 != 0 } }
            .map { Self.name(of: $0.code) }.sorted()
    }

    public func has(_ name: String) -> Bool { features[name].map { $0 != 0 } ?? false }

    /// Sub-option 235 as "major.minor.patch".
    public var version: String? {
        value(235).flatMap { $0.count == 3 ? $0.map(String.init).joined(separator: ".") : nil }
    }

    /// Sub-option 177: bus type (1 PCI, ...), vendor and device id.
    public var busID: (type: UInt8, vendor: UInt16, device: UInt16)? {
        guard let v = value(177), v.count == 5 else { return nil }
        return (v[0], UInt16(v[1]) << 8 | UInt16(v[2]), UInt16(v[3]) << 8 | UInt16(v[4]))
    }

    /// A text-valued sub-option (username, syslogs, san-filename...).
    public func string(_ code: UInt8) -> String? { value(code).map { ByteText.cString($0) } }
}
