/// A client system architecture from option 93 (RFC 4578 §2.1), named after the IANA
/// "Processor Architecture Types" registry.
///
/// Note on 7 and 9: RFC 4578 printed 7 as "EFI BC" and 9 as "EFI x86-64"; the IANA registry
/// (and every x64 UEFI firmware seen in practice, OVMF included) uses 7 for x64 UEFI and 9 for
/// EFI byte code. We follow IANA: 7 is `efi-x64`, 9 is `efi-bc`; both report `cpu == "x86_64"`
/// because some older firmware sends 9 on x86-64.
public struct ClientArchitecture: Sendable, Hashable, CustomStringConvertible {
    public let code: UInt16

    public init(code: UInt16) { self.code = code }

    struct Entry {
        let name: String
        let uefi: Bool
        let http: Bool
        let cpu: String
    }

    static let table: [UInt16: Entry] = [
        0: Entry(name: "bios", uefi: false, http: false, cpu: "x86"),
        1: Entry(name: "pc98", uefi: false, http: false, cpu: "x86"),
        2: Entry(name: "efi-itanium", uefi: true, http: false, cpu: "ia64"),
        3: Entry(name: "dec-alpha", uefi: false, http: false, cpu: "alpha"),
        4: Entry(name: "arc-x86", uefi: false, http: false, cpu: "x86"),
        5: Entry(name: "intel-lean-client", uefi: false, http: false, cpu: "x86"),
        6: Entry(name: "efi-ia32", uefi: true, http: false, cpu: "i386"),
        7: Entry(name: "efi-x64", uefi: true, http: false, cpu: "x86_64"),
        8: Entry(name: "efi-xscale", uefi: true, http: false, cpu: "arm"),
        9: Entry(name: "efi-bc", uefi: true, http: false, cpu: "x86_64"),
        10: Entry(name: "efi-arm32", uefi: true, http: false, cpu: "arm32"),
        11: Entry(name: "efi-arm64", uefi: true, http: false, cpu: "arm64"),
        12: Entry(name: "ppc-openfirmware", uefi: false, http: false, cpu: "ppc"),
        13: Entry(name: "ppc-epapr", uefi: false, http: false, cpu: "ppc"),
        14: Entry(name: "power-opal-v3", uefi: false, http: false, cpu: "ppc64"),
        15: Entry(name: "efi-ia32-http", uefi: true, http: true, cpu: "i386"),
        16: Entry(name: "efi-x64-http", uefi: true, http: true, cpu: "x86_64"),
        17: Entry(name: "efi-bc-http", uefi: true, http: true, cpu: "x86_64"),
        18: Entry(name: "efi-arm32-http", uefi: true, http: true, cpu: "arm32"),
        19: Entry(name: "efi-arm64-http", uefi: true, http: true, cpu: "arm64"),
        20: Entry(name: "bios-http", uefi: false, http: true, cpu: "x86"),
        21: Entry(name: "uboot-arm32", uefi: false, http: false, cpu: "arm32"),
        22: Entry(name: "uboot-arm64", uefi: false, http: false, cpu: "arm64"),
        23: Entry(name: "uboot-arm32-http", uefi: false, http: true, cpu: "arm32"),
        24: Entry(name: "uboot-arm64-http", uefi: false, http: true, cpu: "arm64"),
        25: Entry(name: "efi-riscv32", uefi: true, http: false, cpu: "riscv32"),
        26: Entry(name: "efi-riscv32-http", uefi: true, http: true, cpu: "riscv32"),
        27: Entry(name: "efi-riscv64", uefi: true, http: false, cpu: "riscv64"),
        28: Entry(name: "efi-riscv64-http", uefi: true, http: true, cpu: "riscv64"),
        29: Entry(name: "efi-riscv128", uefi: true, http: false, cpu: "riscv128"),
        30: Entry(name: "efi-riscv128-http", uefi: true, http: true, cpu: "riscv128"),
        31: Entry(name: "s390-basic", uefi: false, http: false, cpu: "s390"),
        32: Entry(name: "s390-extended", uefi: false, http: false, cpu: "s390x"),
        33: Entry(name: "efi-mips32", uefi: true, http: false, cpu: "mips32"),
        34: Entry(name: "efi-mips64", uefi: true, http: false, cpu: "mips64"),
        35: Entry(name: "efi-sunway32", uefi: true, http: false, cpu: "sw32"),
        36: Entry(name: "efi-sunway64", uefi: true, http: false, cpu: "sw64"),
        37: Entry(name: "efi-loongarch32", uefi: true, http: false, cpu: "loongarch32"),
        38: Entry(name: "efi-loongarch32-http", uefi: true, http: true, cpu: "loongarch32"),
        39: Entry(name: "efi-loongarch64", uefi: true, http: false, cpu: "loongarch64"),
        40: Entry(name: "efi-loongarch64-http", uefi: true, http: true, cpu: "loongarch64"),
        41: Entry(name: "arm-rpiboot", uefi: false, http: false, cpu: "arm"),
    ]

    /// Every name the registry knows.
    public static var knownNames: [String] { table.values.map(\.name) }

    /// Stable kebab-case name; `arch-<code>` for codes the registry does not know.
    public var name: String { Self.table[code]?.name ?? "arch-\(code)" }
    public var isUEFI: Bool { Self.table[code]?.uefi ?? false }
    public var isHTTPBoot: Bool { Self.table[code]?.http ?? false }
    /// CPU family (`x86`, `x86_64`, `arm64`, `riscv64`...), "unknown" when not in the table.
    public var cpu: String { Self.table[code]?.cpu ?? "unknown" }
    public var isKnown: Bool { Self.table[code] != nil }
    public var description: String { name }

    /// Looks a name up (`"efi-x64"` -> 7), also accepting `arch-<code>`.
    public init?(name: String) {
        if let match = Self.table.first(where: { $0.value.name == name }) {
            code = match.key
        } else if name.hasPrefix("arch-"), let code = UInt16(name.dropFirst(5)) {
            self.code = code
        } else {
            return nil
        }
    }

    public static let bios = ClientArchitecture(code: 0)
    public static let efiX64 = ClientArchitecture(code: 7)
    public static let efiArm64 = ClientArchitecture(code: 11)
    public static let efiX64HTTP = ClientArchitecture(code: 16)
}

/// Option 94, client network interface identifier (RFC 4578 §2.2): type 1 = UNDI + version.
public struct ClientNDI: Sendable, Hashable {
    public var type: UInt8
    public var major: UInt8
    public var minor: UInt8
    public init(type: UInt8 = 1, major: UInt8, minor: UInt8) {
        self.type = type
        self.major = major
        self.minor = minor
    }
    public var description: String { "\(type).\(major).\(minor)" }
}

/// Option 97, client machine identifier (RFC 4578 §2.3): type 0 followed by a 16-byte UUID.
public struct ClientUUID: Sendable, Hashable, CustomStringConvertible {
    public var bytes: [UInt8]
    public init?(bytes: [UInt8]) {
        guard bytes.count == 16 else { return nil }
        self.bytes = bytes
    }
    /// Canonical lower-case text `8-4-4-4-12`, bytes in wire order (as dnsmasq and iPXE print).
    public var description: String {
        let hex = Hex.encode(bytes)
        let chars = Array(hex)
        let cuts = [0, 8, 12, 16, 20, 32]
        return (0..<5).map { String(chars[cuts[$0]..<cuts[$0 + 1]]) }.joined(separator: "-")
    }
    public init?(_ text: String) {
        guard text.count == 36, let bytes = Hex.decode(text), bytes.count == 16 else { return nil }
        self.bytes = bytes
    }
}
