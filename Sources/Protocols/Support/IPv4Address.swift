/// An IPv4 address as the four bytes on the wire (network order), with dotted-quad text.
/// Kept tiny on purpose: codecs need equality, parsing and printing, nothing more.
public struct IPv4Address: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    /// The address as a host-order integer (`192.168.77.1` is `0xC0A84D01`).
    public var rawValue: UInt32

    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        rawValue = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Four bytes in network order; nil unless exactly four.
    public init?<C: Collection>(bytes: C) where C.Element == UInt8 {
        guard bytes.count == 4 else { return nil }
        var value: UInt32 = 0
        for byte in bytes { value = value << 8 | UInt32(byte) }
        rawValue = value
    }

    /// Strict dotted quad: four decimal parts 0...255, no signs, no leading zeros beyond "0".
    /// Walks the UTF-8 once without allocating: policies hand addresses over as text on every
    /// request (`next_server = req.server_address`).
    public init?(_ text: String) {
        var value: UInt32 = 0
        var octet: UInt32 = 0
        var digits = 0
        var leadingZero = false
        var dots = 0
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                if leadingZero { return nil }
                if digits == 0 && byte == UInt8(ascii: "0") { leadingZero = true }
                octet = octet * 10 + UInt32(byte - UInt8(ascii: "0"))
                digits += 1
                if digits > 3 || octet > 255 { return nil }
            case UInt8(ascii: "."):
                guard digits > 0, dots < 3 else { return nil }
                value = value << 8 | octet
                octet = 0; digits = 0; leadingZero = false; dots += 1
            default:
                return nil
            }
        }
        guard dots == 3, digits > 0 else { return nil }
        rawValue = value << 8 | octet
    }

    public static let any = IPv4Address(rawValue: 0)
    public static let broadcast = IPv4Address(rawValue: 0xFFFF_FFFF)
    public static let loopback = IPv4Address(127, 0, 0, 1)

    public var bytes: [UInt8] {
        [UInt8(rawValue >> 24), UInt8(truncatingIfNeeded: rawValue >> 16),
         UInt8(truncatingIfNeeded: rawValue >> 8), UInt8(truncatingIfNeeded: rawValue)]
    }

    public var isAny: Bool { rawValue == 0 }
    public var isLoopback: Bool { rawValue >> 24 == 127 }

    /// Dotted quad, written straight into the string's storage (no per-octet strings).
    public var description: String {
        String(unsafeUninitializedCapacity: 15) { buffer in
            var at = 0
            for shift in stride(from: 24, through: 0, by: -8) {
                let octet = Int(truncatingIfNeeded: rawValue >> UInt32(shift)) & 0xFF
                if shift != 24 { buffer[at] = UInt8(ascii: "."); at += 1 }
                if octet >= 100 { buffer[at] = UInt8(48 + octet / 100); at += 1 }
                if octet >= 10 { buffer[at] = UInt8(48 + octet / 10 % 10); at += 1 }
                buffer[at] = UInt8(48 + octet % 10); at += 1
            }
            return at
        }
    }

    public static func < (lhs: IPv4Address, rhs: IPv4Address) -> Bool { lhs.rawValue < rhs.rawValue }

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let address = IPv4Address(text) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "not a dotted-quad IPv4 address: \(text)")
        }
        self = address
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
